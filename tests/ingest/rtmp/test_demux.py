"""FLV tags to StreamDescription/EncodedPacket: configuration, keyframe gating, timestamps, tracks."""

from fractions import Fraction

import pytest

from pyingress.ingest.rtmp.demux import FlvDemuxer, parse_audio_specific_config
from pyingress.ingest.rtmp.errors import RtmpProtocolError
from pyingress.ingest.rtmp.flv import (
    AudioPacketType,
    VideoPacketType,
    aac_tag,
    ex_audio_tag,
    ex_video_tag,
    legacy_video_tag,
    mp3_tag,
)
from pyingress.media.packets import EncodedPacket, StreamDescription


def test_avc_description_then_packets_with_composition_time() -> None:
    demux = FlvDemuxer()
    demux.set_metadata({"width": 320.0, "height": 240.0, "framerate": 25.0})
    [description] = demux.video_message(0, legacy_video_tag("config", b"avcC-record"))
    assert description == StreamDescription("video", "h264", b"avcC-record", 320, 240, 25.0)
    [packet] = demux.video_message(40, legacy_video_tag("frame", b"idr", keyframe=True, composition_time=80))
    assert packet == EncodedPacket("video", "h264", b"idr", 120, 40, Fraction(1, 1000), True, None)


def test_video_before_the_first_keyframe_is_dropped() -> None:
    demux = FlvDemuxer()
    demux.video_message(0, legacy_video_tag("config", b"cfg"))
    assert demux.video_message(0, legacy_video_tag("frame", b"p1")) == []
    assert demux.video_message(40, legacy_video_tag("frame", b"p2")) == []
    assert demux.dropped_before_keyframe == 2
    assert [p.data for p in demux.video_message(80, legacy_video_tag("frame", b"i", keyframe=True))] == [b"i"]  # type: ignore[union-attr]
    assert len(demux.video_message(120, legacy_video_tag("frame", b"p3"))) == 1


def test_repeated_config_is_ignored_and_a_new_one_rides_on_the_next_packet() -> None:
    demux = FlvDemuxer()
    demux.video_message(0, legacy_video_tag("config", b"cfg1"))
    demux.video_message(0, legacy_video_tag("frame", b"i", keyframe=True))
    assert demux.video_message(40, legacy_video_tag("config", b"cfg1")) == []
    assert demux.video_message(40, legacy_video_tag("config", b"cfg2")) == []
    [packet] = demux.video_message(40, legacy_video_tag("frame", b"i2", keyframe=True))
    assert isinstance(packet, EncodedPacket) and packet.codec_config == b"cfg2"
    [after] = demux.video_message(80, legacy_video_tag("frame", b"p"))
    assert isinstance(after, EncodedPacket) and after.codec_config is None


def test_codec_change_gives_a_new_description_and_waits_for_a_keyframe() -> None:
    demux = FlvDemuxer()
    demux.video_message(0, legacy_video_tag("config", b"avc"))
    demux.video_message(0, legacy_video_tag("frame", b"i", keyframe=True))
    [description] = demux.video_message(40, ex_video_tag("hevc", VideoPacketType.SEQUENCE_START, b"hvcC"))
    assert isinstance(description, StreamDescription) and description.codec == "hevc"
    assert demux.video_message(40, ex_video_tag("hevc", VideoPacketType.CODED_FRAMES, b"p")) == []


def test_frames_without_a_sequence_header_are_dropped_then_refused() -> None:
    demux = FlvDemuxer(config_grace_ms=1000)
    for ts in range(0, 1001, 100):
        assert demux.video_message(ts, legacy_video_tag("frame", b"nal", keyframe=True)) == []
    with pytest.raises(RtmpProtocolError, match="without a sequence header for over 1000 ms"):
        demux.video_message(1200, legacy_video_tag("frame", b"nal", keyframe=True))
    audio = FlvDemuxer(config_grace_ms=0)
    audio.audio_message(0, aac_tag("frame", b"raw"))
    with pytest.raises(RtmpProtocolError, match=r"audio \(aac\)"):
        audio.audio_message(30, aac_tag("frame", b"raw"))


def test_self_describing_codecs_need_no_configuration() -> None:
    demux = FlvDemuxer()
    out = demux.video_message(0, ex_video_tag("av1", VideoPacketType.CODED_FRAMES, b"obus", keyframe=True))
    assert [type(item) for item in out] == [StreamDescription, EncodedPacket]
    assert out[0] == StreamDescription("video", "av1")
    [description, packet] = demux.audio_message(0, mp3_tag(b"frame", sample_rate_index=3, stereo=True))
    assert description == StreamDescription("audio", "mp3", None, sample_rate=44100, channels=2)
    assert isinstance(packet, EncodedPacket) and packet.keyframe


def test_aac_description_from_audio_specific_config() -> None:
    demux = FlvDemuxer()
    [description] = demux.audio_message(0, aac_tag("config", bytes([0x11, 0x90])))
    assert description == StreamDescription("audio", "aac", b"\x11\x90", sample_rate=48000, channels=2)
    [packet] = demux.audio_message(21, aac_tag("frame", b"raw"))
    assert isinstance(packet, EncodedPacket) and (packet.pts, packet.dts, packet.data) == (21, 21, b"raw")
    with pytest.raises(RtmpProtocolError, match="too short"):
        FlvDemuxer().audio_message(0, aac_tag("config", b"\x11"))


@pytest.mark.parametrize(
    ("config", "expected"),
    [
        (bytes([0x11, 0x90]), (48000, 2)),
        (bytes([0x12, 0x08]), (44100, 1)),
        (bytes([0x13, 0x88]), (22050, 1)),
        (bytes([0x12, 0x38]), (44100, 8)),  # channel configuration 7 is 7.1
        (bytes.fromhex("1780177010"), (12000, 2)),  # frequency index 15: an explicit 24-bit rate
        (b"\x12", (0, 0)),
    ],
)
def test_audio_specific_config(config: bytes, expected: tuple[int, int]) -> None:
    assert parse_audio_specific_config(config) == expected


def test_opus_head_gives_channels() -> None:
    head = b"OpusHead" + bytes([1, 1]) + b"\x38\x01" + (48000).to_bytes(4, "little") + b"\x00\x00\x00"
    [description] = FlvDemuxer().audio_message(0, ex_audio_tag("opus", AudioPacketType.SEQUENCE_START, head))
    assert isinstance(description, StreamDescription) and (description.sample_rate, description.channels) == (48000, 1)


def test_first_track_is_ingested_others_ignored() -> None:
    demux = FlvDemuxer()
    demux.video_message(0, ex_video_tag("hevc", VideoPacketType.SEQUENCE_START, b"c0", track_id=0))
    assert demux.video_message(0, ex_video_tag("hevc", VideoPacketType.SEQUENCE_START, b"c1", track_id=1)) == []
    frames = VideoPacketType.CODED_FRAMES_X
    assert demux.video_message(0, ex_video_tag("hevc", frames, b"x", keyframe=True, track_id=1)) == []
    [packet] = demux.video_message(0, ex_video_tag("hevc", frames, b"y", keyframe=True, track_id=0))
    assert isinstance(packet, EncodedPacket) and packet.data == b"y"


def test_timestamps_are_unwrapped_past_32_bits() -> None:
    demux = FlvDemuxer()
    demux.audio_message(0, aac_tag("config", bytes([0x11, 0x90])))
    stamps = []
    for ts in (0xFFFFFF00, 0xFFFFFFF0, 0x10, 0x100):
        [packet] = demux.audio_message(ts, aac_tag("frame", b"x"))
        assert isinstance(packet, EncodedPacket)
        stamps.append(packet.dts)
    assert stamps == [0xFFFFFF00, 0xFFFFFFF0, 0x100000010, 0x100000100]


def test_end_and_metadata_tags_produce_nothing() -> None:
    demux = FlvDemuxer()
    assert demux.video_message(0, ex_video_tag("av1", VideoPacketType.SEQUENCE_END)) == []
    assert demux.video_message(0, ex_video_tag("av1", VideoPacketType.METADATA, b"\x02\x00\x00")) == []
    assert demux.audio_message(0, ex_audio_tag("opus", AudioPacketType.SEQUENCE_END)) == []
    with pytest.raises(RtmpProtocolError, match="empty h264 sequence header"):
        demux.video_message(0, legacy_video_tag("config", b""))
