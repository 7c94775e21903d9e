"""FLV tag bodies, legacy and Enhanced RTMP, parsed into typed tags (one per track)."""

import pytest

from pyingress.ingest.rtmp.errors import RtmpProtocolError, UnsupportedCodecError
from pyingress.ingest.rtmp.flv import (
    AudioPacketType,
    AudioTag,
    VideoPacketType,
    VideoTag,
    aac_tag,
    ex_audio_tag,
    ex_video_tag,
    legacy_video_tag,
    mp3_tag,
    parse_audio_tag,
    parse_video_tag,
)


def test_legacy_avc_sequence_header_and_frames() -> None:
    assert parse_video_tag(legacy_video_tag("config", b"avcC")) == [VideoTag("h264", "config", True, 0, b"avcC")]
    assert parse_video_tag(legacy_video_tag("frame", b"nal", keyframe=True, composition_time=80)) == [
        VideoTag("h264", "frame", True, 80, b"nal")
    ]
    [tag] = parse_video_tag(legacy_video_tag("frame", b"nal", composition_time=-40))
    assert tag.composition_time == -40 and not tag.keyframe
    assert parse_video_tag(legacy_video_tag("end", b""))[0].kind == "end"


def test_legacy_codec_id_12_is_read_as_hevc() -> None:
    [tag] = parse_video_tag(legacy_video_tag("frame", b"x", keyframe=True, codec="hevc"))
    assert tag.codec == "hevc"


def test_command_frames_and_empty_bodies_carry_no_media() -> None:
    assert parse_video_tag(b"\x57\x00") == []  # legacy frame type 5 (video info/command)
    assert parse_video_tag(bytes([0x80 | 0x50 | 1]) + b"\x00") == []  # E-RTMP command frame
    assert parse_video_tag(b"") == [] and parse_audio_tag(b"") == []


@pytest.mark.parametrize(
    ("codec", "fourcc"), [("hevc", b"hvc1"), ("av1", b"av01"), ("vp9", b"vp09"), ("h264", b"avc1"), ("vp8", b"vp08")]
)
def test_enhanced_sequence_start_and_frames(codec: str, fourcc: bytes) -> None:
    start = ex_video_tag(codec, VideoPacketType.SEQUENCE_START, b"cfg")
    assert start[1:5] == fourcc
    assert parse_video_tag(start) == [VideoTag(codec, "config", False, 0, b"cfg")]
    frames = ex_video_tag(codec, VideoPacketType.CODED_FRAMES, b"data", keyframe=True, composition_time=33)
    [tag] = parse_video_tag(frames)
    assert tag.kind == "frame" and tag.keyframe and tag.data == b"data"
    assert tag.composition_time == (33 if codec in ("hevc", "h264") else 0)
    [x] = parse_video_tag(ex_video_tag(codec, VideoPacketType.CODED_FRAMES_X, b"data"))
    assert (x.kind, x.composition_time, x.keyframe) == ("frame", 0, False)
    assert parse_video_tag(ex_video_tag(codec, VideoPacketType.SEQUENCE_END))[0].kind == "end"


def test_enhanced_metadata_packet() -> None:
    [tag] = parse_video_tag(ex_video_tag("hevc", VideoPacketType.METADATA, b"\x02\x00\x09colorInfo"))
    assert tag.kind == "metadata"


def test_mpeg2ts_sequence_start_is_ignored() -> None:
    assert parse_video_tag(bytes([0x80 | 0x10 | 5]) + b"av01" + b"descriptor") == []


def test_mod_ex_timestamp_offset_is_skipped() -> None:
    # ModEx: size-1 = 2 (3 bytes of nanoseconds), then type 0 (TimestampOffsetNano) << 4 | real packet type
    body = bytes([0x80 | 0x10 | VideoPacketType.MOD_EX, 2]) + b"\x00\x01\x00" + bytes([0x00 | 3]) + b"av01" + b"obu"
    assert parse_video_tag(body) == [VideoTag("av1", "frame", True, 0, b"obu")]
    long_mod_ex = bytes([0x80 | 0x10 | 7, 255]) + (299).to_bytes(2, "big") + bytes(300) + bytes([3]) + b"av01x"
    assert parse_video_tag(long_mod_ex)[0].data == b"x"


def test_multitrack_one_track() -> None:
    body = ex_video_tag("hevc", VideoPacketType.CODED_FRAMES_X, b"nal", keyframe=True, track_id=2)
    assert parse_video_tag(body) == [VideoTag("hevc", "frame", True, 0, b"nal", 2)]


def test_multitrack_many_tracks_and_many_codecs() -> None:
    many = bytes([0x80 | 0x10 | 6, (1 << 4) | 3]) + b"hvc1"
    many += b"\x00" + (3).to_bytes(3, "big") + b"aaa" + b"\x01" + (2).to_bytes(3, "big") + b"bb"
    assert [(t.track_id, t.data, t.codec) for t in parse_video_tag(many)] == [(0, b"aaa", "hevc"), (1, b"bb", "hevc")]
    codecs = bytes([0x80 | 0x10 | 6, (2 << 4) | 3])
    codecs += b"hvc1" + b"\x00" + (1).to_bytes(3, "big") + b"h" + b"av01" + b"\x01" + (1).to_bytes(3, "big") + b"a"
    assert [(t.track_id, t.codec) for t in parse_video_tag(codecs)] == [(0, "hevc"), (1, "av1")]


@pytest.mark.parametrize(
    ("body", "message"),
    [
        (bytes([0x80 | 0x10 | 6, (1 << 4) | 6]) + b"hvc1", "nested multitrack"),
        (bytes([0x80 | 0x10 | 6, (5 << 4) | 1]) + b"hvc1", "unknown multitrack type 5"),
        (bytes([0x80 | 0x10 | 6, (1 << 4) | 3]) + b"hvc1\x00\x00\x00\x09ab", "truncated"),
        (bytes([0x80 | 0x10 | 9]) + b"hvc1", "unknown packet type 9"),
        (bytes([0x80 | 0x10 | 1]) + b"hv", "truncated"),
        (bytes([0x80 | 0x10 | 1]) + b"hvc1\x00", "without a composition time"),
        (b"\x17\x05\x00\x00\x00", "unknown AVC packet type 5"),
        (b"\x17\x01", "truncated"),
        (bytes([0x80 | 0x10 | 7, 5]), "truncated"),
    ],
)
def test_malformed_video_tags(body: bytes, message: str) -> None:
    with pytest.raises(RtmpProtocolError, match=message):
        parse_video_tag(body)


@pytest.mark.parametrize(
    ("body", "message"),
    [
        (b"\x12" + b"h263", "Sorenson H.263 is not supported"),
        (b"\x14", "On2 VP6 is not supported"),
        (bytes([0x80 | 0x10 | 1]) + b"vvc9data", "FourCC b'vvc9'"),
    ],
)
def test_unsupported_video_codecs_are_named(body: bytes, message: str) -> None:
    with pytest.raises(UnsupportedCodecError, match=message):
        parse_video_tag(body)


def test_legacy_audio() -> None:
    assert parse_audio_tag(aac_tag("config", b"\x11\x90")) == [AudioTag("aac", "config", b"\x11\x90")]
    assert parse_audio_tag(aac_tag("frame", b"raw")) == [AudioTag("aac", "frame", b"raw")]
    assert parse_audio_tag(mp3_tag(b"mp3", sample_rate_index=2, stereo=False)) == [
        AudioTag("mp3", "frame", b"mp3", 22050, 1)
    ]
    assert parse_audio_tag(bytes([(14 << 4) | 0x02]) + b"x")[0].sample_rate == 8000
    assert parse_audio_tag(bytes([(7 << 4) | 0x02]) + b"x") == [AudioTag("pcm_alaw", "frame", b"x", 8000, 1)]
    assert parse_audio_tag(bytes([(8 << 4) | 0x03]) + b"x") == [AudioTag("pcm_mulaw", "frame", b"x", 8000, 2)]


@pytest.mark.parametrize(("fmt", "name"), [(11, "Speex"), (6, "Nellymoser"), (0, "linear PCM"), (13, "format 13")])
def test_unsupported_audio_codecs_are_named(fmt: int, name: str) -> None:
    with pytest.raises(UnsupportedCodecError, match=name):
        parse_audio_tag(bytes([fmt << 4]) + b"x")


def test_malformed_audio_tags() -> None:
    with pytest.raises(RtmpProtocolError, match="truncated"):
        parse_audio_tag(b"\xaf")
    with pytest.raises(RtmpProtocolError, match="unknown AAC packet type 2"):
        parse_audio_tag(b"\xaf\x02")
    with pytest.raises(RtmpProtocolError, match="unknown packet type 3"):
        parse_audio_tag(bytes([0x90 | 3]) + b"Opus")
    with pytest.raises(UnsupportedCodecError, match="b'mp4b'"):
        parse_audio_tag(bytes([0x90 | 1]) + b"mp4b")


@pytest.mark.parametrize(
    ("codec", "fourcc"),
    [("aac", b"mp4a"), ("opus", b"Opus"), ("mp3", b".mp3"), ("flac", b"fLaC"), ("ac3", b"ac-3"), ("eac3", b"ec-3")],
)
def test_enhanced_audio(codec: str, fourcc: bytes) -> None:
    start = ex_audio_tag(codec, AudioPacketType.SEQUENCE_START, b"cfg")
    assert start[1:5] == fourcc
    assert parse_audio_tag(start) == [AudioTag(codec, "config", b"cfg")]
    assert parse_audio_tag(ex_audio_tag(codec, AudioPacketType.CODED_FRAMES, b"f")) == [AudioTag(codec, "frame", b"f")]
    assert parse_audio_tag(ex_audio_tag(codec, AudioPacketType.SEQUENCE_END))[0].kind == "end"
    assert parse_audio_tag(ex_audio_tag(codec, AudioPacketType.MULTICHANNEL_CONFIG, b"\x00\x02")) == []


def test_enhanced_audio_multitrack_and_mod_ex() -> None:
    body = bytes([0x90 | 5, (1 << 4) | 1]) + b"Opus" + b"\x00" + (1).to_bytes(3, "big") + b"a"
    body += b"\x01" + (1).to_bytes(3, "big") + b"b"
    assert [(t.track_id, t.data) for t in parse_audio_tag(body)] == [(0, b"a"), (1, b"b")]
    mod_ex = bytes([0x90 | 7, 2]) + b"\x00\x00\x01" + bytes([1]) + b"Opus" + b"pkt"
    assert parse_audio_tag(mod_ex) == [AudioTag("opus", "frame", b"pkt")]
