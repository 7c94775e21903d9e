"""rid simulcast on aiortc: the offer munging, the RTP each layer writes, and RTCP reaching the right layer.

The last tests build a real aiortc peer pair over loopback (DTLS, SRTP and all) and look at what arrives.
"""

import asyncio
import re

import pytest
from aiortc import RTCConfiguration, RTCPeerConnection, RTCSessionDescription
from aiortc.rtcrtpparameters import RTCRtpHeaderExtensionParameters, RTCRtpParameters
from aiortc.rtp import (
    RTCP_PSFB_FIR,
    RTCP_PSFB_PLI,
    RTCP_RTPFB_NACK,
    HeaderExtensionsMap,
    RtcpPsfbPacket,
    RtcpRtpfbPacket,
    RtcpSrPacket,
    RtpPacket,
)
from aiortc.sdp import SessionDescription
from livekit.protocol.models import VideoQuality

from pyingress.webrtc.direct_send import serialize_frame
from pyingress.webrtc.ice import LOOPBACK_ADDRESSES, gathering_from
from pyingress.webrtc.peer import PublisherPeer
from pyingress.webrtc.sdp import MID_URI, RID_URI, add_simulcast_to_offer, negotiated_codec
from pyingress.webrtc.sdp import ssrc_cname as offer_cname
from pyingress.webrtc.simulcast import LayerStream, SimulcastEncoding, assign_rids

LOW, MEDIUM, HIGH = VideoQuality.LOW, VideoQuality.MEDIUM, VideoQuality.HIGH
# An IDR access unit in Annex-B: SPS, PPS, then a slice big enough to need FU-A fragments (no zero bytes inside).
IDR = b"".join(
    [
        b"\x00\x00\x00\x01\x67\x42\xc0\x1f\xda\x01\x40\x16\xe8",
        b"\x00\x00\x00\x01\x68\xce\x3c\x80",
        b"\x00\x00\x01\x65" + bytes(range(1, 256)) * 16,
    ]
)
# What livekit-server v1.13.5 answered to one of our offers (trimmed to the video section's essentials).
LIVEKIT_ANSWER = (
    "v=0\r\no=- 1 2 IN IP4 0.0.0.0\r\ns=-\r\nt=0 0\r\na=group:BUNDLE 0\r\n"
    "m=video 9 UDP/TLS/RTP/SAVPF 101\r\nc=IN IP4 0.0.0.0\r\na=setup:active\r\na=mid:0\r\n"
    "a=ice-ufrag:AIACfBwVzGWUExyf\r\na=ice-pwd:VziwVYxxrmzZbGELfotfgSYBmabwsiYq\r\na=rtcp-mux\r\n"
    "a=rtpmap:101 H264/90000\r\n"
    "a=fmtp:101 level-asymmetry-allowed=1;packetization-mode=1;profile-level-id=42e01f\r\n"
    "a=rtcp-fb:101 ccm fir\r\na=rtcp-fb:101 nack\r\na=rtcp-fb:101 nack pli\r\n"
    "a=extmap:1 urn:ietf:params:rtp-hdrext:sdes:mid\r\na=extmap:4 urn:ietf:params:rtp-hdrext:sdes:rtp-stream-id\r\n"
    "a=rid:q recv\r\na=rid:h recv\r\na=rid:f recv\r\na=simulcast:recv q;h;f\r\na=recvonly\r\n"
)


def _section(sdp: str, kind: str) -> list[str]:
    sections = re.split(r"\r\n(?=m=)", sdp)
    return [line for line in next(s for s in sections if s.startswith(f"m={kind}")).split("\r\n") if line]


def test_rids_are_assigned_lowest_quality_first() -> None:
    assert assign_rids([HIGH, MEDIUM, LOW]) == (
        SimulcastEncoding("q", LOW),
        SimulcastEncoding("h", MEDIUM),
        SimulcastEncoding("f", HIGH),
    )
    # two layers (a 2-layer preset is HIGH + LOW): LiveKit maps rid[0]→0, rid[1]→1 (protocol.md §5.4)
    assert assign_rids([HIGH, LOW]) == (SimulcastEncoding("q", LOW), SimulcastEncoding("h", HIGH))
    assert assign_rids([HIGH]) == (SimulcastEncoding("q", HIGH),)
    with pytest.raises(ValueError):
        assign_rids([])


async def _aiortc_offer() -> tuple[PublisherPeer, str]:
    peer = PublisherPeer(
        host_addresses=LOOPBACK_ADDRESSES, audio=(2, True), video_codec="h264", video_encodings=assign_rids([0, 1, 2])
    )
    with gathering_from(LOOPBACK_ADDRESSES):
        await peer.pc.setLocalDescription(await peer.pc.createOffer())
    return peer, peer.pc.localDescription.sdp


async def test_offer_munging_adds_rids_simulcast_and_the_stream_id_extension() -> None:
    peer, offer = await _aiortc_offer()
    try:
        assert peer.simulcast is not None and peer.simulcast.mid is not None
        munged = add_simulcast_to_offer(offer, peer.simulcast.mid, ["q", "h", "f"])
        video = _section(munged, "video")
        assert video[-4:] == ["a=rid:q send", "a=rid:h send", "a=rid:f send", "a=simulcast:send q;h;f"]
        assert not any(line.startswith(("a=ssrc:", "a=ssrc-group:")) for line in video)
        # the new extension id is free in the whole (bundled) offer
        ids = [int(m.group(1)) for m in re.finditer(r"a=extmap:(\d+) ", munged)]
        rid_ids = [int(m.group(1)) for m in re.finditer(rf"a=extmap:(\d+) {re.escape(RID_URI)}", munged)]
        assert len(rid_ids) == 1 and ids.count(rid_ids[0]) == 1
        payload_type = video[0].split()[3]
        assert f"a=rtcp-fb:{payload_type} ccm fir" in video
        # the audio m-line is untouched, and what aiortc parses still parses
        assert _section(munged, "audio") == _section(offer, "audio")
        parsed = SessionDescription.parse(munged)
        assert RID_URI in [ext.uri for ext in parsed.media[1].rtp.headerExtensions]
        assert offer_cname(offer) is not None
        # munging twice does not duplicate the extension
        again = add_simulcast_to_offer(munged, peer.simulcast.mid, ["q"])
        assert len(re.findall(re.escape(RID_URI), again)) == 1
        with pytest.raises(ValueError):
            add_simulcast_to_offer(offer, "7", ["q"])
        with pytest.raises(ValueError):
            add_simulcast_to_offer(offer, "0", ["q"])  # mid 0 is the audio m-line
    finally:
        await peer.close()


def test_negotiated_payload_type_and_extension_ids_come_from_the_answer() -> None:
    negotiated = negotiated_codec(LIVEKIT_ANSWER, "0", "h264")
    assert negotiated.payload_type == 101
    assert negotiated.extension_id(MID_URI) == 1
    assert negotiated.extension_id(RID_URI) == 4
    with pytest.raises(ValueError):
        negotiated_codec(LIVEKIT_ANSWER, "0", "vp8")
    with pytest.raises(ValueError):
        negotiated_codec(LIVEKIT_ANSWER, "1", "h264")


def _extensions_map(mid_id: int = 1, rid_id: int = 4) -> HeaderExtensionsMap:
    extensions = HeaderExtensionsMap()
    extensions.configure(
        RTCRtpParameters(
            headerExtensions=[
                RTCRtpHeaderExtensionParameters(mid_id, MID_URI),
                RTCRtpHeaderExtensionParameters(rid_id, RID_URI),
            ]
        )
    )
    return extensions


def test_each_packet_carries_mid_and_its_layers_rid() -> None:
    layer = LayerStream(SimulcastEncoding("h", MEDIUM), ssrc=0x1234, codec="h264")
    layer.sequence_number = 65534  # wraps inside the frame
    packets = layer.packetize(IDR, timestamp=3000, payload_type=101, mid="1", now=100.0)
    assert len(packets) > 2  # STAP-A for SPS/PPS, FU-A fragments for the slice
    extensions = _extensions_map()
    parsed = [RtpPacket.parse(p.serialize(extensions), extensions) for p in packets]
    assert {p.ssrc for p in parsed} == {0x1234}
    assert [p.sequence_number for p in parsed][:3] == [65534, 65535, 0]
    assert {p.timestamp for p in parsed} == {(layer.timestamp_origin + 3000) & 0xFFFFFFFF}
    assert [p.marker for p in parsed] == [0] * (len(parsed) - 1) + [1]
    assert {(p.extensions.mid, p.extensions.rtp_stream_id) for p in parsed} == {("1", "h")}
    assert layer.stats.frames == 1 and layer.stats.packets == len(packets)


def test_a_frame_is_serialised_as_aiortc_serialises_each_of_its_packets() -> None:
    layer = LayerStream(SimulcastEncoding("f", HIGH), ssrc=0xCAFE, codec="h264")
    layer.sequence_number = 65533
    extensions = HeaderExtensionsMap()
    uris = (MID_URI, RID_URI, "http://www.webrtc.org/experiments/rtp-hdrext/abs-send-time")
    extensions.configure(
        RTCRtpParameters(headerExtensions=[RTCRtpHeaderExtensionParameters(i, uri) for i, uri in enumerate(uris, 1)])
    )
    for frame in (IDR, IDR[:30], IDR * 3):
        packets = layer.packetize(frame, timestamp=9000, payload_type=101, mid="0", now=100.0)
        assert packets[0].extensions.abs_send_time is not None
        assert serialize_frame(packets, extensions) == [packet.serialize(extensions) for packet in packets]
    assert serialize_frame([], extensions) == []


def test_layers_keep_their_own_ssrc_and_sequence_space() -> None:
    low = LayerStream(SimulcastEncoding("q", LOW), ssrc=1, codec="h264")
    high = LayerStream(SimulcastEncoding("f", HIGH), ssrc=2, codec="h264")
    sequences: dict[int, list[int]] = {1: [], 2: []}
    for frame in range(5):
        for layer in (low, high):
            for packet in layer.packetize(IDR[: 40 + frame], frame * 3000, 101, "0"):
                sequences[packet.ssrc].append(packet.sequence_number)
    for ssrc, layer in ((1, low), (2, high)):
        seqs = sequences[ssrc]
        assert seqs == [(seqs[0] + i) & 0xFFFF for i in range(len(seqs))], "gapless per layer"
        assert layer.stats.frames == 5


def test_vp8_layers_number_their_pictures_independently() -> None:
    a = LayerStream(SimulcastEncoding("q", LOW), ssrc=1, codec="vp8")
    b = LayerStream(SimulcastEncoding("h", HIGH), ssrc=2, codec="vp8")
    first_a = a.packetize(b"\x10\x02\x00" + b"\x01" * 50, 0, 96, "0")[0].payload
    a.packetize(b"\x10\x02\x00" + b"\x01" * 50, 3000, 96, "0")
    b.packetize(b"\x10\x02\x00" + b"\x01" * 50, 0, 96, "0")
    second_a = a.packetize(b"\x10\x02\x00" + b"\x01" * 50, 6000, 96, "0")[0].payload

    def picture_id(payload: bytes) -> int:
        return ((payload[2] & 0x7F) << 8) | payload[3]  # X and I bits set, 15-bit picture id

    assert (picture_id(second_a) - picture_id(first_a)) % (1 << 15) == 2


async def test_nack_resends_from_the_layers_history() -> None:
    resent: list[RtpPacket] = []

    async def retransmit(packet: RtpPacket) -> None:
        resent.append(packet)

    layer = LayerStream(SimulcastEncoding("q", LOW), ssrc=7, codec="h264", retransmit=retransmit)
    packets = layer.packetize(IDR, 0, 101, "0")
    lost = [packets[1].sequence_number, packets[-1].sequence_number, (packets[-1].sequence_number + 10) & 0xFFFF]
    await layer._handle_rtcp_packet(RtcpRtpfbPacket(fmt=RTCP_RTPFB_NACK, ssrc=9, media_ssrc=7, lost=lost))
    assert resent == [packets[1], packets[-1]]  # the never-sent one is not invented
    assert layer.stats.retransmitted == 2


async def test_pli_and_fir_become_keyframe_requests_for_the_layers_quality() -> None:
    requests: list[int] = []
    layer = LayerStream(SimulcastEncoding("h", MEDIUM), ssrc=7, codec="h264", on_keyframe_request=requests.append)
    await layer._handle_rtcp_packet(RtcpPsfbPacket(fmt=RTCP_PSFB_PLI, ssrc=9, media_ssrc=7))
    await layer._handle_rtcp_packet(RtcpPsfbPacket(fmt=RTCP_PSFB_FIR, ssrc=9, media_ssrc=7, fci=b"\0" * 8))
    assert requests == [MEDIUM, MEDIUM]


def test_sender_report_extrapolates_rtp_time_to_now() -> None:
    layer = LayerStream(SimulcastEncoding("f", HIGH), ssrc=3, codec="h264")
    assert layer.sender_report(now=99.0) is None  # nothing sent yet
    layer.packetize(IDR, 9000, 101, "0", now=100.0)
    report = layer.sender_report(now=100.5)
    assert isinstance(report, RtcpSrPacket) and report.ssrc == 3
    assert report.sender_info.rtp_timestamp == (layer.timestamp_origin + 9000 + 45_000) & 0xFFFFFFFF
    assert report.sender_info.packet_count == layer.stats.packets
    seconds = report.sender_info.ntp_timestamp >> 32
    assert seconds - 2_208_988_800 == 100


def _layer_offset(reference: RtcpSrPacket, target: RtcpSrPacket) -> int:
    """The RTP offset between two layers that livekit-server derives from their sender reports to switch between
    them (forwarder.go, getRefLayerRTPTimestamp): the target's RTP time moved to the reference's NTP time."""
    ntp = (reference.sender_info.ntp_timestamp - target.sender_info.ntp_timestamp) / (1 << 32)
    at_reference = target.sender_info.rtp_timestamp + round(ntp * 90_000)
    return (reference.sender_info.rtp_timestamp - at_reference) & 0xFFFFFFFF


def test_sender_reports_on_the_session_clock_keep_layers_aligned_when_a_keyframe_leaves_early() -> None:
    medium = LayerStream(SimulcastEncoding("h", MEDIUM), ssrc=5, codec="h264")
    low = LayerStream(SimulcastEncoding("q", LOW), ssrc=6, codec="h264")
    # Both layers' frame of media time 10.0 s goes at its time (wall 100.0); then a viewer's keyframe on MEDIUM,
    # media time 10.2 s, goes at once instead of waiting 200 ms behind the video queued for its audio.
    medium.packetize(IDR, 900_000, 101, "0", now=100.0)
    low.packetize(IDR, 900_000, 101, "0", now=100.0)
    medium.packetize(IDR, 918_000, 101, "0", now=100.01)
    truth = (medium.timestamp_origin - low.timestamp_origin) & 0xFFFFFFFF  # the same media time on both
    extrapolated = _layer_offset(medium.sender_report(now=100.02), low.sender_report(now=100.03))
    assert abs(extrapolated - truth - 18_000 + 900) <= 1  # off by the 190 ms the keyframe left early
    # On the session clock (media time 10.02 s due at wall 100.02) both map the wall clock alike.
    on_clock = _layer_offset(medium.sender_report(100.02, media_now=10.02), low.sender_report(100.03, media_now=10.03))
    assert abs(on_clock - truth) <= 1


# ----------------------------------------------------------------------------------------------------------------
# A real aiortc peer on the other end


class _Tap:
    """Stands in the receiving transport's RTP router for the layer SSRCs and keeps what arrives."""

    def __init__(self) -> None:
        self.packets: list[RtpPacket] = []

    async def _handle_rtp_packet(self, packet: RtpPacket, arrival_time_ms: int) -> None:
        self.packets.append(packet)

    async def _handle_rtcp_packet(self, packet: object) -> None:
        pass

    def _handle_disconnect(self) -> None:
        pass


async def _connected_pair(requests: list[int]) -> tuple[PublisherPeer, RTCPeerConnection]:
    sender = PublisherPeer(
        host_addresses=LOOPBACK_ADDRESSES,
        video_codec="h264",
        video_encodings=assign_rids([LOW, MEDIUM, HIGH]),
        on_keyframe_request=requests.append,
    )
    offer = await sender.create_offer()
    receiver = RTCPeerConnection(RTCConfiguration(iceServers=[]))
    with gathering_from(LOOPBACK_ADDRESSES):
        await receiver.setRemoteDescription(RTCSessionDescription(offer, "offer"))
        await receiver.setLocalDescription(await receiver.createAnswer())
    # aiortc's answerer does not know rtp-stream-id; accept it as an SFU would, with the offer's id.
    rid_line = next(line for line in offer.split("\r\n") if RID_URI in line)
    answer = receiver.localDescription.sdp.replace("a=mid:0\r\n", f"a=mid:0\r\n{rid_line}\r\n")
    await sender.set_answer(answer)
    async with asyncio.timeout(10):
        await sender.connected.wait()
        while receiver.connectionState != "connected":
            await asyncio.sleep(0.02)
    return sender, receiver


async def test_layers_arrive_at_a_real_peer_with_own_ssrc_sequence_and_rid() -> None:
    requests: list[int] = []
    sender, receiver = await _connected_pair(requests)
    try:
        assert sender.simulcast is not None and sender.simulcast.negotiated is not None
        transport = receiver.getTransceivers()[0].receiver.transport
        rid_id = sender.simulcast.negotiated.extension_id(RID_URI)
        assert rid_id is not None
        transport._rtp_header_extensions_map.configure(
            RTCRtpParameters(headerExtensions=[RTCRtpHeaderExtensionParameters(rid_id, RID_URI)])
        )
        tap = _Tap()
        layers = sender.simulcast.layers
        transport._rtp_router.register_receiver(
            tap,
            ssrcs=[layer.ssrc for layer in layers.values()],
            payload_types=[sender.simulcast.negotiated.payload_type],
        )
        for frame in range(3):
            for quality in (LOW, MEDIUM, HIGH):
                await sender.send_video(quality, IDR, frame * 3000)
        expected = sum(layer.stats.packets for layer in layers.values())
        async with asyncio.timeout(5):
            while len(tap.packets) < expected:
                await asyncio.sleep(0.02)
        by_ssrc: dict[int, list[RtpPacket]] = {}
        for packet in tap.packets:
            by_ssrc.setdefault(packet.ssrc, []).append(packet)
        assert set(by_ssrc) == {layer.ssrc for layer in layers.values()}
        for layer_quality, layer in layers.items():
            received = by_ssrc[layer.ssrc]
            assert {p.extensions.rtp_stream_id for p in received} == {layer.encoding.rid}
            assert {p.extensions.mid for p in received} == {sender.simulcast.mid}
            seqs = sorted(p.sequence_number for p in received)
            assert seqs == list(range(seqs[0], seqs[0] + len(seqs))), (
                f"layer {layer_quality} has its own gapless sequence"
            )

        # RTCP feedback from the receiver reaches the right layer: a PLI on the MEDIUM SSRC asks MEDIUM for an IDR
        requests.clear()
        pli = RtcpPsfbPacket(fmt=RTCP_PSFB_PLI, ssrc=12345, media_ssrc=layers[MEDIUM].ssrc)
        await transport._send_rtp(bytes(pli))
        async with asyncio.timeout(5):
            while not requests:
                await asyncio.sleep(0.02)
        assert requests == [MEDIUM]
    finally:
        await sender.close()
        await receiver.close()
