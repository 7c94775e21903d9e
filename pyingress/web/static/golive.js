// pyingress dashboard: "Go live from this browser" — the camera and microphone published to a WHIP ingress, as a
// WHIP client does it (RFC 9725): POST the offer to the push URL, set the 201's answer, DELETE the resource to stop.
"use strict";

(() => {
  let live = null; // {ingressId, pc, stream, resource}

  function el(tag, props = {}, text = "") {
    const node = document.createElement(tag);
    Object.assign(node, props);
    if (text) node.textContent = text;
    return node;
  }

  function gathered(pc) {
    return new Promise((resolve) => {
      if (pc.iceGatheringState === "complete") return resolve();
      pc.addEventListener("icegatheringstatechange", () => pc.iceGatheringState === "complete" && resolve());
      setTimeout(resolve, 2000); // host candidates are enough on a LAN; do not wait for slow STUN
    });
  }

  async function start(view, say) {
    if (!window.isSecureContext || !navigator.mediaDevices) {
      throw new Error("the camera needs a secure page: open the dashboard over HTTPS or on this machine");
    }
    const endpoint = view.push[0].url;
    const stream = await navigator.mediaDevices.getUserMedia({
      audio: true, video: {width: {ideal: 1280}, height: {ideal: 720}, frameRate: {ideal: 30}}});
    const pc = new RTCPeerConnection({bundlePolicy: "max-bundle"});
    live = {ingressId: view.ingress_id, pc, stream, resource: null};
    pc.addTransceiver(stream.getAudioTracks()[0], {direction: "sendonly"});
    // Pass-through forwards what the browser sends: three simulcast layers let viewers switch quality. A
    // transcoded ingress makes its own ladder from one good layer.
    const encodings = view.transcoding ? undefined
      : [{rid: "f"}, {rid: "h", scaleResolutionDownBy: 2}, {rid: "q", scaleResolutionDownBy: 4}];
    pc.addTransceiver(stream.getVideoTracks()[0], {direction: "sendonly", sendEncodings: encodings});
    await pc.setLocalDescription(await pc.createOffer());
    await gathered(pc);
    say("sending the offer…");
    const response = await fetch(endpoint, {
      method: "POST", headers: {"Content-Type": "application/sdp"}, body: pc.localDescription.sdp});
    const body = await response.text();
    if (response.status !== 201) throw new Error(`${response.status}: ${body}`);
    live.resource = new URL(response.headers.get("Location"), endpoint).href;
    await pc.setRemoteDescription({type: "answer", sdp: body});
    pc.addEventListener("connectionstatechange", () => {
      if (["failed", "closed"].includes(pc.connectionState)) say(`connection ${pc.connectionState}`);
    });
  }

  async function stop() {
    if (!live) return;
    const {pc, stream, resource} = live;
    live = null;
    if (resource) await fetch(resource, {method: "DELETE"}).catch(() => {});
    pc.close();
    for (const track of stream.getTracks()) track.stop();
  }

  function button(view) {
    const box = el("div", {className: "golive"});
    const note = el("span", {className: "muted"});
    const running = live && live.ingressId === view.ingress_id;
    const action = el("button", {type: "button", className: running ? "golive-stop" : "golive-start"},
      running ? "Stop going live" : "Go live from this browser");
    note.textContent = running ? "publishing this browser's camera and microphone" : "";
    action.addEventListener("click", async () => {
      const say = (text) => { note.textContent = text; };
      action.disabled = true;
      try {
        if (live && live.ingressId === view.ingress_id) {
          await stop();
          action.textContent = "Go live from this browser";
          action.className = "golive-start";
          say("stopped");
        } else {
          await stop();
          say("asking for the camera…");
          await start(view, say);
          action.textContent = "Stop going live";
          action.className = "golive-stop";
          say("publishing this browser's camera and microphone");
        }
      } catch (error) {
        await stop();
        say(`could not go live: ${error.message || error}`);
      } finally {
        action.disabled = false;
      }
    });
    box.append(action, " ", note);
    return box;
  }

  window.pyingressGoLive = {button, stop, get live() { return live; }};
})();
