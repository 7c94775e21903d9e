"""rid simulcast sending on top of aiortc 1.16.0 (pinned): one video m-line carrying every layer of a track.

aiortc has no simulcast (protocol.md §5.6, peers.md §5): one SSRC per sender, no ``a=rid``/``a=simulcast``, the
``rtp-stream-id`` header extension parsed but never written.  LiveKit wants what a browser sends (§5.4): one video
transceiver whose offer lists ``a=rid:q send`` … and ``a=simulcast:send q;h;f``, and RTP packets that name their
layer with the ``mid`` and ``rtp-stream-id`` extensions, each layer with its own SSRC and sequence space.

How this module extends aiortc, by composition only:

* The video transceiver's own ``RTCRtpSender`` keeps a ``SimulcastTrack`` that never yields a frame: it gives the
  track its msid (LiveKit matches AddTrackRequest.cid against it) and otherwise stays idle.
* ``sdp.add_simulcast_to_offer`` rewrites the offer text aiortc produced for that m-line (its SDP model has no
  rid); ``sdp.negotiated_video`` reads what the answer accepted.
* ``SimulcastSender`` owns one ``LayerStream`` per layer and writes their RTP itself through the transceiver's
  DTLS transport.  It registers each layer's SSRC with that transport's RTP router, the same hook aiortc's senders
  use, so PLI/FIR and NACK for a layer reach that layer: a keyframe request callback per quality, retransmission
  from a per-layer history.  RTCP sender reports go out per layer (LiveKit aligns layer timestamps with them).

Private aiortc names this module relies on (stable within the pinned version, each exercised by
``tests/webrtc/test_simulcast.py``): ``RTCDtlsTransport._send_rtp`` and ``._rtp_router`` (the RTP/RTCP
path every aiortc sender uses), the packetizers ``H264Encoder._split_bitstream``/``._packetize`` and
``Vp8Encoder._packetize`` (classmethods, no encoder is created), ``RTCRtpSender._ssrc``/``._rtx_ssrc`` (read only,
to keep layer SSRCs distinct) and ``MediaStreamTrack._id`` (the track id LiveKit sees); for sending a frame's
packets without aiortc's per-packet coroutines, ``RTCDtlsTransport._tx_srtp`` and aioice's
``Connection._nominated`` (the pair's ``protocol.transport`` and ``remote_addr``).
"""

import asyncio
import contextlib
import logging
import random
import struct
import time
from collections.abc import Awaitable, Callable, Iterable, Sequence
from dataclasses import dataclass, field
from typing import Any

from aioice.ice import StunProtocol
from aiortc import RTCRtpTransceiver
from aiortc.codecs.h264 import H264Encoder
from aiortc.codecs.vpx import Vp8Encoder
from aiortc.mediastreams import MediaStreamError, MediaStreamTrack
from aiortc.rtcrtpparameters import RTCRtpParameters
from aiortc.rtp import (
    RTCP_PSFB_FIR,
    RTCP_PSFB_PLI,
    RTCP_RTPFB_NACK,
    AnyRtcpPacket,
    HeaderExtensionsMap,
    RtcpByePacket,
    RtcpPsfbPacket,
    RtcpRtpfbPacket,
    RtcpSdesPacket,
    RtcpSenderInfo,
    RtcpSourceInfo,
    RtcpSrPacket,
    RtpPacket,
)

from pyingress.webrtc.sdp import RID_URI, NegotiatedVideo, add_simulcast_to_offer, negotiated_video, ssrc_cname

logger = logging.getLogger(__name__)

VIDEO_CLOCK_RATE = 90_000
# Per-layer retransmission memory.  aiortc keeps 128 packets (≈0.1 s of a 1080p layer); 1024 covers about a
# second of the top layer at the presets' bitrates, enough for the SFU's NACK round trips.
HISTORY_SIZE = 1024
# LiveKit names layers by position with these rids (protocol.md §5.4: with 3 layers q→0, h→1, f→2; with 2 layers
# rid[0]→0, rid[1]→1).  Assigning them lowest quality first keeps the server's mapping warning-free for any count.
RIDS = ("q", "h", "f")

KeyframeRequest = Callable[[int], None]


@dataclass(frozen=True)
class SimulcastEncoding:
    """One layer as negotiated: its rid and the LiveKit VideoQuality it carries."""

    rid: str
    quality: int


def assign_rids(qualities: Iterable[int]) -> tuple[SimulcastEncoding, ...]:
    """rids for the given layer qualities, lowest quality first (q, h, f)."""
    ordered = sorted(set(qualities))
    if not ordered or len(ordered) > len(RIDS):
        raise ValueError(f"simulcast needs 1 to {len(RIDS)} distinct layer qualities, got {ordered}")
    return tuple(SimulcastEncoding(rid, quality) for rid, quality in zip(RIDS, ordered, strict=False))


# ---------------------------------------------------------------------------------------------------------------
# The never-producing track that stands for the simulcast track in aiortc's own sender


class SimulcastTrack(MediaStreamTrack):
    """The video MediaStreamTrack of the transceiver: its id is the msid LiveKit matches; it yields no frames.

    Frames go through ``SimulcastSender.send_frame`` instead; aiortc's sender waits on ``recv`` until ``stop``.
    """

    kind = "video"

    def __init__(self, track_id: str | None = None) -> None:
        super().__init__()
        if track_id:
            self._id = track_id
        self._ended = asyncio.Event()

    async def recv(self) -> object:  # type: ignore[override]
        await self._ended.wait()
        raise MediaStreamError

    def stop(self) -> None:
        self._ended.set()
        super().stop()


# ---------------------------------------------------------------------------------------------------------------
# One layer's RTP stream


def _random32() -> int:
    return random.getrandbits(32)


def _initial_sequence() -> int:
    # The lower half of the range, as aiortc and libwebrtc do, so SRTP's rollover counter is not hit early.
    return random.getrandbits(15)


@dataclass
class LayerStats:
    frames: int = 0
    packets: int = 0
    octets: int = 0
    retransmitted: int = 0
    keyframe_requests: int = 0


@dataclass(eq=False)  # identity-hashed: aiortc's RtpRouter keeps its senders in sets
class LayerStream:
    """One simulcast encoding on the wire: SSRC, sequence numbers, timestamp origin, retransmission history.

    ``packetize`` builds the packets of one frame (sans IO); ``SimulcastSender`` sends them.  The router of the
    DTLS transport hands RTCP for this SSRC to ``_handle_rtcp_packet`` (aiortc's RtpSender interface).
    """

    encoding: SimulcastEncoding
    ssrc: int
    codec: str  # "h264" | "vp8"
    on_keyframe_request: KeyframeRequest | None = None
    sequence_number: int = field(default_factory=_initial_sequence)
    timestamp_origin: int = field(default_factory=_random32)
    stats: LayerStats = field(default_factory=LayerStats)
    retransmit: Callable[[RtpPacket], Awaitable[None]] | None = None
    _history: dict[int, RtpPacket] = field(default_factory=dict, repr=False)
    _picture_id: int = field(default_factory=lambda: random.getrandbits(15), repr=False)
    _last_rtp: int | None = field(default=None, repr=False)
    _last_wall: float = field(default=0.0, repr=False)

    @property
    def _ssrc(self) -> int:  # the attribute aiortc's RtpRouter reads from its senders
        return self.ssrc

    def payloads(self, frame: bytes) -> list[bytes]:
        if self.codec == "h264":
            return H264Encoder._packetize(H264Encoder._split_bitstream(frame))
        if self.codec == "vp8":
            payloads = Vp8Encoder._packetize(frame, self._picture_id)
            self._picture_id = (self._picture_id + 1) % (1 << 15)
            return payloads
        raise ValueError(f"unsupported simulcast codec {self.codec!r}")

    def packetize(
        self, frame: bytes, timestamp: int, payload_type: int, mid: str | None, now: float | None = None
    ) -> list[RtpPacket]:
        """The RTP packets of one encoded frame whose media time is ``timestamp`` (90 kHz units)."""
        rtp_timestamp = (self.timestamp_origin + timestamp) & 0xFFFFFFFF
        payloads = self.payloads(frame)
        packets = []
        abs_send_time = (_ntp(time.time()) >> 14) & 0x00FFFFFF  # 6.18 fixed point of the NTP time
        for index, payload in enumerate(payloads):
            packet = RtpPacket(
                payload_type=payload_type,
                marker=1 if index == len(payloads) - 1 else 0,
                sequence_number=self.sequence_number,
                timestamp=rtp_timestamp,
                ssrc=self.ssrc,
                payload=payload,
            )
            packet.extensions.mid = mid
            packet.extensions.rtp_stream_id = self.encoding.rid
            packet.extensions.abs_send_time = abs_send_time
            self._history[self.sequence_number % HISTORY_SIZE] = packet
            self.sequence_number = (self.sequence_number + 1) & 0xFFFF
            packets.append(packet)
            self.stats.packets += 1
            self.stats.octets += len(payload)
        self.stats.frames += 1
        self._last_rtp = rtp_timestamp
        self._last_wall = time.time() if now is None else now
        return packets

    def history(self, sequence_number: int) -> RtpPacket | None:
        packet = self._history.get(sequence_number % HISTORY_SIZE)
        return packet if packet is not None and packet.sequence_number == sequence_number else None

    def sender_report(self, now: float | None = None) -> RtcpSrPacket | None:
        """An SR whose NTP time is now and whose RTP time is extrapolated from the last frame sent."""
        if self._last_rtp is None:
            return None
        wall = time.time() if now is None else now
        elapsed = max(0.0, wall - self._last_wall)
        rtp_now = (self._last_rtp + int(elapsed * VIDEO_CLOCK_RATE)) & 0xFFFFFFFF
        return RtcpSrPacket(
            ssrc=self.ssrc,
            sender_info=RtcpSenderInfo(
                ntp_timestamp=_ntp(wall),
                rtp_timestamp=rtp_now,
                packet_count=self.stats.packets & 0xFFFFFFFF,
                octet_count=self.stats.octets & 0xFFFFFFFF,
            ),
        )

    def request_keyframe(self) -> None:
        self.stats.keyframe_requests += 1
        if self.on_keyframe_request is not None:
            self.on_keyframe_request(self.encoding.quality)

    async def _handle_rtcp_packet(self, packet: AnyRtcpPacket) -> None:
        if isinstance(packet, RtcpRtpfbPacket) and packet.fmt == RTCP_RTPFB_NACK:
            for sequence_number in packet.lost:
                resend = self.history(sequence_number)
                if resend is not None and self.retransmit is not None:
                    self.stats.retransmitted += 1
                    await self.retransmit(resend)
        elif isinstance(packet, RtcpPsfbPacket) and packet.fmt in (RTCP_PSFB_PLI, RTCP_PSFB_FIR):
            self.request_keyframe()


_NTP_EPOCH_OFFSET = 2_208_988_800  # seconds from 1900-01-01 to 1970-01-01


def serialize_frame(packets: Sequence[RtpPacket], extensions: HeaderExtensionsMap) -> list[bytes]:
    """The packets of one frame on the wire, as ``RtpPacket.serialize`` writes them.

    The packets of a frame differ only in marker, sequence number and payload (one SSRC, timestamp, payload type
    and header extension values: mid, rid, abs-send-time), so the header after the sequence number — extensions
    included — is built once, by aiortc, and reused."""
    if not packets:
        return []
    first = packets[0].serialize(extensions)
    if packets[0].padding_size or packets[0].csrc:
        return [first] + [packet.serialize(extensions) for packet in packets[1:]]
    flags = first[0]
    rest = first[4 : len(first) - len(packets[0].payload)]  # timestamp, SSRC, extensions
    return [first] + [
        _FIXED.pack(flags, (packet.marker << 7) | packet.payload_type, packet.sequence_number) + rest + packet.payload
        for packet in packets[1:]
    ]


_FIXED = struct.Struct("!BBH")


def _udp_sender(transport: Any) -> Callable[[bytes], None] | None:
    """SRTP-protect and send on the nominated ICE pair's UDP socket, synchronously: what
    ``RTCDtlsTransport._send_rtp`` → ``RTCIceTransport._send`` → aioice ``Connection.send`` → ``StunProtocol.
    send_data`` do, without four coroutines per packet.  None when that path is not a plain one (not connected
    yet or any more, no nominated pair, a protocol other than aioice's own): then aiortc's path is taken, which
    raises ``ConnectionError`` as before."""
    srtp = getattr(transport, "_tx_srtp", None)
    if srtp is None or transport.state != "connected":
        return None
    connection = getattr(getattr(transport, "transport", None), "_connection", None)
    pair = connection._nominated.get(1) if connection is not None else None
    if pair is None or type(pair.protocol) is not StunProtocol or pair.protocol.transport is None:
        return None
    udp, address, protect = pair.protocol.transport, pair.remote_addr, srtp.protect

    def send(data: bytes) -> None:
        udp.sendto(protect(data), address)

    return send


def _ntp(wall: float) -> int:
    seconds = int(wall)
    fraction = int((wall - seconds) * (1 << 32)) & 0xFFFFFFFF
    return ((seconds + _NTP_EPOCH_OFFSET) << 32) | fraction


# ---------------------------------------------------------------------------------------------------------------
# The sender


class SimulcastSender:
    """Sends pre-encoded frames of every layer of one video track over the transceiver's m-line.

    Lifecycle: construct with the transceiver (its sender holding a ``SimulcastTrack``) before the offer;
    ``munge_offer`` the local offer text; after ``setRemoteDescription(answer)`` call ``start(answer_sdp)``;
    ``send_frame`` per encoded frame (when the peer connection is connected); ``stop`` at the end.
    """

    def __init__(
        self,
        transceiver: RTCRtpTransceiver,
        codec: str,
        encodings: Sequence[SimulcastEncoding],
        on_keyframe_request: KeyframeRequest | None = None,
    ) -> None:
        codec = codec.lower()
        if codec not in ("h264", "vp8"):
            raise ValueError(f"unsupported simulcast codec {codec!r}")
        self.transceiver = transceiver
        self.codec = codec
        self.encodings = tuple(encodings)
        ssrcs: set[int] = {transceiver.sender._ssrc, transceiver.sender._rtx_ssrc, 0}
        self.layers: dict[int, LayerStream] = {}
        for encoding in self.encodings:
            ssrc = _random32()
            while ssrc in ssrcs:
                ssrc = _random32()
            ssrcs.add(ssrc)
            layer = LayerStream(encoding, ssrc, codec, on_keyframe_request)
            layer.retransmit = self._resend
            self.layers[encoding.quality] = layer
        self.negotiated: NegotiatedVideo | None = None
        self._cname = ""
        self._extensions = HeaderExtensionsMap()
        self._rtcp_task: asyncio.Task[None] | None = None
        self._transport_registered: object | None = None

    @property
    def mid(self) -> str | None:
        return self.transceiver.mid

    def munge_offer(self, sdp: str) -> str:
        """The local offer (after setLocalDescription, so it carries candidates) with the rid simulcast lines."""
        if self.mid is None:
            raise RuntimeError("the transceiver has no mid yet: call setLocalDescription first")
        self._cname = ssrc_cname(sdp) or self._cname
        return add_simulcast_to_offer(sdp, self.mid, [e.rid for e in self.encodings])

    def start(self, answer_sdp: str) -> None:
        """Read the negotiated payload type and extension ids; route this track's RTCP to its layers."""
        if self.mid is None:
            raise RuntimeError("the transceiver has no mid")
        self.negotiated = negotiated_video(answer_sdp, self.mid, self.codec)
        self._extensions = HeaderExtensionsMap()
        self._extensions.configure(RTCRtpParameters(headerExtensions=list(self.negotiated.extensions)))
        if self.negotiated.extension_id(RID_URI) is None:
            raise ValueError("the answer did not accept the rtp-stream-id header extension: no simulcast")
        transport = self.transceiver.sender.transport
        for layer in self.layers.values():
            transport._rtp_router.register_sender(layer, layer.ssrc)  # type: ignore[arg-type]
        self._transport_registered = transport
        if self._rtcp_task is None:
            self._rtcp_task = asyncio.create_task(self._run_rtcp(), name="simulcast-rtcp")

    async def send_frame(self, quality: int, frame: bytes, timestamp: int) -> int:
        """Packetize and send one encoded frame of layer ``quality``; ``timestamp`` in 90 kHz. Packets sent."""
        if self.negotiated is None:
            raise RuntimeError("simulcast sender not started")
        layer = self.layers[quality]
        packets = layer.packetize(frame, timestamp, self.negotiated.payload_type, self.mid)
        transport = self.transceiver.sender.transport
        send = _udp_sender(transport)
        for data in serialize_frame(packets, self._extensions):
            if send is not None:
                send(data)
            else:
                await transport._send_rtp(data)
        return len(packets)

    async def _resend(self, packet: RtpPacket) -> None:
        with contextlib.suppress(ConnectionError):
            # Same SSRC and sequence number: no RTX is negotiated (the offer has none), LiveKit's buffer takes
            # the late copy in place of the lost one.
            await self.transceiver.sender.transport._send_rtp(packet.serialize(self._extensions))

    def rtcp_packets(self, now: float | None = None) -> list[AnyRtcpPacket]:
        """Sender reports (+ SDES CNAME) for every layer that has sent something."""
        packets: list[AnyRtcpPacket] = []
        chunks = []
        for layer in self.layers.values():
            report = layer.sender_report(now)
            if report is None:
                continue
            packets.append(report)
            if self._cname:
                chunks.append(RtcpSourceInfo(ssrc=layer.ssrc, items=[(1, self._cname.encode("utf8"))]))
        if chunks:
            packets.append(RtcpSdesPacket(chunks=chunks))
        return packets

    async def _send_rtcp(self, packets: list[AnyRtcpPacket]) -> None:
        if packets:
            with contextlib.suppress(ConnectionError):
                await self.transceiver.sender.transport._send_rtp(b"".join(bytes(p) for p in packets))

    async def _run_rtcp(self) -> None:
        try:
            while True:
                # RFC 3550's randomised interval, around one second as aiortc's senders use.
                await asyncio.sleep(0.5 + random.random())
                await self._send_rtcp(self.rtcp_packets())
        except asyncio.CancelledError:
            pass

    async def stop(self) -> None:
        """Stop reports, say BYE for the layers that sent, stop routing their RTCP here."""
        if self._rtcp_task is not None:
            self._rtcp_task.cancel()
            await asyncio.gather(self._rtcp_task, return_exceptions=True)
            self._rtcp_task = None
            sent = [layer.ssrc for layer in self.layers.values() if layer.stats.packets]
            if sent:
                await self._send_rtcp([RtcpByePacket(sources=sent)])
        transport = self._transport_registered
        if transport is not None:
            for layer in self.layers.values():
                transport._rtp_router.unregister_sender(layer)  # type: ignore[attr-defined]
            self._transport_registered = None

    def request_keyframes(self) -> None:
        for layer in self.layers.values():
            layer.request_keyframe()
