// Drives the Node `livekit-server-sdk` IngressClient through create/list/update/delete for RTMP, WHIP and URL
// inputs (presets and the seed documents' custom options) and prints what it got back as one JSON object.
// Usage: NODE_PATH=<.cache/node/node_modules> node node_ingress_client.cjs <api url> <room> [url-ingress]
// Credentials come from LIVEKIT_API_KEY / LIVEKIT_API_SECRET, as in the SDK's documentation.
"use strict";

const { IngressClient } = require("livekit-server-sdk");
const {
  AudioCodec,
  IngressAudioEncodingOptions,
  IngressAudioEncodingPreset,
  IngressAudioOptions,
  IngressInput,
  IngressVideoEncodingOptions,
  IngressVideoEncodingPreset,
  IngressVideoOptions,
  TrackSource,
  VideoCodec,
  VideoQuality,
} = require("@livekit/protocol");

function presets() {
  return {
    video: new IngressVideoOptions({
      name: "screen",
      source: TrackSource.SCREEN_SHARE,
      encodingOptions: { case: "preset", value: IngressVideoEncodingPreset.H264_1080P_30FPS_3_LAYERS },
    }),
    audio: new IngressAudioOptions({
      name: "screen audio",
      source: TrackSource.SCREEN_SHARE_AUDIO,
      encodingOptions: { case: "preset", value: IngressAudioEncodingPreset.OPUS_MONO_64KBS },
    }),
  };
}

// The seed's "custom settings": one 1920x1080 layer at 4.5 Mb/s, Opus mono at 64 kb/s.
function customOptions() {
  return {
    video: new IngressVideoOptions({
      name: "my-video",
      source: TrackSource.CAMERA,
      encodingOptions: {
        case: "options",
        value: new IngressVideoEncodingOptions({
          videoCodec: VideoCodec.H264_BASELINE,
          frameRate: 30,
          layers: [{ quality: VideoQuality.HIGH, width: 1920, height: 1080, bitrate: 4500000 }],
        }),
      },
    }),
    audio: new IngressAudioOptions({
      name: "my-audio",
      source: TrackSource.MICROPHONE,
      encodingOptions: {
        case: "options",
        value: new IngressAudioEncodingOptions({ audioCodec: AudioCodec.OPUS, bitrate: 64000, channels: 1 }),
      },
    }),
  };
}

async function main() {
  const [url, room, withUrlIngress] = process.argv.slice(2);
  const client = new IngressClient(url);
  const out = {};
  const base = { roomName: room, participantName: "Node" };

  const rtmp = await client.createIngress(IngressInput.RTMP_INPUT, {
    ...base, name: "node-rtmp", participantIdentity: "node-rtmp", ...presets(),
  });
  out.rtmp = rtmp.toJson();
  out.rtmpCustom = (await client.createIngress(IngressInput.RTMP_INPUT, {
    ...base, name: "node-rtmp-custom", participantIdentity: "node-rtmp-custom", enableTranscoding: true,
    ...customOptions(),
  })).toJson();
  const whip = await client.createIngress(IngressInput.WHIP_INPUT, {
    ...base, name: "node-whip", participantIdentity: "node-whip",
  });
  out.whip = whip.toJson();
  out.whipTranscoded = (await client.createIngress(IngressInput.WHIP_INPUT, {
    ...base, name: "node-whip-t", participantIdentity: "node-whip-t", enableTranscoding: true, ...customOptions(),
  })).toJson();
  if (withUrlIngress === "url") {
    out.url = (await client.createIngress(IngressInput.URL_INPUT, {
      ...base, roomName: `${room}-url`, name: "node-url", participantIdentity: "node-url", url: "https://media.example.com/clip.mp4",
    })).toJson();
    try {
      await client.updateIngress(out.url.ingressId, { name: "renamed" });
      out.urlUpdateError = null;
    } catch (err) {
      out.urlUpdateError = { status: err.status, code: err.code, message: err.message };
    }
  }

  out.listRoom = (await client.listIngress({ roomName: room })).map((i) => i.ingressId);
  out.listId = (await client.listIngress({ ingressId: whip.ingressId })).map((i) => i.ingressId);
  out.updated = (await client.updateIngress(rtmp.ingressId, {
    name: "node-rtmp-renamed", enabled: false, ...customOptions(),
  })).toJson();
  out.deleted = (await client.deleteIngress(whip.ingressId)).toJson();
  out.listAfterDelete = (await client.listIngress({ roomName: room })).map((i) => i.ingressId);
  try {
    await client.deleteIngress(whip.ingressId);
    out.deleteAgainError = null;
  } catch (err) {
    out.deleteAgainError = { status: err.status, code: err.code, message: err.message };
  }
  process.stdout.write(JSON.stringify(out));
}

main().catch((err) => {
  process.stderr.write(`${err.stack || err}\n`);
  process.exit(1);
});
