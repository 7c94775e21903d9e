"""WhipReceiver with real RTP packets (aiortc's RtpPacket, H.264 payloads from aiortc's packetiser) and a real
MediaSource: layers named by rid, keyframe gating after a loss, keyframe requests as PLI per SSRC, receiver reports."""

import asyncio
import struct

from aiortc.codecs.h264 import H264Encoder
from aiortc.rtp import (
    RtcpPacket,
    RtcpPsfbPacket,
    RtcpRrPacket,
    RtcpRtpfbPacket,
    RtcpSenderInfo,
    RtcpSrPacket,
    RtpPacket,
)

from pyingress.ingest.flow import FlowPolicy
from pyingress.ingest.source import MediaSource
from pyingress.ingest.whip.receiver import FEEDBACK_INTERVAL, TrackPlan, WhipReceiver
from pyingress.media.packets import EncodedPacket, StreamDescription
from pyingress.webrtc.transport_cc import status_vector_chunk

SPS = bytes([0x67, 0x42, 0xC0, 0x1F]) + b"\x11" * 8
PPS = bytes([0x68, 0xCE, 0x3C, 0x80])
IDR = bytes([0x65]) + b"\x88" * 3000
SLICE = bytes([0x41]) + b"\x22" * 200


class Clock:
    def __init__(self) -> None:
        self.now = 100.0

    def __call__(self) -> float:
        return self.now


class Sender:
    """One SSRC's RTP stream, H.264 frames packetised by aiortc."""

    def __init__(self, ssrc: int, rid: str | None = None, payload_type: int = 102) -> None:
        self.ssrc, self.rid, self.pt = ssrc, rid, payload_type
        self.seq, self.ts = 1000, 5000

    def frame(self, *units: bytes) -> list[RtpPacket]:
        payloads = H264Encoder._packetize(list(units))
        packets = []
        for i, payload in enumerate(payloads):
            packet = RtpPacket(self.pt, int(i == len(payloads) - 1), self.seq & 0xFFFF, self.ts, self.ssrc, payload)
            packet.extensions.rtp_stream_id = self.rid
            packets.append(packet)
            self.seq += 1
        self.ts += 3000
        return packets


def receiver(rids: tuple[str, ...] = ()) -> tuple[WhipReceiver, MediaSource, list[bytes], Clock]:
    source = MediaSource(protocol="whip", stream_key="k", resource_id="WH_x", flow=FlowPolicy.DROP_TO_KEYFRAME)
    sent: list[bytes] = []
    clock = Clock()
    plans = [
        TrackPlan("video", 102, "h264", 90_000, rids=rids, pli=True, remb=True),
        TrackPlan("audio", 111, "opus", 48_000, channels=2),
    ]
    return (
        WhipReceiver(source, plans, send_rtcp=sent.append, rtcp_ssrc=7, max_wait=0.1, clock=clock),
        source,
        sent,
        clock,
    )


def drain(source: MediaSource) -> list[object]:
    items: list[object] = []

    async def take() -> None:
        source.end("unpublished")  # type: ignore[arg-type]
        async for item in source:
            items.append(item)

    asyncio.run(take())
    return items


def test_every_layer_is_described_first_and_named_by_its_rid() -> None:
    rx, source, _, _ = receiver(rids=("f", "h", "q"))
    rx.describe()
    for ssrc, rid in ((11, "f"), (12, "h"), (13, "q")):
        for packet in Sender(ssrc, rid).frame(SPS, PPS, IDR):
            rx.on_rtp(packet, 0)
    stray = Sender(14, "x").frame(SPS, PPS, IDR)[0]  # a rid the offer did not name
    rx.on_rtp(stray, 0)
    items = drain(source)
    described = [(i.kind, i.layer) for i in items if isinstance(i, StreamDescription)]
    assert described == [("video", 2), ("video", 1), ("video", 0), ("audio", None)]
    packets = [i for i in items if isinstance(i, EncodedPacket)]
    assert [p.layer for p in packets] == [2, 1, 0] and all(p.keyframe for p in packets)
    assert packets[0].data.startswith(b"\x00\x00\x00\x01\x67") and rx.counters.unknown == 1


def test_after_a_loss_only_a_keyframe_goes_out_and_one_is_asked_for() -> None:
    rx, source, sent, clock = receiver()
    video = Sender(21)
    for packet in video.frame(SPS, PPS, IDR):
        rx.on_rtp(packet, 0)
    lost = video.frame(SLICE)  # never arrives
    assert len(lost) == 1
    clock.now += 0.033
    for packet in video.frame(SLICE):
        rx.on_rtp(packet, 0)
    clock.now += 0.2  # the gap waited longer than max_wait
    rx.poll()
    for packet in video.frame(SLICE):
        rx.on_rtp(packet, 0)
    for packet in video.frame(SPS, PPS, IDR):
        rx.on_rtp(packet, 0)
    packets = [i for i in drain(source) if isinstance(i, EncodedPacket)]
    assert [p.keyframe for p in packets] == [True, True]
    feedback = [p for data in sent for p in RtcpPacket.parse(data)]
    assert any(isinstance(p, RtcpRtpfbPacket) and p.lost == [lost[0].sequence_number] for p in feedback)
    assert any(isinstance(p, RtcpPsfbPacket) and p.fmt == 1 and p.media_ssrc == 21 for p in feedback)


def test_keyframe_requests_become_rate_limited_plis_for_that_layers_ssrc() -> None:
    rx, source, sent, clock = receiver(rids=("f", "q"))
    for ssrc, rid in ((31, "f"), (32, "q")):
        for packet in Sender(ssrc, rid).frame(SPS, PPS, IDR):
            rx.on_rtp(packet, 0)
    sent.clear()
    source.request_keyframe(2)  # HIGH: rid f
    source.request_keyframe(2)  # again at once: rate-limited
    clock.now += 0.5
    source.request_keyframe(1)  # MEDIUM: rid q (second of two rids)
    plis = [p for data in sent for p in RtcpPacket.parse(data) if isinstance(p, RtcpPsfbPacket)]
    assert [(p.fmt, p.media_ssrc) for p in plis] == [(1, 31), (1, 32)]


def test_receiver_reports_and_remb_cover_every_stream() -> None:
    rx, _, sent, _ = receiver()
    for packet in Sender(41).frame(SPS, PPS, IDR):
        rx.on_rtp(packet, 0)
    audio = RtpPacket(111, 1, 5, 960, 42, b"\xfc\x00")
    rx.on_rtp(audio, 0)
    sent.clear()
    rx.report()
    (data,) = sent
    packets = RtcpPacket.parse(data)
    rr = next(p for p in packets if isinstance(p, RtcpRrPacket))
    assert {r.ssrc for r in rr.reports} == {41, 42}
    assert any(isinstance(p, RtcpPsfbPacket) and p.fmt == 15 for p in packets)  # REMB


def _sr(ssrc: int, sender_seconds: float, rtp: int) -> RtcpSrPacket:
    ntp = int(sender_seconds * (1 << 32))
    return RtcpSrPacket(ssrc=ssrc, sender_info=RtcpSenderInfo(ntp, rtp & 0xFFFFFFFF, 0, 0))


def test_transcoding_lines_audio_and_video_up_on_the_publishers_clock() -> None:
    """Video captured at the same instant as audio but arriving 40 ms later (the encoder's delay) gets the audio's
    time once both sender reports are in."""
    source = MediaSource(protocol="whip", stream_key="k", resource_id="WH_x", flow=FlowPolicy.DROP_TO_KEYFRAME)
    clock = Clock()
    plans = [TrackPlan("video", 102, "h264", 90_000), TrackPlan("audio", 111, "opus", 48_000, channels=2)]
    rx = WhipReceiver(
        source, plans, send_rtcp=lambda _: None, rtcp_ssrc=7, max_wait=0.6, sync_to_sender_reports=True, clock=clock
    )
    video, audio_seq = Sender(51), 1
    # Sender clock: 1000.0 s ↔ video RTP 5000, audio RTP 960.  Audio arrives at once, video 40 ms late.
    rx.on_rtp(RtpPacket(111, 1, audio_seq, 960, 52, b"\xfc\x00"), 0)
    clock.now += 0.040
    for packet in video.frame(SPS, PPS, IDR):
        rx.on_rtp(packet, 0)
    rx.on_rtcp(_sr(52, 1000.0, 960))  # the audio report comes first: it fixes the clock offset
    rx.on_rtcp(_sr(51, 1000.0, 5000))
    clock.now += 0.5
    rx.on_rtp(RtpPacket(111, 1, audio_seq + 25, 960 + 24_000, 52, b"\xfc\x00"), 0)  # +0.5 s of audio
    video.ts = 5000 + 45_000  # +0.5 s of video
    for packet in video.frame(SLICE):
        rx.on_rtp(packet, 0)
    packets = [i for i in drain(source) if isinstance(i, EncodedPacket)]
    audio_late = next(p for p in packets if p.kind == "audio" and p.pts != packets[0].pts)
    video_late = [p for p in packets if p.kind == "video"][-1]
    assert abs(video_late.pts - audio_late.pts) < 2_000  # µs: captured together, timed together


def test_passthrough_keeps_the_arrival_clock() -> None:
    rx, source, _, clock = receiver()
    video = Sender(61)
    for packet in video.frame(SPS, PPS, IDR):
        rx.on_rtp(packet, 0)
    rx.on_rtcp(_sr(61, 5.0, 0))  # a report far from the arrival anchor changes nothing here
    clock.now += 0.033
    for packet in video.frame(SLICE):
        rx.on_rtp(packet, 0)
    rx.poll()
    first, second = [i for i in drain(source) if isinstance(i, EncodedPacket)]
    assert second.pts - first.pts == 33_333


def test_transport_wide_feedback_reports_every_numbered_packet_with_the_newest_ssrc() -> None:
    """With transport-cc negotiated: feedback every FEEDBACK_INTERVAL from ``poll``, naming the media SSRC the
    publisher sends (libwebrtc ignores feedback about another), a gap reported as not received, and no REMB."""
    source = MediaSource(protocol="whip", stream_key="k", resource_id="WH_x", flow=FlowPolicy.DROP_TO_KEYFRAME)
    sent: list[bytes] = []
    clock = Clock()
    plans = [TrackPlan("video", 102, "h264", 90_000, transport_cc=True), TrackPlan("audio", 111, "opus", 48_000)]
    rx = WhipReceiver(source, plans, send_rtcp=sent.append, rtcp_ssrc=7, max_wait=0.1, clock=clock)
    packets = Sender(41).frame(SPS, PPS, IDR)
    for number, packet in enumerate(packets):
        if number == 1:
            continue  # lost on the way
        packet.extensions.transport_sequence_number = 500 + number
        clock.now += 0.001
        rx.on_rtp(packet, clock.now - 0.0005)  # the kernel's stamp, half a millisecond before we read it
    sent.clear()
    clock.now += FEEDBACK_INTERVAL
    rx.poll()
    (data,) = [d for d in sent if d[1] == 205 and d[0] & 0x1F == 15]
    sender, media, base, count = struct.unpack("!LLHH", data[4:16])
    assert (sender, media, base, count) == (7, 41, 500, len(packets))
    assert data[20:22] == status_vector_chunk([1, 0] + [1] * (len(packets) - 2))
    rx.poll()  # nothing new since: nothing sent
    assert len([d for d in sent if d[1] == 205 and d[0] & 0x1F == 15]) == 1
    sent.clear()
    rx.report()
    assert not any(isinstance(p, RtcpPsfbPacket) for p in RtcpPacket.parse(sent[0]))  # no REMB beside it
    assert rx.totals()["transport_feedback"] == 1
