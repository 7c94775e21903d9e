"""Real publishers into the RTMP server: Debian ffmpeg (RTMP, RTMPS), GStreamer rtmp2sink, and Enhanced RTMP
HEVC/AV1/AVC from our client; what arrives is decoded with PyAV and checked the way a viewer would."""

import asyncio
import logging
import shutil
import ssl
from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from pyingress.ingest.rtmp.flv import VideoPacketType, aac_tag, ex_video_tag
from pyingress.ingest.rtmp.server import RtmpLimits, RtmpServer
from pyingress.ingest.source import EndReason
from pyingress.media.packets import StreamDescription
from tests.harness.publishers import TestPattern, ffmpeg_command
from tests.harness.tls import self_signed_cert
from tests.ingest.rtmp.media_check import Received, assert_monotonic, collect, decode_audio, decode_video
from tests.ingest.rtmp.publishing import AsyncPublisher, EncodedClip, encode_clip

SECONDS, FPS = 3, 25


def self_signed_context(directory: Path) -> ssl.SSLContext:
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    context.load_cert_chain(*self_signed_cert(directory))
    return context


admitted: list[tuple[str, str]] = []


async def admit(stream_key: str, app: str) -> None:
    admitted.append((stream_key, app))


@pytest.fixture
async def server(tmp_path: Path) -> AsyncIterator[RtmpServer]:
    async with RtmpServer(
        admit, host="127.0.0.1", port=0, tls_port=0, ssl_context=self_signed_context(tmp_path)
    ) as rtmp_server:
        yield rtmp_server


async def run(argv: list[str], timeout: float = 60) -> tuple[int, str]:
    process = await asyncio.create_subprocess_exec(
        *argv, stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.STDOUT
    )
    output, _ = await asyncio.wait_for(process.communicate(), timeout)
    return process.returncode or 0, output.decode(errors="replace")


def check_audio_video(received: Received, frames: int, seconds: float) -> None:
    video, audio = decode_video(received), decode_audio(received)
    assert abs(len(video.pts) - frames) <= frames * 0.02, f"{len(video.pts)} frames, expected {frames}"
    assert video.sizes == {(320, 240)}
    assert video.pts == sorted(set(video.pts)), "video timestamps must increase"
    assert abs(audio.samples - seconds * audio.sample_rate) <= seconds * audio.sample_rate * 0.02
    assert audio.frame_pts == sorted(audio.frame_pts)
    assert_monotonic(received)
    video_end = video.pts[-1] + 1000 / FPS
    assert abs(video.pts[0] - audio.frame_pts[0]) <= 40, (video.pts[0], audio.frame_pts[0])
    assert abs(video_end - audio.end_ms) <= 40, (video_end, audio.end_ms)


@pytest.mark.parametrize("bframes", [0, 2])
async def test_ffmpeg_pushes_h264_aac_over_rtmp(
    server: RtmpServer, bframes: int, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG, logger="pyingress.ingest.rtmp")
    pattern = TestPattern(width=320, height=240, fps=FPS, duration=SECONDS, realtime=False, gop=FPS, bframes=bframes)
    url = f"rtmp://127.0.0.1:{server.ports['rtmp']}/live/KEY-{bframes}?secret=1"
    pusher = asyncio.ensure_future(run(ffmpeg_command(pattern, url)))
    source = await asyncio.wait_for(server.accept(), 20)
    assert (source.stream_key, source.app, source.protocol) == (f"KEY-{bframes}", "live", "rtmp")
    assert source.resource_id.startswith("RT_")
    received = await collect(source)
    code, log = await pusher
    assert code == 0, log
    assert received.end_reason is EndReason.UNPUBLISHED and received.error is None
    assert received.descriptions["video"].codec == "h264" and received.descriptions["audio"].codec == "aac"
    assert (received.descriptions["video"].width, received.descriptions["video"].height) == (320, 240)
    assert received.descriptions["audio"].sample_rate == 48000 and received.descriptions["audio"].channels == 2
    assert received.metadata["width"] == 320.0 and "encoder" in received.metadata
    if bframes:
        assert any(p.pts != p.dts for p in received.packets["video"]), "B-frames carry composition time"
    check_audio_video(received, SECONDS * FPS, SECONDS)
    assert "handshake done (digest 0)" in caplog.text  # FFmpeg sends the Flash-era digest C1


async def test_ffmpeg_pushes_over_rtmps(server: RtmpServer) -> None:
    pattern = TestPattern(width=320, height=240, fps=FPS, duration=SECONDS, realtime=False, gop=FPS)
    url = f"rtmps://127.0.0.1:{server.ports['rtmps']}/live/TLSKEY"
    pusher = asyncio.ensure_future(run(ffmpeg_command(pattern, url)))
    source = await asyncio.wait_for(server.accept(), 20)
    assert (source.stream_key, source.protocol) == ("TLSKEY", "rtmps")
    received = await collect(source)
    code, log = await pusher
    assert code == 0, log
    check_audio_video(received, SECONDS * FPS, SECONDS)


async def test_gstreamer_rtmp2sink_pushes(server: RtmpServer) -> None:
    gst = shutil.which("gst-launch-1.0")
    assert gst, "gst-launch-1.0 missing: apt-get install gstreamer1.0-tools gstreamer1.0-plugins-bad/ugly/good"
    frames, audio_buffers = SECONDS * FPS, SECONDS * 48000 // 1024
    url = f"rtmp://127.0.0.1:{server.ports['rtmp']}/live/GSTKEY"
    pipeline = (
        f"videotestsrc num-buffers={frames} pattern=ball ! video/x-raw,width=320,height=240,framerate={FPS}/1 "
        f"! x264enc tune=zerolatency speed-preset=ultrafast key-int-max={FPS} ! h264parse "
        f"! flvmux name=mux streamable=true ! rtmp2sink sync=false location={url} "
        f"audiotestsrc num-buffers={audio_buffers} samplesperbuffer=1024 ! audio/x-raw,rate=48000,channels=2 "
        "! voaacenc ! aacparse ! mux."
    )
    pusher = asyncio.ensure_future(run([gst, "-q", *pipeline.split()]))
    source = await asyncio.wait_for(server.accept(), 20)
    assert source.stream_key == "GSTKEY"
    received = await collect(source)
    code, log = await pusher
    assert code == 0, log
    assert received.end_reason in (EndReason.UNPUBLISHED, EndReason.DISCONNECTED)
    check_audio_video(received, frames, audio_buffers * 1024 / 48000)


async def push_clip(server: RtmpServer, key: str, clip: EncodedClip, *, extra_track: bool = False) -> Received:
    publisher = await AsyncPublisher.open(server.ports["rtmp"])
    status = await publisher.publish(f"live/{key}")
    assert status.code == "NetStream.Publish.Start"
    source = await asyncio.wait_for(server.accept(), 5)
    collecting = asyncio.ensure_future(collect(source))
    client = publisher.client
    client.send_metadata({"width": 320.0, "height": 240.0, "framerate": 25.0, "videocodecid": "hvc1"})
    track = 0 if extra_track else None
    client.send_video(0, ex_video_tag(clip.codec, VideoPacketType.SEQUENCE_START, clip.config or b"", track_id=track))
    if extra_track:  # a second video track (another rendition) must be ignored
        client.send_video(0, ex_video_tag(clip.codec, VideoPacketType.SEQUENCE_START, b"junk", track_id=1))
    for dts, pts, keyframe, data in clip.packets:
        body = ex_video_tag(
            clip.codec,
            VideoPacketType.CODED_FRAMES,
            data,
            keyframe=keyframe,
            composition_time=pts - dts,
            track_id=track,
        )
        client.send_video(dts, body)
        if extra_track:
            client.send_video(dts, ex_video_tag(clip.codec, VideoPacketType.CODED_FRAMES_X, b"junk", track_id=1))
        await publisher.flush()
    client.send_video(clip.packets[-1][0], ex_video_tag(clip.codec, VideoPacketType.SEQUENCE_END, track_id=track))
    client.send_audio(0, aac_tag("config", b"\x11\x90"))  # keep the AAC path honest: config only, no frames
    client.stop_publish()
    await publisher.flush()
    received = await collecting
    await publisher.close()
    return received


@pytest.mark.parametrize(
    ("encoder", "options", "decoder"),
    [
        ("libx265", {"preset": "ultrafast", "x265-params": "log-level=error"}, "hevc"),
        ("libsvtav1", {"preset": "12"}, "libdav1d"),
        ("libx264", {"preset": "ultrafast", "bf": "2"}, "h264"),
    ],
)
async def test_enhanced_rtmp_streams_arrive_decodable(
    server: RtmpServer, encoder: str, options: dict[str, str], decoder: str
) -> None:
    clip = encode_clip(encoder, frames=50, options=options)
    received = await push_clip(server, f"E-{encoder}", clip)
    description = received.descriptions["video"]
    assert description.codec == clip.codec and description.codec_config == clip.config
    assert received.end_reason is EndReason.UNPUBLISHED
    video = decode_video(received, decoder)
    assert len(video.pts) == 50 and video.sizes == {(320, 240)}
    assert video.pts == sorted(set(video.pts))
    assert [p.pts - p.dts for p in received.packets["video"]] == [pts - dts for dts, pts, _, _ in clip.packets]


async def test_enhanced_rtmp_multitrack_uses_the_first_track(server: RtmpServer) -> None:
    clip = encode_clip("libx265", frames=25, options={"preset": "ultrafast", "x265-params": "log-level=error"})
    received = await push_clip(server, "MULTI", clip, extra_track=True)
    assert received.descriptions["video"].codec_config == clip.config
    assert len(received.packets["video"]) == 25
    assert len(decode_video(received, "hevc").pts) == 25


async def test_read_backpressure_when_the_consumer_lags() -> None:
    limits = RtmpLimits(source_max_items=4, read_size=16384)
    async with RtmpServer(admit, host="127.0.0.1", port=0, limits=limits) as slow_server:
        publisher = await AsyncPublisher.open(slow_server.ports["rtmp"])
        assert (await publisher.publish("live/SLOWREADER")).code == "NetStream.Publish.Start"
        source = await asyncio.wait_for(slow_server.accept(), 5)
        for i in range(200):  # 20 MB of self-describing AV1 "frames": more than loopback socket buffers hold
            frame = ex_video_tag("av1", VideoPacketType.CODED_FRAMES, bytes(100_000), keyframe=True)
            publisher.client.send_video(i * 40, frame)
        publisher.writer.write(publisher.client.data_to_send())
        draining = asyncio.ensure_future(publisher.writer.drain())
        await asyncio.sleep(1.0)
        assert not draining.done(), "the server should stop reading while its queue is full"
        assert source.packets_received <= 4
        packets = 0
        async for item in source:
            packets += not isinstance(item, StreamDescription)
            if packets == 200:
                break
        await asyncio.wait_for(draining, 10)
        await publisher.close()
