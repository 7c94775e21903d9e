"""One WHIP publisher's RTP → encoded frames into its MediaSource, and the RTCP that keeps the publisher sending well.

Per SSRC a ``ReceivedStream``: which track and layer it is (payload type → kind; rtp-stream-id → simulcast layer,
rid order HIGH, MEDIUM, LOW as livekit/ingress), a ``FrameAssembler``, the codec's depacketiser and a clock.

- Frames leave as soon as they are whole (``assembler.py``); after a loss a stream forwards nothing until its
  next keyframe and asks for one (PLI, or FIR when that is all the publisher offered), at most every
  ``KEYFRAME_INTERVAL`` per SSRC — the rate limit the MediaSource leaves to its door.
- Time: each stream's RTP clock is anchored to the monotonic arrival time of its first frame and runs at its
  clock rate from there, so tracks and layers share one session clock (microseconds).  When transcoding, once a
  stream's sender report arrives it is re-anchored on the publisher's own NTP clock instead (RFC 3550 §6.4.1: the
  SR pairs an RTP time with a wall-clock time), with one offset from that clock to ours for the whole publisher:
  audio and video then line up as they were captured, not as they happened to arrive (video reaches us an
  encoder's delay after audio).  Pass-through keeps the arrival anchor: moving a forwarded stream's clock back
  would squeeze the timestamps of the frames in between.  A stream never goes backwards (a step back is held
  1 ms after the last frame): pass-through would read it as B-frames.
- RTCP out: receiver reports once a second (loss, jitter, LSR/DLSR, so the publisher's own estimate works and
  browsers stop tagging packets with rid/mid), NACKs as gaps appear (``nack_due``), and for bandwidth either
  transport-wide feedback every ``FEEDBACK_INTERVAL`` (when the publisher offered transport-cc, as browsers do:
  every packet's arrival, from which the publisher estimates the path and backs off under congestion or loss,
  ``webrtc/transport_cc.py``) or else REMB once a second (a cap only: Chromium trusts a REMB in its first two
  seconds without loss and jumps to it, and backs off on the loss our receiver reports count).  The answer's
  ``x-google-start-bitrate`` makes Chromium's encoder start at full size either way (``answer.py``).
"""

import logging
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from fractions import Fraction

from aiortc.rtcrtpreceiver import StreamStatistics
from aiortc.rtp import (
    RTCP_PSFB_APP,
    RTCP_PSFB_FIR,
    RTCP_PSFB_PLI,
    RTCP_RTPFB_NACK,
    AnyRtcpPacket,
    RtcpByePacket,
    RtcpPsfbPacket,
    RtcpReceiverInfo,
    RtcpRrPacket,
    RtcpRtpfbPacket,
    RtcpSrPacket,
    RtpPacket,
    pack_remb_fci,
)

from pyingress.ingest.source import MediaSource
from pyingress.ingest.whip.assembler import FrameAssembler, unwrap
from pyingress.ingest.whip.depacketize import DepacketizeError, frame_of, is_frame_start
from pyingress.media.packets import EncodedPacket, MediaKind, StreamDescription, layer_of_rid_index
from pyingress.metrics import WHIP_RTP
from pyingress.webrtc.transport_cc import TransportFeedback

log = logging.getLogger("pyingress.whip")

MICROS = Fraction(1, 1_000_000)
KEYFRAME_INTERVAL = 0.3  # s between two keyframe requests for one SSRC
# What we tell a browser it may send (REMB): the presets' top layer is 1080p at 4.5 Mb/s plus the lower ones.
REMB_BITRATE = 10_000_000
# Transport-wide feedback this often: libwebrtc's receivers send every 50-250 ms (100 ms by default); a shorter
# interval lets the sender's estimate react sooner, at ~20 small RTCP packets a second.
FEEDBACK_INTERVAL = 0.05


@dataclass(frozen=True)
class TrackPlan:
    """One negotiated m-section as the receiver needs it."""

    kind: MediaKind
    payload_type: int
    codec: str  # FFmpeg's name: "h264", "vp8", "opus", "pcm_alaw" …
    clock_rate: int
    channels: int = 0
    rids: tuple[str, ...] = ()  # simulcast layers, HIGH first
    pli: bool = True  # the publisher accepts PLI (else FIR, if ``fir``)
    fir: bool = False
    remb: bool = False
    transport_cc: bool = False  # the publisher numbers its packets transport-wide and wants feedback

    def layer_of(self, rid: str | None) -> int | None:
        if not self.rids:
            return None
        if rid not in self.rids:
            raise KeyError(rid)
        return layer_of_rid_index(self.rids.index(rid))

    def descriptions(self) -> list[StreamDescription]:
        """What the source is told before any packet: every layer of the video, the audio."""
        if self.kind == "audio":
            return [StreamDescription("audio", self.codec, sample_rate=self.clock_rate, channels=self.channels)]
        layers = [layer_of_rid_index(i) for i in range(len(self.rids))] if self.rids else [None]
        return [StreamDescription("video", self.codec, layer=layer) for layer in layers]


@dataclass
class ReceivedStream:
    ssrc: int
    plan: TrackPlan
    layer: int | None
    assembler: FrameAssembler
    stats: StreamStatistics
    anchor: tuple[int, float] | None = None  # (extended RTP timestamp, monotonic s): where its clock is pinned
    last_time_us: int = -1
    last_timestamp: int | None = None  # extended RTP timestamp of the last frame out
    need_keyframe: bool = True  # video: nothing goes out before the first keyframe, nor after a loss
    last_keyframe_request: float = -1e9
    lsr: int = 0  # middle 32 bits of the last SR's NTP time
    lsr_at: float = 0.0
    frames: int = 0
    dropped: int = 0  # frames not forwarded: broken, or waiting for a keyframe


@dataclass
class ReceiverCounters:
    packets: int = 0
    bytes: int = 0
    unknown: int = 0  # packets of a payload type, rid or SSRC we cannot place
    frames: int = 0
    keyframe_requests: int = 0
    nacks: int = 0
    lost: int = 0
    rtcp_sent: int = 0
    streams: dict[str, int] = field(default_factory=dict)


class WhipReceiver:
    """The RtpSink of one publisher (``webrtc.receive.ReceiveTransport`` feeds it)."""

    def __init__(
        self,
        source: MediaSource,
        tracks: list[TrackPlan],
        *,
        send_rtcp: Callable[[bytes], None],
        rtcp_ssrc: int,
        max_wait: float,
        sync_to_sender_reports: bool = False,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.source = source
        self.tracks = {track.payload_type: track for track in tracks}
        self.send_rtcp = send_rtcp
        self.rtcp_ssrc = rtcp_ssrc
        self.max_wait = max_wait
        self.sync_to_sender_reports = sync_to_sender_reports
        self.clock = clock
        self.counters = ReceiverCounters()
        self.streams: dict[int, ReceivedStream] = {}
        self.last_packet_at: float | None = None
        self.kinds_seen: set[str] = set()
        self.sender_clock_offset: float | None = None  # ours minus the publisher's NTP clock, seconds
        self._exported: dict[str, int] = {}  # what the Prometheus totals already have of this publisher
        self.transport_feedback = TransportFeedback() if any(t.transport_cc for t in tracks) else None
        self._feedback_at = 0.0
        source.on_keyframe_request(self.request_keyframe)

    def describe(self) -> None:
        for track in self.tracks.values():
            for description in track.descriptions():
                self.source.put_nowait(description)

    # -- RtpSink ----------------------------------------------------------------------------------------------

    def on_rtp(self, packet: RtpPacket, arrival: float) -> None:
        """``arrival``: when the datagram reached the host (monotonic s, the kernel's stamp), for transport-cc."""
        now = self.clock()
        self.counters.packets += 1
        self.counters.bytes += len(packet.payload)
        self.last_packet_at = now
        sequence = packet.extensions.transport_sequence_number
        if sequence is not None and self.transport_feedback is not None:
            self.transport_feedback.on_packet(sequence, int(arrival * 1_000_000), packet.ssrc)
        stream = self.streams.get(packet.ssrc) or self._new_stream(packet)
        if stream is None:
            self.counters.unknown += 1
            return
        stream.stats.add(packet)
        frames = stream.assembler.push(
            packet.sequence_number, packet.timestamp, bool(packet.marker), packet.payload, now
        )
        for frame in frames:
            self._forward(stream, frame.timestamp, frame.payloads, frame.after_loss, now)
        if stream.plan.kind == "video":
            lost = stream.assembler.nack_due(now)
            if lost:
                self._send_nack(stream.ssrc, lost)

    def on_rtcp(self, packet: AnyRtcpPacket) -> None:
        if isinstance(packet, RtcpSrPacket):
            stream = self.streams.get(packet.ssrc)
            if stream is not None:
                stream.lsr = (packet.sender_info.ntp_timestamp >> 16) & 0xFFFFFFFF
                stream.lsr_at = self.clock()
                if self.sync_to_sender_reports:
                    self._pin_to_sender_clock(
                        stream, packet.sender_info.ntp_timestamp, packet.sender_info.rtp_timestamp
                    )
        elif isinstance(packet, RtcpByePacket):
            log.debug("publisher %s said BYE for %s", self.source.resource_id, packet.sources)

    # -- the timers the connection runs -----------------------------------------------------------------------

    @property
    def waiting(self) -> bool:
        """A stream has a gap open: ``poll`` soon (its give-up and NACK retries are timed), not only every
        FEEDBACK_INTERVAL."""
        return any(stream.assembler.waiting for stream in self.streams.values())

    def poll(self) -> None:
        """Give up on gaps that waited long enough (every few ms while a gap is open); transport-wide feedback."""
        now = self.clock()
        if self.transport_feedback is not None and now - self._feedback_at >= FEEDBACK_INTERVAL:
            self._feedback_at = now
            feedback = self.transport_feedback.feedback(self.rtcp_ssrc)
            if feedback:
                self._send(b"".join(feedback))
        for stream in list(self.streams.values()):
            for frame in stream.assembler.poll(now):
                self._forward(stream, frame.timestamp, frame.payloads, frame.after_loss, now)
            if stream.plan.kind == "video":
                lost = stream.assembler.nack_due(now)
                if lost:
                    self._send_nack(stream.ssrc, lost)
                if stream.need_keyframe and stream.frames:
                    self._ask_keyframe(stream, now)  # a keyframe asked for may itself have been lost

    def totals(self) -> dict[str, int]:
        """This publisher's receive events so far (what ``pyingress_whip_rtp_total`` sums)."""
        streams = list(self.streams.values())
        return {
            "packets": self.counters.packets,
            "nacked": sum(s.assembler.counters.nacks for s in streams),
            "recovered": sum(s.assembler.counters.recovered for s in streams),
            "lost": sum(s.assembler.counters.lost for s in streams),
            "keyframe_requests": self.counters.keyframe_requests,
            "frames_dropped": sum(s.dropped for s in streams),
            "transport_feedback": self.transport_feedback.counters.packets if self.transport_feedback else 0,
        }

    def export(self) -> None:
        """Add what grew since the last call to the process-wide Prometheus totals."""
        for event, value in self.totals().items():
            grown = value - self._exported.get(event, 0)
            if grown > 0:
                WHIP_RTP.labels(event).inc(grown)
                self._exported[event] = value

    def report(self) -> None:
        """Receiver reports (and REMB) for every stream; run about once a second."""
        self.export()
        if not self.streams:
            return
        now = self.clock()
        log.debug("publisher %s: %s", self.source.resource_id, self.counters)
        reports = []
        for stream in self.streams.values():
            s = stream.stats
            dlsr = int((now - stream.lsr_at) * 65536) if stream.lsr else 0
            reports.append(
                RtcpReceiverInfo(
                    ssrc=stream.ssrc,
                    fraction_lost=s.fraction_lost,
                    packets_lost=max(0, min(s.packets_lost, 0x7FFFFF)),
                    highest_sequence=(s.max_seq or 0) + s.cycles,
                    jitter=s.jitter,
                    lsr=stream.lsr,
                    dlsr=dlsr,
                )
            )
        data = b"".join(
            bytes(RtcpRrPacket(ssrc=self.rtcp_ssrc, reports=reports[i : i + 31])) for i in range(0, len(reports), 31)
        )
        video = [stream.ssrc for stream in self.streams.values() if stream.plan.remb]
        if video:
            remb = RtcpPsfbPacket(
                fmt=RTCP_PSFB_APP, ssrc=self.rtcp_ssrc, media_ssrc=0, fci=pack_remb_fci(REMB_BITRATE, video)
            )
            data += bytes(remb)
        self._send(data)

    # -- keyframes --------------------------------------------------------------------------------------------

    def request_keyframe(self, layer: int | None) -> None:
        """The session (a viewer, dynacast, the flow control) wants a keyframe on ``layer``."""
        now = self.clock()
        for stream in self.streams.values():
            if stream.plan.kind == "video" and (layer is None or stream.layer is None or stream.layer == layer):
                self._ask_keyframe(stream, now)

    def _ask_keyframe(self, stream: ReceivedStream, now: float) -> None:
        if now - stream.last_keyframe_request < KEYFRAME_INTERVAL:
            return
        stream.last_keyframe_request = now
        self.counters.keyframe_requests += 1
        if stream.plan.pli or not stream.plan.fir:
            packet = RtcpPsfbPacket(fmt=RTCP_PSFB_PLI, ssrc=self.rtcp_ssrc, media_ssrc=stream.ssrc)
        else:
            sequence = self.counters.keyframe_requests & 0xFF
            fci = stream.ssrc.to_bytes(4, "big") + bytes([sequence, 0, 0, 0])
            packet = RtcpPsfbPacket(fmt=RTCP_PSFB_FIR, ssrc=self.rtcp_ssrc, media_ssrc=0, fci=fci)
        self._send(bytes(packet))

    # -- internals --------------------------------------------------------------------------------------------

    def _new_stream(self, packet: RtpPacket) -> ReceivedStream | None:
        plan = self.tracks.get(packet.payload_type)
        if plan is None:
            return None
        try:
            layer = plan.layer_of(packet.extensions.rtp_stream_id)
        except KeyError:
            return None  # a simulcast layer we cannot name yet: its rid-tagged packets come first
        if any(s.plan is plan and s.layer == layer for s in self.streams.values()):
            # The publisher moved this layer to a new SSRC (an encoder restart): the old one is gone.
            for old in [s for s in self.streams.values() if s.plan is plan and s.layer == layer]:
                del self.streams[old.ssrc]
        codec = plan.codec
        assembler = FrameAssembler(
            is_start=lambda payload: is_frame_start(codec, payload),
            whole_packets=plan.kind == "audio",
            max_wait=self.max_wait if plan.kind == "video" else 0.0,
        )
        stream = ReceivedStream(
            packet.ssrc, plan, layer, assembler, StreamStatistics(plan.clock_rate), need_keyframe=plan.kind == "video"
        )
        self.streams[packet.ssrc] = stream
        name = plan.kind if layer is None else f"{plan.kind}.{layer}"
        self.counters.streams[name] = packet.ssrc
        log.info("publisher %s: %s stream %s (ssrc %d)", self.source.resource_id, plan.codec, name, packet.ssrc)
        return stream

    def _forward(
        self, stream: ReceivedStream, timestamp: int, payloads: tuple[bytes, ...], after_loss: bool, now: float
    ) -> None:
        plan = stream.plan
        if after_loss and plan.kind == "video":
            stream.need_keyframe = True
        try:
            data, keyframe = frame_of(plan.codec, payloads)
        except DepacketizeError as error:
            log.debug("publisher %s: dropped a frame: %s", self.source.resource_id, error)
            stream.dropped += 1
            if plan.kind == "video":
                stream.need_keyframe = True
                self._ask_keyframe(stream, now)
            return
        if plan.kind == "video" and stream.need_keyframe:
            if not keyframe:
                stream.dropped += 1
                self._ask_keyframe(stream, now)
                return
            stream.need_keyframe = False
        time_us = self._time_of(stream, timestamp, now)
        stream.frames += 1
        self.counters.frames += 1
        self.kinds_seen.add(plan.kind)
        self.source.put_nowait(
            EncodedPacket(
                kind=plan.kind,
                codec=plan.codec,
                data=data,
                pts=time_us,
                dts=time_us,
                time_base=MICROS,
                keyframe=keyframe,
                layer=stream.layer,
            )
        )

    def _pin_to_sender_clock(self, stream: ReceivedStream, ntp: int, rtp: int) -> None:
        """Re-anchor ``stream`` on the publisher's NTP clock from one of its sender reports."""
        sender_time = (ntp >> 32) + (ntp & 0xFFFFFFFF) / (1 << 32)
        if self.sender_clock_offset is None:
            self.sender_clock_offset = self.clock() - sender_time
        if stream.last_timestamp is None:
            return  # nothing out yet: its first frame anchors it, the next report pins it
        extended = unwrap(rtp, stream.last_timestamp, 1 << 32)
        anchor = (extended, sender_time + self.sender_clock_offset)
        if stream.anchor is not None:
            # A report that moves the clock by more than a second is a broken sender, not a correction.
            before = stream.anchor[1] + (extended - stream.anchor[0]) / stream.plan.clock_rate
            if abs(anchor[1] - before) > 1.0:
                return
        stream.anchor = anchor

    def _time_of(self, stream: ReceivedStream, timestamp: int, now: float) -> int:
        stream.last_timestamp = timestamp
        if stream.anchor is None:
            stream.anchor = (timestamp, now)
        anchor_ts, anchor_time = stream.anchor
        elapsed = (timestamp - anchor_ts) / stream.plan.clock_rate
        time_us = int((anchor_time + elapsed) * 1_000_000)
        if time_us <= stream.last_time_us:
            time_us = stream.last_time_us + 1000  # never backwards (a re-anchor, an RTP clock reset, a bad sender)
        stream.last_time_us = time_us
        return time_us

    def _send_nack(self, ssrc: int, lost: list[int]) -> None:
        packet = RtcpRtpfbPacket(fmt=RTCP_RTPFB_NACK, ssrc=self.rtcp_ssrc, media_ssrc=ssrc)
        packet.lost = sorted(lost)
        self.counters.nacks += len(lost)
        self._send(bytes(packet))

    def _send(self, data: bytes) -> None:
        self.counters.rtcp_sent += 1
        self.send_rtcp(data)
