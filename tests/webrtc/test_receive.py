"""ReceiveTransport against a real aiortc publisher over loopback: ICE, DTLS and SRTP from aiortc, every RTP packet
of the negotiated payload types to our sink (no aiortc receiver, no decoding), RTCP from us back to the sender."""

import asyncio
import contextlib
import time
from collections.abc import AsyncIterator
from pathlib import Path

import pytest
from aiortc import RTCConfiguration, RTCPeerConnection, RTCSessionDescription
from aiortc.rtcrtpparameters import RTCRtpCodecParameters, RTCRtpHeaderExtensionParameters
from aiortc.rtp import RTCP_PSFB_PLI, AnyRtcpPacket, RtcpPsfbPacket, RtpPacket

from pyingress.ingest.whip.answer import LocalTransport, build_answer, dtls_role
from pyingress.ingest.whip.offer import choose_codec, parse_offer
from pyingress.webrtc.ice import LOOPBACK_ADDRESSES, gathering_from
from pyingress.webrtc.receive import ReceiveTransport, RemoteParameters
from tests.harness.whip_publisher import LoopTrack, _capability, encode_video


class Sink:
    def __init__(self) -> None:
        self.rtp: list[RtpPacket] = []
        self.late: list[float] = []  # how long before we got each packet the kernel had it (s)
        self.rtcp: list[AnyRtcpPacket] = []
        self.got = asyncio.Event()

    def on_rtp(self, packet: RtpPacket, arrival: float) -> None:
        self.late.append(time.monotonic() - arrival)
        self.rtp.append(packet)
        if len(self.rtp) >= 30:
            self.got.set()

    def on_rtcp(self, packet: AnyRtcpPacket) -> None:
        self.rtcp.append(packet)


@pytest.fixture(scope="module")
def clips(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("receive-clips")


@contextlib.asynccontextmanager
async def connected(clips: Path, sink: "Sink") -> AsyncIterator[tuple[ReceiveTransport, LoopTrack, int]]:
    """An aiortc publisher sending H.264 to a ReceiveTransport feeding ``sink``: (transport, track, payload type)."""
    publisher = RTCPeerConnection(RTCConfiguration(iceServers=[]))
    track = LoopTrack("video", encode_video(clips, "h264", 320, 180))
    transceiver = publisher.addTransceiver(track, direction="sendonly")
    transceiver.setCodecPreferences([_capability("video", "h264")])
    transceiver.sender._send_keyframe = track.request_keyframe  # type: ignore[method-assign]
    with gathering_from(LOOPBACK_ADDRESSES):
        await publisher.setLocalDescription(await publisher.createOffer())
    offer = parse_offer(publisher.localDescription.sdp)
    video = offer.of_kind("video")
    assert video is not None
    picked = choose_codec(video, passthrough=True)
    assert picked is not None

    transport = ReceiveTransport(host_addresses=LOOPBACK_ADDRESSES)
    try:
        await transport.gather()
        local = transport.local_parameters()
        answer = build_answer(
            offer,
            LocalTransport(local.ice_ufrag, local.ice_pwd, local.fingerprint, local.candidates),
            {video.index: picked[0]},
        )
        codec = picked[0]
        transport.register(
            sink,
            [RTCRtpCodecParameters(mimeType="video/H264", clockRate=90_000, payloadType=codec.payload_type)],
            [RTCRtpHeaderExtensionParameters(id=i, uri=uri) for uri, i in video.extensions.items()],
        )
        await publisher.setRemoteDescription(RTCSessionDescription(sdp=answer, type="answer"))
        remote = RemoteParameters(
            offer.ice_ufrag,
            offer.ice_pwd,
            offer.ice_lite,
            tuple((f.algorithm, f.value) for f in offer.fingerprints),
            offer.candidates,
            dtls_role(offer.setup),
        )
        async with asyncio.timeout(10):
            assert await transport.connect(remote)
        yield transport, track, codec.payload_type
    finally:
        await publisher.close()
        await transport.close()


async def test_an_aiortc_publishers_rtp_reaches_our_sink_and_our_pli_reaches_it(clips: Path) -> None:
    sink = Sink()
    async with connected(clips, sink) as (transport, track, payload_type):
        async with asyncio.timeout(10):
            await sink.got.wait()
        assert {p.payload_type for p in sink.rtp} == {payload_type}
        # Every packet carries the kernel's receive time: before we read it, and not long before.
        assert transport.arrivals.stamped >= len(sink.rtp) - 2, (transport.arrivals.stamped, len(sink.rtp))
        assert all(0 <= late < 1.0 for late in sink.late), sink.late
        ssrc = sink.rtp[0].ssrc
        pli = RtcpPsfbPacket(fmt=RTCP_PSFB_PLI, ssrc=1234, media_ssrc=ssrc)
        assert await transport.send_rtcp(bytes(pli))
        async with asyncio.timeout(5):
            while track.keyframe_requests == 0:
                await asyncio.sleep(0.02)
        async with asyncio.timeout(5):  # aiortc's sender reports reach the sink too
            while not sink.rtcp:
                await asyncio.sleep(0.05)
    assert transport.closed and not await transport.send_rtcp(bytes(pli))
    assert not transport.arrivals._watched  # the sockets were handed back


class FailingSink(Sink):
    def on_rtp(self, packet: RtpPacket, arrival: float) -> None:
        super().on_rtp(packet, arrival)
        if len(self.rtp) == 5:
            raise RuntimeError("a receiver bug")


async def test_a_sink_that_raises_fails_the_transport(clips: Path) -> None:
    # As on aiortc's path, where the exception ended the DTLS read loop: the session sees a failed transport.
    sink = FailingSink()
    async with connected(clips, sink) as (transport, _track, _payload_type):
        async with asyncio.timeout(10):
            await transport.failed.wait()
        assert len(sink.rtp) == 5
