"""AVCC/HVCC ↔ Annex-B and parameter-set parsing, on real encoder output, and fuzzed."""

import contextlib
import subprocess
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from pyingress.media.bitstream import (
    AnnexBWriter,
    BitstreamError,
    h264_sps_size,
    parse_avcc,
    parse_hvcc,
    split_annexb,
    split_length_prefixed,
    vp8_frame_info,
)
from tests.media.media_helpers import FFMPEG, demux, make_clip


@pytest.mark.parametrize(
    ("size", "profile"),
    [("1920x1080", "high"), ("1280x720", "main"), ("854x480", "baseline"), ("1080x1920", "high"), ("318x178", "high")],
)
def test_sps_gives_the_display_size_including_cropping(tmp_path: Path, size: str, profile: str) -> None:
    out = tmp_path / "s.h264"
    subprocess.run(
        [
            *(FFMPEG, "-loglevel", "error", "-f", "lavfi", "-i", f"testsrc2=size={size}:rate=30:duration=0.1"),
            *("-c:v", "libx264", "-profile:v", profile, "-pix_fmt", "yuv420p", "-f", "h264", str(out)),
        ],
        check=True,
    )
    sps = next(unit for unit in split_annexb(out.read_bytes()) if unit[0] & 0x1F == 7)
    width, height = size.split("x")
    assert h264_sps_size(sps) == (int(width), int(height))


def test_avcc_record_and_access_units_become_annexb_with_parameter_sets_on_idr(clips: Path) -> None:
    source = demux(make_clip(clips / "1s.flv", duration=1.0))
    desc = next(d for d in source.streams if d.kind == "video")
    config = parse_avcc(desc.codec_config or b"")
    assert config.length_size == 4 and [unit[0] & 0x1F for unit in config.parameter_sets] == [7, 8]
    writer = AnnexBWriter("h264", desc.codec_config)
    for packet in source.kind("video"):
        data, keyframe = writer.write(packet.data)
        assert keyframe == packet.keyframe
        units = split_annexb(data)
        if keyframe:
            assert units[:2] == list(config.parameter_sets)
        assert units[-1] == split_length_prefixed(packet.data, 4)[-1]


def test_hevc_record_lists_vps_sps_pps(clips: Path) -> None:
    clip = make_clip(
        clips / "codec-hevc+mp3.mkv",
        size="160x96",
        duration=1.0,
        video=["-c:v", "libx265", "-preset", "ultrafast", "-x265-params", "log-level=error", "-g", "15"],
        audio=["-c:a", "libmp3lame"],
    )
    desc = next(d for d in demux(clip).streams if d.kind == "video")
    config = parse_hvcc(desc.codec_config or b"")
    assert [(unit[0] >> 1) & 0x3F for unit in config.parameter_sets][:3] == [32, 33, 34]  # x265 adds an SEI


def test_in_band_parameter_sets_replace_the_stored_ones() -> None:
    writer = AnnexBWriter("h264", b"\x00\x00\x00\x01\x67\x01\x00\x00\x00\x01\x68\x02")
    data, keyframe = writer.write(b"\x00\x00\x01\x67\x09\x00\x00\x01\x65\xaa")  # new SPS + IDR, no PPS
    assert keyframe and split_annexb(data) == [b"\x67\x09", b"\x68\x02", b"\x65\xaa"]
    data, keyframe = writer.write(b"\x00\x00\x01\x09\xf0\x00\x00\x01\x65\xbb")  # AUD stays first
    assert split_annexb(data) == [b"\x09\xf0", b"\x67\x09", b"\x68\x02", b"\x65\xbb"]
    data, keyframe = writer.write(b"\x00\x00\x01\x41\xcc")
    assert not keyframe and split_annexb(data) == [b"\x41\xcc"]


def test_vp8_keyframe_header() -> None:
    keyframe = bytes([0x10, 0x02, 0x00, 0x9D, 0x01, 0x2A]) + (320).to_bytes(2, "little") + (180).to_bytes(2, "little")
    assert vp8_frame_info(keyframe) == (True, 320, 180)
    assert vp8_frame_info(b"\x31\x00\x00\x00") == (False, 0, 0)
    with pytest.raises(BitstreamError):
        vp8_frame_info(b"\x10\x02\x00\x00\x00\x00\x00\x00\x00\x00")


@settings(max_examples=400, deadline=None)
@given(st.binary(max_size=300), st.sampled_from(["h264", "hevc"]), st.booleans())
def test_hostile_bytes_raise_only_bitstream_errors(data: bytes, codec: str, as_config: bool) -> None:
    with contextlib.suppress(BitstreamError):
        if as_config:
            AnnexBWriter(codec, b"\x01" + data)
        else:
            writer = AnnexBWriter(codec, None)
            writer.write(data)
        h264_sps_size(b"\x67" + data)
        vp8_frame_info(data)


def test_a_record_with_an_empty_parameter_set_is_framed_without_it() -> None:
    """Found by fuzz/media_parsers.py: an avcC whose SPS has length 0 (a publisher's record, so hostile input)."""
    avcc = bytes([1, 0x42, 0, 0x1F, 0xFF, 0xE1, 0, 0, 1, 0, 2, 0x68, 0xCE])  # one empty SPS, one 2-byte PPS
    writer = AnnexBWriter("h264", avcc)
    assert writer.parameter_sets == [b"\x68\xce"]
