"""Depacketising what aiortc's own packetisers send (RFC 6184, RFC 7741), and refusing what breaks the format."""

import pytest
from aiortc.codecs.h264 import H264Encoder
from aiortc.codecs.vpx import Vp8Encoder

from pyingress.ingest.whip.depacketize import DepacketizeError, frame_of, h264_access_unit, is_frame_start, vp8_frame

SPS = bytes([0x67, 0x42, 0xC0, 0x1F]) + b"\x11" * 8
PPS = bytes([0x68, 0xCE, 0x3C, 0x80])
IDR = bytes([0x65]) + bytes(range(256)) * 20  # 5 kB: fragmented (FU-A)
SLICE = bytes([0x41]) + b"\x22" * 300


def annexb(*units: bytes) -> bytes:
    return b"".join(b"\x00\x00\x00\x01" + unit for unit in units)


def h264_payloads(*units: bytes) -> list[bytes]:
    return H264Encoder._packetize(list(units))


def test_an_idr_with_its_parameter_sets_comes_back_whole() -> None:
    payloads = h264_payloads(SPS, PPS, IDR)
    assert payloads[0][0] & 0x1F == 24 and len(payloads) > 3  # STAP-A, then FU-As
    data, keyframe = h264_access_unit(payloads)
    assert data == annexb(SPS, PPS, IDR) and keyframe
    assert h264_access_unit(h264_payloads(SLICE)) == (annexb(SLICE), False)
    assert is_frame_start("h264", payloads[0]) and not is_frame_start("h264", payloads[2])


@pytest.mark.parametrize("drop", [1, -1])
def test_an_h264_fragment_without_its_start_or_end_is_refused(drop: int) -> None:
    payloads = h264_payloads(SPS, PPS, IDR)
    del payloads[drop]
    with pytest.raises(DepacketizeError):
        h264_access_unit(payloads)


def test_broken_aggregates_and_unknown_types_are_refused() -> None:
    with pytest.raises(DepacketizeError):
        h264_access_unit([bytes([24, 0, 9, 0x67])])  # STAP-A unit longer than the packet
    with pytest.raises(DepacketizeError):
        h264_access_unit([bytes([25, 1, 2])])  # STAP-B
    with pytest.raises(DepacketizeError):
        h264_access_unit([b""])


def test_a_vp8_frame_comes_back_whole_with_its_keyframe_bit() -> None:
    key = bytes([0x10, 0x02, 0x00, 0x9D, 0x01, 0x2A, 0x80, 0x02, 0x68, 0x01]) + bytes(range(256)) * 10
    payloads = Vp8Encoder._packetize(key, 1234)
    assert len(payloads) > 1
    assert vp8_frame(payloads) == (key, True)
    inter = bytes([0x31]) + b"\x00" * 500
    assert vp8_frame(Vp8Encoder._packetize(inter, 1235)) == (inter, False)
    assert is_frame_start("vp8", payloads[0]) and not is_frame_start("vp8", payloads[1])
    with pytest.raises(DepacketizeError):
        vp8_frame(payloads[1:])


def test_audio_is_one_payload_per_frame() -> None:
    assert frame_of("opus", [b"\xfc\x01"]) == (b"\xfc\x01", True)
    with pytest.raises(DepacketizeError):
        frame_of("opus", [b""])
