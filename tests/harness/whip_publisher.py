"""aiortc as a WHIP publisher: a real offer over HTTP, real ICE/DTLS/SRTP, pre-encoded H.264/VP8 + Opus over RTP.

The media is a test pattern (and a tone) encoded once by Debian ffmpeg into a short loop and sent paced at its
frame rate, so publishing costs no encoder CPU.  ``WhipPublisher`` sends one video layer through aiortc's own
sender; with ``simulcast`` sizes it sends one rid layer per size through ``pyingress.webrtc.simulcast`` (the same
rid simulcast sender pyingress publishes into rooms with), rids in the offer best first, as browsers list
``sendEncodings`` for a WHIP endpoint (rid order → HIGH, MEDIUM, LOW).
"""

import asyncio
import contextlib
import subprocess
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from fractions import Fraction
from pathlib import Path

import aiohttp
import av
from aiortc import RTCConfiguration, RTCPeerConnection, RTCRtpSender, RTCSessionDescription
from aiortc.mediastreams import MediaStreamError, MediaStreamTrack
from aiortc.rtcrtpparameters import RTCRtpCodecCapability
from multidict import CIMultiDict

from pyingress.webrtc.ice import LOOPBACK_ADDRESSES, gathering_from
from pyingress.webrtc.peer import PublisherPeer
from pyingress.webrtc.simulcast import SimulcastEncoding
from tests.harness.publishers import ffmpeg_binary

FPS = 30
LOOP_SECONDS = 2  # the clip loops: one keyframe per second (-g 30)
VIDEO_TB = Fraction(1, 90_000)
AUDIO_TB = Fraction(1, 48_000)
SIMULCAST_RIDS = ("f", "h", "q")


@dataclass(frozen=True)
class Clip:
    frames: tuple[bytes, ...]  # one access unit / frame each, at FPS (video) or 20 ms (audio)
    keyframes: tuple[bool, ...] = ()


def encode_video(directory: Path, codec: str, width: int, height: int, bitrate: str = "1500k") -> Clip:
    """A LOOP_SECONDS test pattern as H.264 constrained baseline (Annex-B) or VP8 frames; cached on disk."""
    suffix = "h264" if codec == "h264" else "ivf"
    path = directory / f"pattern-{codec}-{width}x{height}-{bitrate}.{suffix}"
    if not path.exists():
        encoder = (
            ["-c:v", "libx264", "-profile:v", "baseline", "-preset", "veryfast", "-tune", "zerolatency", "-bf", "0"]
            if codec == "h264"
            else ["-c:v", "libvpx", "-deadline", "realtime", "-cpu-used", "8", "-lag-in-frames", "0"]
        )
        command = [ffmpeg_binary(), "-hide_banner", "-loglevel", "error", "-y", "-f", "lavfi", "-i"]
        command += [f"testsrc2=size={width}x{height}:rate={FPS}:duration={LOOP_SECONDS}"]
        command += [*encoder, "-g", str(FPS), "-b:v", bitrate, "-pix_fmt", "yuv420p", str(path)]
        subprocess.run(command, check=True, timeout=120)
    frames, keys = [], []
    with av.open(str(path)) as container:
        for packet in container.demux(video=0):
            if packet.size:
                frames.append(bytes(packet))
                keys.append(bool(packet.is_keyframe))
    return Clip(tuple(frames), tuple(keys))


def encode_audio(directory: Path, channels: int = 2) -> Clip:
    path = directory / f"tone-{channels}.ogg"
    if not path.exists():
        layout = "stereo" if channels == 2 else "mono"
        command = [ffmpeg_binary(), "-hide_banner", "-loglevel", "error", "-y", "-f", "lavfi", "-i"]
        command += [f"sine=frequency=440:sample_rate=48000:duration={LOOP_SECONDS},aformat=channel_layouts={layout}"]
        command += ["-c:a", "libopus", "-b:a", "64k", "-frame_duration", "20", str(path)]
        subprocess.run(command, check=True, timeout=120)
    with av.open(str(path)) as container:
        return Clip(tuple(bytes(p) for p in container.demux(audio=0) if p.size))


class LoopTrack(MediaStreamTrack):
    """Pre-encoded frames for aiortc's sender, paced in real time, looping, with increasing timestamps."""

    def __init__(self, kind: str, clip: Clip, start_delay: float = 0.0) -> None:
        super().__init__()
        self.kind = kind
        self.clip = clip
        self.start_delay = start_delay  # seconds the first frame waits after the sender first asks for one
        self.sent = 0
        self._started: float | None = None
        self._step = 1 / FPS if kind == "video" else 0.02
        self.keyframe_requests = 0
        self._jump = False
        self._skip = 0  # frames of the clip skipped to answer keyframe requests

    def request_keyframe(self) -> None:
        """A PLI/FIR reached the sender: the next frame sent is the clip's next keyframe, as an encoder would make
        one (aiortc ignores keyframe requests for pre-encoded packets, peers.md §5)."""
        self.keyframe_requests += 1
        self._jump = True

    async def recv(self) -> av.Packet:
        if self.readyState != "live":
            raise MediaStreamError
        if self._started is None:
            self._started = time.monotonic() + self.start_delay
        due = self._started + self.sent * self._step
        delay = due - time.monotonic()
        if delay > 0:
            await asyncio.sleep(delay)
        count = len(self.clip.frames)
        if self._jump and self.clip.keyframes:
            self._jump = False
            index = (self.sent + self._skip) % count
            ahead = next((i for i in range(index, index + count) if self.clip.keyframes[i % count]), index)
            self._skip += ahead - index  # the picture jumps to the keyframe; time goes on frame by frame
        packet = av.Packet(self.clip.frames[(self.sent + self._skip) % count])
        if self.kind == "video":
            packet.pts = self.sent * 90_000 // FPS
            packet.time_base = VIDEO_TB
        else:
            packet.pts = self.sent * 960
            packet.time_base = AUDIO_TB
        self.sent += 1
        return packet


def _capability(kind: str, codec: str) -> RTCRtpCodecCapability:
    for capability in RTCRtpSender.getCapabilities(kind).codecs:
        name = capability.mimeType.lower()
        if name == f"{kind}/{codec}" and (
            codec != "h264" or str(capability.parameters.get("profile-level-id", "")).lower() == "42e01f"
        ):
            return capability
    raise ValueError(f"aiortc has no {kind}/{codec}")


@dataclass
class WhipResponse:
    status: int
    headers: CIMultiDict[str]
    body: str


@dataclass
class WhipPublisher:
    """One WHIP publisher: ``await start()`` posts the offer and connects; ``await stop()`` DELETEs and closes."""

    endpoint: str  # http://host:port/w/<stream key> (or /w with ``bearer``)
    clips: Path
    video: str | None = "h264"  # "h264", "vp8" or None
    audio: bool = True
    size: tuple[int, int] = (1280, 720)
    bitrate: str = "1500k"
    simulcast: Sequence[tuple[int, int]] = ()  # sizes, best first: one rid layer each
    bearer: str | None = None
    stereo: bool = True
    # Video's first frame this long after audio's (aiortc starts both senders together, video first): with audio
    # ahead, the receiver sees audio's first packet first, as from a browser whose camera opens after its microphone.
    video_delay: float = 0.0
    host_addresses: Sequence[str] = LOOPBACK_ADDRESSES
    response: WhipResponse | None = None
    location: str | None = None
    pc: RTCPeerConnection | None = None
    peer: PublisherPeer | None = None
    _tasks: list[asyncio.Task[None]] = field(default_factory=list)
    answer_received_at: float = 0.0

    async def offer(self) -> str:
        audio_clip = encode_audio(self.clips, 2 if self.stereo else 1) if self.audio else None
        if self.simulcast:
            assert self.video is not None
            encodings = [SimulcastEncoding(rid, 2 - i) for i, rid in enumerate(SIMULCAST_RIDS[: len(self.simulcast)])]
            self.peer = PublisherPeer(
                host_addresses=self.host_addresses,
                audio=(2 if self.stereo else 1, False) if self.audio else None,
                video_codec=self.video,
                video_encodings=encodings,
            )
            self.pc = self.peer.pc
            self._layer_clips = [encode_video(self.clips, self.video, w, h) for w, h in self.simulcast]
            self._audio_clip = audio_clip
            return await self.peer.create_offer()
        self.pc = RTCPeerConnection(RTCConfiguration(iceServers=[]))
        if self.video is not None:
            clip = encode_video(self.clips, self.video, *self.size, bitrate=self.bitrate)
            track = LoopTrack("video", clip, start_delay=self.video_delay if self.audio else 0.0)
            transceiver = self.pc.addTransceiver(track, direction="sendonly")
            transceiver.setCodecPreferences([_capability("video", self.video)])
            transceiver.sender._send_keyframe = track.request_keyframe  # type: ignore[method-assign]
        if audio_clip is not None:
            track = LoopTrack("audio", audio_clip)
            self.pc.addTransceiver(track, direction="sendonly").setCodecPreferences([_capability("audio", "opus")])
        with gathering_from(self.host_addresses):
            await self.pc.setLocalDescription(await self.pc.createOffer())
        return self.pc.localDescription.sdp

    async def post(self, offer: str) -> WhipResponse:
        headers = {"Content-Type": "application/sdp"}
        if self.bearer is not None:
            headers["Authorization"] = f"Bearer {self.bearer}"
        async with aiohttp.ClientSession() as http, http.post(self.endpoint, data=offer, headers=headers) as r:
            self.response = WhipResponse(r.status, CIMultiDict(r.headers), await r.text())
        return self.response

    async def start(
        self, answer_edit: Callable[[str], str] | None = None, offer_edit: Callable[[str], str] | None = None
    ) -> WhipResponse:
        offer = await self.offer()
        response = await self.post(offer_edit(offer) if offer_edit is not None else offer)
        if response.status != 201:
            await self.close()
            return response
        self.answer_received_at = time.monotonic()
        self.location = response.headers.get("Location")
        answer = answer_edit(response.body) if answer_edit is not None else response.body
        if self.peer is not None:
            await self.peer.set_answer(answer)
            self._tasks.append(asyncio.create_task(self._send_simulcast()))
        else:
            assert self.pc is not None
            await self.pc.setRemoteDescription(RTCSessionDescription(sdp=answer, type="answer"))
        return response

    async def _send_simulcast(self) -> None:
        """Every layer's frame of one instant, then the audio due, paced at FPS."""
        assert self.peer is not None
        await self.peer.connected.wait()
        started = time.monotonic()
        sent_audio = 0
        for index in range(10**9):
            due = started + index / FPS
            await asyncio.sleep(max(0.0, due - time.monotonic()))
            for quality, clip in zip((2, 1, 0), self._layer_clips, strict=False):
                frame = clip.frames[index % len(clip.frames)]
                await self.peer.send_video(quality, frame, index * 90_000 // FPS)
            while self._audio_clip is not None and sent_audio * 0.02 <= index / FPS:
                data = self._audio_clip.frames[sent_audio % len(self._audio_clip.frames)]
                await self.peer.send_audio(data, sent_audio * 960)
                sent_audio += 1

    def resource_url(self) -> str:
        assert self.location is not None
        base = self.endpoint.split("/", 3)
        return f"{base[0]}//{base[2]}{self.location}"

    async def delete(self) -> int:
        async with aiohttp.ClientSession() as http, http.delete(self.resource_url()) as r:
            return r.status

    async def close(self) -> None:
        for task in self._tasks:
            task.cancel()
        for task in self._tasks:
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await task
        if self.peer is not None:
            await self.peer.close()
        elif self.pc is not None:
            await self.pc.close()

    async def stop(self) -> None:
        """DELETE the resource (as a polite publisher does), then close the connection."""
        if self.location is not None:
            with contextlib.suppress(aiohttp.ClientError):
                await self.delete()
        await self.close()
