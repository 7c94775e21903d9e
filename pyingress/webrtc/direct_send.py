"""Sending pre-encoded media on an aiortc transceiver's m-line ourselves, one frame at a time, on aiortc 1.16.0.

aiortc's ``RTCRtpSender`` pulls frames from a track and sends each RTP packet through four coroutines
(``RTCDtlsTransport._send_rtp`` → ``RTCIceTransport._send`` → aioice ``Connection.send`` → ``send_data``), with
an ``av.Packet`` and Fraction timestamps per frame.  For media that is already encoded, that is most of the
publisher's per-packet cost.  What is here does the same on the wire, synchronously:

* ``RtpStream``: one SSRC's sequence numbers, timestamp origin, retransmission history and sender report,
  registered with the DTLS transport's RTP router (the hook aiortc's senders use), so that NACKs for it are
  answered from its history and PLI/FIR reach ``request_keyframe``;
* ``serialize_frame``: a frame's packets from one header;
* ``StreamSender``: what a sender of one m-line does around its streams — the negotiated payload type and header
  extensions, sender reports (+ SDES CNAME) about once a second, BYE at the end, and ``send_packets`` straight to
  the nominated ICE pair's UDP socket after SRTP (aiortc's path when that is not a plain one).

The transceiver's own ``RTCRtpSender`` keeps a track that never yields (``IdleTrack``): it gives the track its msid
and SSRC in the offer and stays quiet.  Private aiortc names relied on (stable within the pinned version):
``RTCDtlsTransport._send_rtp``, ``._rtp_router`` and ``._tx_srtp``, aioice's ``Connection._nominated``.
"""

import asyncio
import contextlib
import random
import struct
import time
from collections.abc import Awaitable, Callable, Iterable, Sequence
from dataclasses import dataclass, field
from typing import Any

from aioice.ice import StunProtocol
from aiortc import RTCRtpTransceiver
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

from pyingress.webrtc.sdp import NegotiatedCodec, negotiated_codec

VIDEO_CLOCK_RATE = 90_000
# Per-stream retransmission memory.  aiortc keeps 128 packets (≈0.1 s of a 1080p layer); 1024 covers about a
# second of the top layer at the presets' bitrates, enough for the SFU's NACK round trips (20 s of Opus).
HISTORY_SIZE = 1024

# The media time (seconds, the frames' own timeline) that the session's pacing has due now, or None if it has none.
MediaClock = Callable[[], float | None]
_NTP_EPOCH_OFFSET = 2_208_988_800  # seconds from 1900-01-01 to 1970-01-01
_FIXED = struct.Struct("!BBH")


class IdleTrack(MediaStreamTrack):
    """The MediaStreamTrack of a transceiver whose media we send ourselves: its id is the msid LiveKit matches
    (AddTrackRequest.cid); aiortc's sender waits on ``recv`` until ``stop``."""

    def __init__(self, kind: str, track_id: str | None = None) -> None:
        super().__init__()
        self.kind = kind
        if track_id:
            self._id = track_id
        self._ended = asyncio.Event()

    async def recv(self) -> object:  # type: ignore[override]
        await self._ended.wait()
        raise MediaStreamError

    def stop(self) -> None:
        self._ended.set()
        super().stop()


def random32() -> int:
    return random.getrandbits(32)


def _initial_sequence() -> int:
    # The lower half of the range, as aiortc and libwebrtc do, so SRTP's rollover counter is not hit early.
    return random.getrandbits(15)


def ntp_time(wall: float) -> int:
    seconds = int(wall)
    fraction = int((wall - seconds) * (1 << 32)) & 0xFFFFFFFF
    return ((seconds + _NTP_EPOCH_OFFSET) << 32) | fraction


@dataclass
class StreamStats:
    frames: int = 0
    packets: int = 0
    octets: int = 0
    retransmitted: int = 0
    keyframe_requests: int = 0


@dataclass(eq=False, kw_only=True)  # identity-hashed: aiortc's RtpRouter compares its senders by identity
class RtpStream:
    """One SSRC on the wire: sequence numbers, timestamp origin, retransmission history, sender report.

    ``packets`` builds the packets of one frame (sans IO); a ``StreamSender`` sends them.  The router of the DTLS
    transport hands RTCP for this SSRC to ``_handle_rtcp_packet`` (aiortc's RtpSender interface).
    """

    ssrc: int
    clock_rate: int = VIDEO_CLOCK_RATE
    sequence_number: int = field(default_factory=_initial_sequence)
    timestamp_origin: int = field(default_factory=random32)
    stats: StreamStats = field(default_factory=StreamStats)
    retransmit: Callable[[RtpPacket], Awaitable[None]] | None = None
    _history: dict[int, RtpPacket] = field(default_factory=dict, repr=False)
    _last_rtp: int | None = field(default=None, repr=False)
    _last_wall: float = field(default=0.0, repr=False)

    @property
    def _ssrc(self) -> int:  # the attribute aiortc's RtpRouter reads from its senders
        return self.ssrc

    def packets(
        self,
        payloads: Sequence[bytes],
        timestamp: int,
        payload_type: int,
        mid: str | None,
        rid: str | None = None,
        now: float | None = None,
    ) -> list[RtpPacket]:
        """The RTP packets of one frame whose media time is ``timestamp`` (in this stream's clock), the marker on
        its last packet, as aiortc's senders write them (audio included)."""
        rtp_timestamp = (self.timestamp_origin + timestamp) & 0xFFFFFFFF
        wall = time.time() if now is None else now
        abs_send_time = (ntp_time(wall) >> 14) & 0x00FFFFFF  # 6.18 fixed point of the NTP time
        packets = []
        last = len(payloads) - 1
        for index, payload in enumerate(payloads):
            packet = RtpPacket(
                payload_type=payload_type,
                marker=1 if index == last else 0,
                sequence_number=self.sequence_number,
                timestamp=rtp_timestamp,
                ssrc=self.ssrc,
                payload=payload,
            )
            packet.extensions.mid = mid
            packet.extensions.rtp_stream_id = rid
            packet.extensions.abs_send_time = abs_send_time
            self._history[self.sequence_number % HISTORY_SIZE] = packet
            self.sequence_number = (self.sequence_number + 1) & 0xFFFF
            packets.append(packet)
            self.stats.packets += 1
            self.stats.octets += len(payload)
        self.stats.frames += 1
        self._last_rtp = rtp_timestamp
        self._last_wall = wall
        return packets

    def history(self, sequence_number: int) -> RtpPacket | None:
        packet = self._history.get(sequence_number % HISTORY_SIZE)
        return packet if packet is not None and packet.sequence_number == sequence_number else None

    def sender_report(self, now: float | None = None, media_now: float | None = None) -> RtcpSrPacket | None:
        """An SR whose NTP time is now.  Its RTP time is ``media_now`` (seconds of media time due now on the
        session's clock) when given, else extrapolated from the last frame sent.

        The session's clock gives every stream of the participant the same NTP ↔ media time mapping, which is what
        an SFU aligns simulcast layers by (and a receiver audio with video).  Extrapolating from the last frame
        does not when frames leave off their time: a keyframe sent ahead of its layer's queue (for a viewer
        waiting on it) would put that layer's mapping ahead of the others by as much, and livekit-server refuses
        a switch to a layer whose keyframe then looks more than 50 ms behind the one it forwards.
        """
        if self._last_rtp is None:
            return None
        wall = time.time() if now is None else now
        if media_now is not None:
            rtp_now = (self.timestamp_origin + round(media_now * self.clock_rate)) & 0xFFFFFFFF
        else:
            elapsed = max(0.0, wall - self._last_wall)
            rtp_now = (self._last_rtp + int(elapsed * self.clock_rate)) & 0xFFFFFFFF
        return RtcpSrPacket(
            ssrc=self.ssrc,
            sender_info=RtcpSenderInfo(
                ntp_timestamp=ntp_time(wall),
                rtp_timestamp=rtp_now,
                packet_count=self.stats.packets & 0xFFFFFFFF,
                octet_count=self.stats.octets & 0xFFFFFFFF,
            ),
        )

    def request_keyframe(self) -> None:
        """A receiver asked for a keyframe (PLI/FIR); a video stream passes it on."""
        self.stats.keyframe_requests += 1

    async def _handle_rtcp_packet(self, packet: AnyRtcpPacket) -> None:
        if isinstance(packet, RtcpRtpfbPacket) and packet.fmt == RTCP_RTPFB_NACK:
            for sequence_number in packet.lost:
                resend = self.history(sequence_number)
                if resend is not None and self.retransmit is not None:
                    self.stats.retransmitted += 1
                    await self.retransmit(resend)
        elif isinstance(packet, RtcpPsfbPacket) and packet.fmt in (RTCP_PSFB_PLI, RTCP_PSFB_FIR):
            self.request_keyframe()


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


def udp_sender(transport: Any) -> Callable[[bytes], None] | None:
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


class StreamSender:
    """The streams of one transceiver's m-line, sent by us: ``attach`` once the answer is set, ``send_packets``
    per frame, ``stop`` at the end."""

    def __init__(self, transceiver: RTCRtpTransceiver) -> None:
        self.transceiver = transceiver
        self.negotiated: NegotiatedCodec | None = None
        self.cname = ""
        self._extensions = HeaderExtensionsMap()
        self._rtcp_task: asyncio.Task[None] | None = None
        self._transport_registered: Any = None
        self.media_clock: MediaClock | None = None  # the session's media time due now, for sender reports

    @property
    def mid(self) -> str | None:
        return self.transceiver.mid

    def streams(self) -> Iterable[RtpStream]:
        raise NotImplementedError

    def attach(self, answer_sdp: str, codec: str) -> NegotiatedCodec:
        """Read the negotiated payload type and extension ids of ``codec``; route the streams' RTCP to them; start
        the sender reports."""
        if self.mid is None:
            raise RuntimeError("the transceiver has no mid")
        negotiated = negotiated_codec(answer_sdp, self.mid, codec)
        self._extensions = HeaderExtensionsMap()
        self._extensions.configure(RTCRtpParameters(headerExtensions=list(negotiated.extensions)))
        self.negotiated = negotiated
        self.register()
        if self._rtcp_task is None:
            self._rtcp_task = asyncio.create_task(self._run_rtcp(), name=f"rtcp-{self.mid}")
        return negotiated

    def register(self) -> None:
        """Route RTCP for our SSRCs to our streams."""
        transport = self.transceiver.sender.transport
        for stream in self.streams():
            transport._rtp_router.register_sender(stream, stream.ssrc)  # type: ignore[arg-type]
        self._transport_registered = transport

    async def send_packets(self, packets: Sequence[RtpPacket]) -> None:
        transport = self.transceiver.sender.transport
        send = udp_sender(transport)
        for data in serialize_frame(packets, self._extensions):
            if send is not None:
                send(data)
            else:
                await transport._send_rtp(data)

    async def resend(self, packet: RtpPacket) -> None:
        with contextlib.suppress(ConnectionError):
            # Same SSRC and sequence number: no RTX is negotiated (the offer has none), LiveKit's buffer takes
            # the late copy in place of the lost one.
            await self.transceiver.sender.transport._send_rtp(packet.serialize(self._extensions))

    def rtcp_packets(self, now: float | None = None) -> list[AnyRtcpPacket]:
        """Sender reports (+ SDES CNAME) for every stream that has sent something."""
        packets: list[AnyRtcpPacket] = []
        chunks = []
        media_now = self.media_clock() if self.media_clock is not None else None
        for stream in self.streams():
            report = stream.sender_report(now, media_now)
            if report is None:
                continue
            packets.append(report)
            if self.cname:
                chunks.append(RtcpSourceInfo(ssrc=stream.ssrc, items=[(1, self.cname.encode("utf8"))]))
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
        """Stop reports, say BYE for the streams that sent, stop routing their RTCP here."""
        if self._rtcp_task is not None:
            self._rtcp_task.cancel()
            await asyncio.gather(self._rtcp_task, return_exceptions=True)
            self._rtcp_task = None
            sent = [stream.ssrc for stream in self.streams() if stream.stats.packets]
            if sent:
                await self._send_rtcp([RtcpByePacket(sources=sent)])
        transport = self._transport_registered
        if transport is not None:
            for stream in self.streams():
                transport._rtp_router.unregister_sender(stream)
            self._transport_registered = None
