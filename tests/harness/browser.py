"""Debian's headless Chromium as a WHIP publisher: its fake camera and microphone, a small page of ours that POSTs
the offer with ``fetch`` (as a browser WHIP client does), driven by Playwright's Python package.

No browser download: Playwright launches the system ``/usr/bin/chromium`` (``scripts/setup test`` installs both).
The page is served from a Playwright route on ``http://127.0.0.1:8999`` (a secure context, so ``getUserMedia``
works; another origin than pyingress's, so the endpoint's CORS answers are exercised too).
"""

import json
import shutil
from pathlib import Path
from typing import Any

from tests.harness.processes import PeerError

CHROMIUM = "/usr/bin/chromium"
PAGE_URL = "http://127.0.0.1:8999/whip.html"  # nothing listens there: a Playwright route serves the page
FLAGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--use-fake-device-for-media-stream",
    "--use-fake-ui-for-media-stream",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--no-first-run",
    "--allow-loopback-in-peer-connection",
    # mDNS would hide the host candidates; the route-served page has no address, so Chromium's local network
    # access checks would count it as public and block its fetch to the loopback endpoint.
    "--disable-features=WebRtcHideLocalIpsWithMdns,LocalNetworkAccessChecks,BlockInsecurePrivateNetworkRequests",
]

PAGE = r"""<!doctype html><meta charset="utf-8"><title>WHIP</title><script>
window.whip = {};
window.publish = async (endpoint, simulcast, width, height, codec) => {
  const media = await navigator.mediaDevices.getUserMedia({
    audio: true, video: {width: {exact: width}, height: {exact: height}, frameRate: 30}});
  const pc = new RTCPeerConnection({bundlePolicy: "max-bundle"});
  window.whip.pc = pc;
  pc.addTransceiver(media.getAudioTracks()[0], {direction: "sendonly"});
  const encodings = simulcast
    ? [{rid: "f"}, {rid: "h", scaleResolutionDownBy: 2}, {rid: "q", scaleResolutionDownBy: 4}]
    : undefined;
  const video = pc.addTransceiver(media.getVideoTracks()[0], {direction: "sendonly", sendEncodings: encodings});
  if (codec) {  // e.g. "video/VP9": that codec first, the rest after (as a browser's preference)
    const all = RTCRtpSender.getCapabilities("video").codecs;
    video.setCodecPreferences([...all.filter((c) => c.mimeType === codec), ...all.filter((c) => c.mimeType !== codec)]);
  }
  await pc.setLocalDescription(await pc.createOffer());
  await new Promise((resolve) => {
    if (pc.iceGatheringState === "complete") return resolve();
    pc.addEventListener("icegatheringstatechange", () => pc.iceGatheringState === "complete" && resolve());
    setTimeout(resolve, 3000);
  });
  const response = await fetch(endpoint, {
    method: "POST", headers: {"Content-Type": "application/sdp"}, body: pc.localDescription.sdp});
  const body = await response.text();
  window.whip.location = response.headers.get("Location");
  if (response.status !== 201) return {status: response.status, body};
  await pc.setRemoteDescription({type: "answer", sdp: body});
  // The sizes a test asks for are the sizes sent: on a busy machine, or when its bandwidth estimate starts again
  // (an ICE restart), Chromium would otherwise scale the picture down for a while ("balanced").
  const parameters = video.sender.getParameters();
  parameters.degradationPreference = "maintain-resolution";
  await video.sender.setParameters(parameters);
  window.whip.answer = body;
  return {status: response.status, location: window.whip.location, answer: body};
};
const gathered = (pc) => new Promise((resolve) => {
  if (pc.iceGatheringState === "complete") return resolve();
  pc.addEventListener("icegatheringstatechange", () => pc.iceGatheringState === "complete" && resolve());
  setTimeout(resolve, 3000);
});
window.remotePort = async () => {  // the port of the remote candidate the browser is using now
  const stats = await window.whip.pc.getStats();
  let port = null;
  stats.forEach((s) => {
    if (s.type === "transport" && s.selectedCandidatePairId) {
      const pair = stats.get(s.selectedCandidatePairId);
      if (pair) port = stats.get(pair.remoteCandidateId).port;
    }
  });
  return port;
};
window.restartIce = async (base) => {  // RFC 9725 §4.3.2: new credentials in a PATCH, the answer's applied
  const pc = window.whip.pc;
  pc.restartIce();
  await pc.setLocalDescription(await pc.createOffer({iceRestart: true}));
  await gathered(pc);
  const sdp = pc.localDescription.sdp;
  const frag = [`a=ice-ufrag:${sdp.match(/a=ice-ufrag:(\S+)/)[1]}`, `a=ice-pwd:${sdp.match(/a=ice-pwd:(\S+)/)[1]}`,
    "m=audio 9 UDP/TLS/RTP/SAVPF 0", `a=mid:${sdp.match(/a=mid:(\S+)/)[1]}`,
    ...(sdp.match(/a=candidate:[^\r\n]+/g) || []), "a=end-of-candidates"].join("\r\n") + "\r\n";
  const response = await fetch(base + window.whip.location, {method: "PATCH", body: frag,
    headers: {"Content-Type": "application/trickle-ice-sdpfrag", "If-Match": "*"}});
  const text = await response.text();
  if (response.status !== 200) return {status: response.status, body: text};
  const candidates = (text.match(/a=candidate:[^\r\n]+/g) || []).map((c) => c + "\r\n").join("");
  let answer = window.whip.answer
    .replace(/a=ice-ufrag:\S+/g, `a=ice-ufrag:${text.match(/a=ice-ufrag:(\S+)/)[1]}`)
    .replace(/a=ice-pwd:\S+/g, `a=ice-pwd:${text.match(/a=ice-pwd:(\S+)/)[1]}`)
    .split("\r\n").filter((l) => !l.startsWith("a=candidate:")).join("\r\n")
    .replace(/(a=ice-pwd:\S+\r\n)/g, `$1${candidates}`);
  await pc.setRemoteDescription({type: "answer", sdp: answer});
  window.whip.answer = answer;
  return {status: response.status, contentType: response.headers.get("Content-Type"), body: text};
};
window.outbound = async () => {
  const stats = await window.whip.pc.getStats();
  const found = [];
  stats.forEach((s) => {
    if (s.type === "outbound-rtp" && s.kind === "video") found.push({
      rid: s.rid || "", width: s.frameWidth || 0, height: s.frameHeight || 0, frames: s.framesSent || 0,
      bytes: s.bytesSent || 0, limitation: s.qualityLimitationReason || "", active: s.active,
      target: s.targetBitrate || 0});
    if (s.type === "remote-inbound-rtp") found.push({
      remote: s.kind, lost: s.packetsLost, fraction: s.fractionLost, rtt: s.roundTripTime});
    if (s.type === "candidate-pair" && s.nominated && s.state === "succeeded") found.push({
      pair: s.state, available: s.availableOutgoingBitrate || 0, rtt: s.currentRoundTripTime || 0});
  });
  return found;
};
window.unpublish = async (base) => {
  const status = (await fetch(base + window.whip.location, {method: "DELETE"})).status;
  window.whip.pc.close();
  return status;
};
</script>"""


def _require_browser() -> None:
    if not Path(CHROMIUM).exists():
        raise PeerError(f"{CHROMIUM} not installed: run scripts/setup test (apt-get install chromium)")
    try:
        import playwright  # noqa: F401
    except ImportError:
        raise PeerError("playwright not installed: run scripts/setup test (pip install playwright)") from None
    if shutil.which("chromium") is None and not Path(CHROMIUM).exists():
        raise PeerError("chromium is not on PATH")


class ChromiumPublisher:
    """``async with ChromiumPublisher() as browser: await browser.publish(endpoint, simulcast=True)``."""

    def __init__(self, video_file: Path | None = None) -> None:
        """``video_file`` (MJPEG or Y4M, the size asked for): the fake camera plays it instead of its own picture,
        which is too simple for the encoder to spend a 720p bitrate on."""
        _require_browser()
        self.flags = FLAGS + ([f"--use-file-for-fake-video-capture={video_file}"] if video_file else [])
        self._playwright: Any = None
        self._browser: Any = None
        self.page: Any = None
        self.console: list[str] = []

    async def __aenter__(self) -> "ChromiumPublisher":
        from playwright.async_api import async_playwright

        self._playwright = await async_playwright().start()
        self._browser = await self._playwright.chromium.launch(executable_path=CHROMIUM, args=self.flags, headless=True)
        context = await self._browser.new_context()
        await context.route(PAGE_URL, lambda route: route.fulfill(status=200, content_type="text/html", body=PAGE))
        self.page = await context.new_page()
        self.page.on("console", lambda message: self.console.append(message.text))
        await self.page.goto(PAGE_URL)
        return self

    async def __aexit__(self, *exc: object) -> None:
        if self._browser is not None:
            await self._browser.close()
        if self._playwright is not None:
            await self._playwright.stop()

    async def publish(
        self, endpoint: str, *, simulcast: bool = False, size: tuple[int, int] = (1280, 720), codec: str = ""
    ) -> dict[str, Any]:
        """POST the page's offer to ``endpoint``; ``codec`` ("video/VP9", "video/AV1" …) goes first in its offer."""
        result: dict[str, Any] = await self.page.evaluate(
            "([e, s, w, h, c]) => window.publish(e, s, w, h, c)", [endpoint, simulcast, size[0], size[1], codec]
        )
        return result

    async def outbound(self) -> list[dict[str, Any]]:
        """The browser's own view of what it sends, per rid (frameWidth, qualityLimitationReason …)."""
        found: list[dict[str, Any]] = await self.page.evaluate("() => window.outbound()")
        return found

    async def wait_sending(self, widths: set[int], timeout: float = 30.0) -> list[dict[str, Any]]:
        """Until the browser sends every one of ``widths`` (its own bandwidth estimate decides when), or timeout."""
        import asyncio
        import time

        deadline = time.monotonic() + timeout
        stats = await self.outbound()
        while time.monotonic() < deadline:
            if widths <= {s.get("width") for s in stats if s.get("frames")}:
                break
            await asyncio.sleep(0.5)
            stats = await self.outbound()
        return stats

    async def remote_port(self) -> int | None:
        port: int | None = await self.page.evaluate("() => window.remotePort()")
        return port

    async def restart_ice(self, base_url: str) -> dict[str, Any]:
        """An ICE restart as a WHIP client does it: PATCH with the new credentials, the answer fragment applied."""
        result: dict[str, Any] = await self.page.evaluate("(b) => window.restartIce(b)", base_url)
        return result

    async def unpublish(self, base_url: str) -> int:
        status: int = await self.page.evaluate("(b) => window.unpublish(b)", base_url)
        return status

    def describe(self, stats: list[dict[str, Any]]) -> str:
        return json.dumps(stats)
