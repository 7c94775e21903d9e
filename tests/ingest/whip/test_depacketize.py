"""Depacketising what aiortc's own packetisers send (RFC 6184, RFC 7741), and refusing what breaks the format."""

from fractions import Fraction

import pytest
from aiortc.codecs.h264 import H264Encoder
from aiortc.codecs.vpx import Vp8Encoder

from pyingress.ingest.whip.depacketize import (
    DepacketizeError,
    _leb128,
    _leb128_bytes,
    av1_temporal_unit,
    frame_of,
    h264_access_unit,
    is_frame_start,
    vp8_frame,
    vp9_frame,
)

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


# -- VP9 and AV1: encoded by PyAV, packetised here as browsers do, depacketised, decoded again ----------------


def _encode(codec: str, count: int = 12) -> list[tuple[bytes, bool]]:
    import av
    import numpy as np

    encoder = av.CodecContext.create(codec, "w")
    encoder.width, encoder.height, encoder.pix_fmt = 64, 48, "yuv420p"
    encoder.time_base = Fraction(1, 30)
    encoder.gop_size = 6
    encoder.options = {"preset": "12"} if codec == "libsvtav1" else {"deadline": "realtime", "cpu-used": "8"}
    out = []
    for i in range(count):
        frame = av.VideoFrame.from_ndarray(np.full((48, 64, 3), i * 20 % 255, dtype=np.uint8), format="rgb24")
        frame = frame.reformat(format="yuv420p")
        frame.pts = i
        out += [(bytes(p), bool(p.is_keyframe)) for p in encoder.encode(frame)]
    out += [(bytes(p), bool(p.is_keyframe)) for p in encoder.encode(None)]
    return out


def _decode(codec: str, frames: list[bytes]) -> int:
    import av

    decoder = av.CodecContext.create(codec, "r")
    decoded = 0
    for data in frames:
        decoded += len(decoder.decode(av.Packet(data)))
    return decoded + len(decoder.decode(None))


def _vp9_payloads(frame: bytes, keyframe: bool, size: int = 300) -> list[bytes]:
    chunks = [frame[i : i + size] for i in range(0, len(frame), size)]
    payloads = []
    for i, chunk in enumerate(chunks):
        first = 0x80 | (0 if keyframe else 0x40) | (0x08 if i == 0 else 0) | (0x04 if i == len(chunks) - 1 else 0)
        payloads.append(bytes([first, 0x80 | 0x12, 0x34]) + chunk)  # I with a 15-bit picture id
    return payloads


def _av1_obus(unit: bytes) -> list[bytes]:
    """A low-overhead temporal unit's OBUs without their size fields, temporal delimiters dropped."""
    obus, at = [], 0
    while at < len(unit):
        header = unit[at]
        header_size = 2 if header & 0x04 else 1
        size, body_at = _leb128(unit, at + header_size)
        if (header >> 3) & 0x0F != 2:
            obus.append(bytes([header & ~0x02]) + unit[at + 1 : at + header_size] + unit[body_at : body_at + size])
        at = body_at + size
    return obus


def _av1_payloads(unit: bytes, size: int = 200) -> list[bytes]:
    """Every OBU as a length-prefixed element (W=0), fragments across packets marked Z/Y."""
    stream = b"".join(_leb128_bytes(len(obu)) + obu for obu in _av1_obus(unit))
    # Simplest valid split: one element per packet, fragmenting large OBUs.
    payloads = []
    for obu in _av1_obus(unit):
        pieces = [obu[i : i + size] for i in range(0, len(obu), size)]
        for i, piece in enumerate(pieces):
            header = (0x80 if i > 0 else 0) | (0x40 if i < len(pieces) - 1 else 0) | 0x10  # W=1
            payloads.append(bytes([header]) + piece)
    assert stream
    return payloads


@pytest.mark.parametrize(("encoder", "decoder"), [("libvpx-vp9", "vp9"), ("libsvtav1", "libdav1d")])
def test_vp9_and_av1_frames_survive_packetisation(encoder: str, decoder: str) -> None:
    encoded = _encode(encoder)
    assert encoded and encoded[0][1]
    frames = []
    for data, keyframe in encoded:
        payloads = _vp9_payloads(data, keyframe) if decoder == "vp9" else _av1_payloads(data)
        codec = "vp9" if decoder == "vp9" else "av1"
        assert is_frame_start(codec, payloads[0])
        frame, key = frame_of(codec, payloads)
        assert key == keyframe
        frames.append(frame)
    assert _decode(decoder, frames) == len(encoded)


def test_broken_vp9_and_av1_payloads_are_refused() -> None:
    with pytest.raises(DepacketizeError):
        vp9_frame([bytes([0x80])])  # picture id missing
    with pytest.raises(DepacketizeError):
        vp9_frame([bytes([0x00, 0x11])])  # no B bit on the first packet
    with pytest.raises(DepacketizeError):
        av1_temporal_unit([bytes([0x80, 0x01])])  # a continuation without its start
    with pytest.raises(DepacketizeError):
        av1_temporal_unit([bytes([0x00, 0x09, 0x30])])  # element longer than the packet
