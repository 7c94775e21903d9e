"""The publisher PeerConnection of one room join: one Opus audio transceiver, one simulcast video transceiver.

Built on aiortc (pinned 1.16.0) with what LiveKit needs from a publish-only client (protocol.md §5.3):
send-only transceivers limited to the one codec we encode, max-bundle, the offer extended with rid simulcast
(``simulcast.py``) and with Opus parameters for stereo/DTX (both SDP edits in ``sdp.py``), remote candidates
trickled in after the answer.
Both transceivers' senders hold an idle track; we send the media ourselves (``direct_send``): audio through
``AudioSender``, one RTP packet per Opus frame, video through ``SimulcastSender``.
"""

import asyncio
import contextlib
import logging
import uuid
from collections.abc import Callable, Sequence
from fractions import Fraction

from aiortc import (
    RTCConfiguration,
    RTCIceServer,
    RTCPeerConnection,
    RTCRtpSender,
    RTCSessionDescription,
)
from aiortc.rtcconfiguration import RTCBundlePolicy
from aiortc.rtcicetransport import RTCIceCandidate
from aiortc.rtcrtpparameters import RTCRtpCodecCapability
from aiortc.sdp import candidate_from_sdp

from pyingress.webrtc.audio_send import OPUS_CLOCK_RATE, AudioSender
from pyingress.webrtc.direct_send import IdleTrack, MediaClock
from pyingress.webrtc.ice import gathering_from
from pyingress.webrtc.sdp import bundle_candidates, set_opus_parameters, ssrc_cname
from pyingress.webrtc.simulcast import KeyframeRequest, SimulcastEncoding, SimulcastSender

logger = logging.getLogger(__name__)

OPUS_TIME_BASE = Fraction(1, 48_000)
# The H.264 entry aiortc offers for constrained baseline, packetization-mode 1: what the pipeline encodes.
H264_PROFILE_LEVEL_ID = "42e01f"


def _video_capability(codec: str) -> RTCRtpCodecCapability:
    for capability in RTCRtpSender.getCapabilities("video").codecs:
        name = capability.mimeType.lower()
        if codec == "vp8" and name == "video/vp8":
            return capability
        if (
            codec == "h264"
            and name == "video/h264"
            and str(capability.parameters.get("profile-level-id", "")).lower() == H264_PROFILE_LEVEL_ID
        ):
            return capability
    raise ValueError(f"aiortc offers no {codec} capability")


def _opus_capability() -> RTCRtpCodecCapability:
    return next(c for c in RTCRtpSender.getCapabilities("audio").codecs if c.mimeType.lower() == "audio/opus")


class PublisherPeer:
    """One publisher RTCPeerConnection with the ingress's tracks, from offer to connected to closed."""

    def __init__(
        self,
        *,
        ice_servers: Sequence[RTCIceServer] = (),
        host_addresses: Sequence[str] | None = None,
        audio: tuple[int, bool] | None = None,  # (channels, dtx) of the Opus track, None: no audio
        video_codec: str | None = None,  # "h264" | "vp8", None: no video
        video_encodings: Sequence[SimulcastEncoding] = (),
        on_keyframe_request: KeyframeRequest | None = None,
        on_failed: Callable[[], None] | None = None,
    ) -> None:
        self.host_addresses = host_addresses
        self.pc = RTCPeerConnection(
            RTCConfiguration(iceServers=list(ice_servers), bundlePolicy=RTCBundlePolicy.MAX_BUNDLE)
        )
        self.connected = asyncio.Event()
        self.failed = asyncio.Event()
        self._on_failed = on_failed
        self._closing = False
        self._remote_set = False
        self._pending_candidates: list[RTCIceCandidate] = []
        self.audio_track: IdleTrack | None = None
        self.audio: AudioSender | None = None
        self.audio_options = audio
        self.video_track: IdleTrack | None = None
        self.simulcast: SimulcastSender | None = None
        if audio is not None:
            self.audio_track = IdleTrack("audio")
            transceiver = self.pc.addTransceiver(self.audio_track, direction="sendonly")
            transceiver.setCodecPreferences([_opus_capability()])
            self._audio_transceiver = transceiver
            self.audio = AudioSender(transceiver)
        if video_codec is not None:
            self.video_track = IdleTrack("video", f"TR_video_{uuid.uuid4().hex[:12]}")
            transceiver = self.pc.addTransceiver(self.video_track, direction="sendonly")
            transceiver.setCodecPreferences([_video_capability(video_codec)])
            self.simulcast = SimulcastSender(transceiver, video_codec, video_encodings, on_keyframe_request)

        @self.pc.on("connectionstatechange")
        def _state() -> None:
            state = self.pc.connectionState
            logger.debug("publisher peer connection %s", state)
            if state == "connected":
                self.connected.set()
            elif state in ("failed", "closed") and not self.failed.is_set():
                # "closed" without close() from us: the DTLS transport went away under us (aiortc closes the
                # connection when every DTLS transport has closed) — as much a failure as ICE failing.
                self.failed.set()
                if not self._closing and self._on_failed is not None:
                    self._on_failed()

    @property
    def audio_cid(self) -> str | None:
        return self.audio_track.id if self.audio_track is not None else None

    @property
    def video_cid(self) -> str | None:
        return self.video_track.id if self.video_track is not None else None

    async def create_offer(self) -> str:
        """Gather (from the chosen host addresses) and return the offer LiveKit gets, candidates included."""
        with gathering_from(self.host_addresses):
            await self.pc.setLocalDescription(await self.pc.createOffer())
        sdp = self.pc.localDescription.sdp
        if self.audio is not None:
            self.audio.offer_made(ssrc_cname(sdp))
        if self.simulcast is not None:
            sdp = self.simulcast.munge_offer(sdp)
        if self.audio_options is not None and self._audio_transceiver.mid is not None:
            channels, dtx = self.audio_options
            sdp = set_opus_parameters(sdp, self._audio_transceiver.mid, stereo=channels > 1, dtx=dtx)
        return sdp

    def local_candidates(self) -> list[tuple[str, str | None, int]]:
        """Our gathered candidates as (``candidate:…``, sdpMid, sdpMLineIndex) of the first (bundle) m-line.

        aiortc gathers everything before the offer, so the offer already carries them; they are trickled as well
        (protocol.md §5.3 step 5), which costs nothing and serves a server that only reads trickles.
        """
        description = self.pc.localDescription
        if description is None:
            return []
        mid, candidates = bundle_candidates(description.sdp)
        return [(candidate, mid, 0) for candidate in candidates]

    async def set_answer(self, sdp: str) -> None:
        await self.pc.setRemoteDescription(RTCSessionDescription(sdp=sdp, type="answer"))
        self._remote_set = True
        if self.audio is not None:
            self.audio.start(sdp)
        if self.simulcast is not None:
            self.simulcast.start(sdp)
        pending, self._pending_candidates = self._pending_candidates, []
        for candidate in pending:
            await self.pc.addIceCandidate(candidate)

    async def add_remote_candidate(self, candidate: str, sdp_mid: str | None, sdp_mline_index: int | None) -> None:
        """A trickled server candidate ("candidate:…"); end-of-candidates ("") is not passed on to aioice."""
        text = candidate.removeprefix("a=").removeprefix("candidate:").strip()
        if not text:
            return
        try:
            parsed = candidate_from_sdp(text)
        except (AssertionError, ValueError, IndexError) as exc:
            logger.warning("ignoring an unparsable remote candidate %r: %s", candidate, exc)
            return
        parsed.sdpMid = sdp_mid
        parsed.sdpMLineIndex = sdp_mline_index
        if parsed.sdpMid is None and parsed.sdpMLineIndex is None:
            parsed.sdpMLineIndex = 0
        if self._remote_set:
            await self.pc.addIceCandidate(parsed)
        else:
            self._pending_candidates.append(parsed)

    def set_media_clock(self, clock: MediaClock) -> None:
        """Sender reports map NTP time to media time by ``clock``, the same for every stream (direct_send)."""
        for sender in (self.audio, self.simulcast):
            if sender is not None:
                sender.media_clock = clock

    async def send_audio(self, data: bytes, pts: int, time_base: Fraction = OPUS_TIME_BASE) -> None:
        """One Opus frame at ``pts`` in ``time_base`` (the pipeline's is Opus's own 1/48000: no arithmetic)."""
        if self.audio is None:
            return
        timestamp = pts if time_base == OPUS_TIME_BASE else round(pts * time_base * OPUS_CLOCK_RATE)
        await self.audio.send_frame(data, timestamp)

    async def send_video(self, quality: int, data: bytes, timestamp_90k: int) -> int:
        if self.simulcast is None:
            return 0
        return await self.simulcast.send_frame(quality, data, timestamp_90k)

    async def close(self) -> None:
        self._closing = True
        for sender in (self.audio, self.simulcast):
            if sender is not None:
                with contextlib.suppress(Exception):
                    await sender.stop()
        with contextlib.suppress(Exception):
            await self.pc.close()
