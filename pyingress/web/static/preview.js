// pyingress preview: joins the ingress's room as a hidden viewer with livekit-client (served by pyingress itself),
// shows its video with a quality switch, plays its audio with a level meter.
"use strict";

(() => {
  const BUNDLE = "/dashboard/vendor/livekit-client.umd.js";
  const $ = (id) => document.getElementById(id);
  let room = null;
  let target = null; // the ingress being watched: {ingress_id, participant}
  let videoPublication = null;
  let quality = "HIGH";
  let audioElement = null;
  let meter = null; // {context, analyser, frame}
  let sizeTimer = null;

  function loadClient() {
    if (window.LivekitClient) return Promise.resolve(window.LivekitClient);
    return new Promise((resolve, reject) => {
      const script = document.createElement("script");
      script.src = BUNDLE;
      script.onload = () => resolve(window.LivekitClient);
      script.onerror = () => reject(new Error("livekit-client could not be loaded from pyingress"));
      document.head.append(script);
    });
  }

  function status(text) {
    $("preview-status").textContent = text;
  }

  function markQuality() {
    for (const button of document.querySelectorAll("#preview .quality")) {
      button.classList.toggle("selected", button.dataset.quality === quality);
    }
  }

  function applyQuality() {
    markQuality();
    if (videoPublication && window.LivekitClient) {
      videoPublication.setVideoQuality(window.LivekitClient.VideoQuality[quality]);
    }
  }

  function startMeter(track) {
    stopMeter();
    const context = new AudioContext();
    const source = context.createMediaStreamSource(new MediaStream([track.mediaStreamTrack]));
    const analyser = context.createAnalyser();
    analyser.fftSize = 1024;
    source.connect(analyser);
    const samples = new Float32Array(analyser.fftSize);
    meter = {context, analyser, frame: 0};
    const tick = () => {
      analyser.getFloatTimeDomainData(samples);
      let sum = 0;
      for (const sample of samples) sum += sample * sample;
      // RMS on a rough dB scale: -60 dBFS → 0, 0 dBFS → 1.
      const rms = Math.sqrt(sum / samples.length);
      const db = 20 * Math.log10(rms || 1e-6);
      $("preview-level").value = Math.max(0, Math.min(1, (db + 60) / 60));
      meter.frame = requestAnimationFrame(tick);
    };
    tick();
  }

  function stopMeter() {
    if (!meter) return;
    cancelAnimationFrame(meter.frame);
    meter.context.close();
    meter = null;
    $("preview-level").value = 0;
  }

  async function open(view, csrf) {
    close();
    $("preview").hidden = false;
    $("preview-title").textContent = `${view.name || view.ingress_id} in room ${view.room}`;
    status("connecting…");
    try {
      const Client = await loadClient();
      const response = await fetch(`/dashboard/api/ingresses/${view.ingress_id}/preview`, {
        method: "POST",
        credentials: "same-origin",
        headers: {"Content-Type": "application/json", "X-CSRF-Token": csrf},
        body: "{}",
      });
      const grant = await response.json();
      if (!response.ok) throw new Error(grant.error || response.statusText);
      target = {ingress_id: view.ingress_id, participant: grant.participant};
      // Layers are chosen by the switch, not by the element's size (adaptiveStream) nor by the network.
      const joined = new Client.Room({adaptiveStream: false, dynacast: false});
      room = joined;
      joined.on(Client.RoomEvent.TrackSubscribed, (track, publication, participant) => {
        if (participant.identity !== target.participant) return;
        if (track.kind === "video") {
          videoPublication = publication;
          track.attach($("preview-video"));
          applyQuality();
          status("playing");
        } else if (track.kind === "audio") {
          audioElement = track.attach();
          audioElement.muted = $("preview-mute").textContent === "Unmute";
          audioElement.classList.add("hidden-audio");
          $("preview").append(audioElement);
          startMeter(track);
        }
      });
      joined.on(Client.RoomEvent.ParticipantDisconnected, (participant) => {
        if (target && participant.identity === target.participant) status("the ingress left the room");
      });
      joined.on(Client.RoomEvent.Disconnected, () => status("disconnected"));
      await joined.connect(grant.ws_url, grant.token, {autoSubscribe: true});
      if (room !== joined) { // closed while connecting
        joined.disconnect();
        return;
      }
      if (!videoPublication) status(`in room ${grant.room}, waiting for ${grant.participant}…`);
      sizeTimer = setInterval(() => {
        const video = $("preview-video");
        $("preview-size").textContent = video.videoWidth ? `${video.videoWidth}×${video.videoHeight}` : "";
      }, 500);
    } catch (error) {
      status(`preview failed: ${error.message || error}`);
    }
  }

  function close() {
    if (sizeTimer) clearInterval(sizeTimer);
    sizeTimer = null;
    stopMeter();
    if (room) room.disconnect();
    room = null;
    target = null;
    videoPublication = null;
    if (audioElement) audioElement.remove();
    audioElement = null;
    $("preview-video").srcObject = null;
    $("preview-size").textContent = "";
    $("preview").hidden = true;
  }

  // The list changed: a preview of a deleted ingress says so (its participant leaving says the rest).
  function update(ingresses) {
    if (target && !ingresses.has(target.ingress_id)) status("the ingress was deleted");
  }

  for (const button of document.querySelectorAll("#preview .quality")) {
    button.addEventListener("click", () => {
      quality = button.dataset.quality;
      applyQuality();
    });
  }
  $("preview-close").addEventListener("click", close);
  $("preview-mute").addEventListener("click", () => {
    const muted = $("preview-mute").textContent === "Mute";
    $("preview-mute").textContent = muted ? "Unmute" : "Mute";
    if (audioElement) audioElement.muted = muted;
  });
  markQuality();

  window.pyingressPreview = {open, close, update, get quality() { return quality; }};
})();
