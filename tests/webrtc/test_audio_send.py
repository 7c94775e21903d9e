"""Opus sent by us on the audio m-line (``audio_send``): a real aiortc peer over loopback (ICE, DTLS, SRTP) decodes
what arrives, on the SSRC the offer declares, with sender reports that are ours and only ours on that SSRC."""

import asyncio
import datetime
import itertools
import re

import av
import numpy as np
from aiortc import RTCConfiguration, RTCPeerConnection, RTCSessionDescription
from aiortc.stats import RTCRemoteOutboundRtpStreamStats

from pyingress.webrtc.direct_send import RtpStream
from pyingress.webrtc.ice import LOOPBACK_ADDRESSES, gathering_from
from pyingress.webrtc.peer import PublisherPeer

FRAMES = 75  # 1.5 s of 20 ms frames: long enough for sender reports (every 0.5-1.5 s)


def _opus_frames(count: int) -> list[bytes]:
    encoder = av.CodecContext.create("libopus", "w")
    encoder.sample_rate = 48_000
    encoder.layout = "stereo"
    encoder.format = "s16"
    encoder.open()
    packets: list[bytes] = []
    for index in range(count + 4):
        t = (np.arange(960) + index * 960) / 48_000
        tone = (np.sin(2 * np.pi * 440 * t) * 8000).astype(np.int16)
        frame = av.AudioFrame.from_ndarray(np.repeat(tone, 2).reshape(1, -1), format="s16", layout="stereo")
        frame.sample_rate = 48_000
        frame.pts = index * 960
        packets += [bytes(packet) for packet in encoder.encode(frame)]
    return packets[:count]


def test_opus_frames_are_one_packet_each_on_the_48_khz_clock() -> None:
    stream = RtpStream(ssrc=77, clock_rate=48_000, timestamp_origin=1000, sequence_number=5)
    first = stream.packets((b"\x01\x02",), 960, 111, "0", now=100.0)
    second = stream.packets((b"\x03",), 1920, 111, "0", now=100.02)
    assert [(p.sequence_number, p.timestamp, p.marker, p.payload) for p in first + second] == [
        (5, 1960, 1, b"\x01\x02"),
        (6, 2920, 1, b"\x03"),
    ]
    assert {p.extensions.rtp_stream_id for p in first + second} == {None}
    report = stream.sender_report(now=100.52)
    assert report is not None and report.sender_info.rtp_timestamp == 2920 + 24_000  # 0.5 s at 48 kHz


async def test_opus_reaches_a_real_peer_on_the_declared_ssrc_with_our_sender_reports() -> None:
    sender = PublisherPeer(host_addresses=LOOPBACK_ADDRESSES, audio=(2, False))
    receiver = RTCPeerConnection(RTCConfiguration(iceServers=[]))
    try:
        offer = await sender.create_offer()
        assert sender.audio is not None
        audio_section = offer.split("m=audio", 1)[1]
        declared = {int(ssrc) for ssrc in re.findall(r"a=ssrc:(\d+) ", audio_section)}
        assert declared == {sender.audio.stream.ssrc}
        # aiortc's idle sender reports on an SSRC of its own from now on: its reports never contradict ours
        assert sender._audio_transceiver.sender._ssrc != sender.audio.stream.ssrc

        with gathering_from(LOOPBACK_ADDRESSES):
            await receiver.setRemoteDescription(RTCSessionDescription(offer, "offer"))
            await receiver.setLocalDescription(await receiver.createAnswer())
        await sender.set_answer(receiver.localDescription.sdp)
        async with asyncio.timeout(10):
            await sender.connected.wait()
            while receiver.connectionState != "connected":
                await asyncio.sleep(0.02)
        track = receiver.getTransceivers()[0].receiver.track

        async def send() -> None:
            for index, data in enumerate(_opus_frames(FRAMES)):
                await sender.send_audio(data, index * 960)
                await asyncio.sleep(0.02)

        sending = asyncio.create_task(send())
        decoded = []
        async with asyncio.timeout(10):
            while len(decoded) < FRAMES - 5:  # the jitter buffer may hold the last few
                decoded.append(await track.recv())
        await sending
        assert {frame.sample_rate for frame in decoded} == {48_000}
        steps = {later.pts - earlier.pts for earlier, later in itertools.pairwise(decoded)}
        assert steps == {960}, "every 20 ms frame arrived, in order, on the 48 kHz clock"
        assert max(abs(sample) for sample in decoded[-1].to_ndarray().ravel()) > 1000, "the tone, not silence"

        async with asyncio.timeout(5):
            while True:
                stats = await receiver.getTransceivers()[0].receiver.getStats()
                reports = [s for s in stats.values() if isinstance(s, RTCRemoteOutboundRtpStreamStats)]
                if reports:
                    break
                await asyncio.sleep(0.1)
        (report,) = reports
        assert report.ssrc == sender.audio.stream.ssrc
        assert report.remoteTimestamp.year >= 2026 > datetime.datetime(1900, 1, 1).year  # NTP time, not zero
        assert 0 < report.packetsSent <= sender.audio.stream.stats.packets
    finally:
        await sender.close()
        await receiver.close()
