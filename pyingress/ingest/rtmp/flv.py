"""FLV audio/video tag bodies (the payload of RTMP message types 8 and 9), legacy and Enhanced RTMP.

Legacy tags (FLV spec v10.1 E.4.2/E.4.3): one header byte (sound format / frame type + codec id), then for AAC a
packet type, for AVC a packet type and a signed 24-bit composition time.  Enhanced RTMP (E-RTMP v2 "Enhanced
Video"/"Enhanced Audio") sets the top bit of a video header byte (audio: sound format 9) and follows with a packet
type, optional ModEx extensions, an optional multitrack header and a FourCC per track.

``parse_video_tag``/``parse_audio_tag`` turn a body into typed tags (one per track).  The ``*_tag`` builders
write bodies; our test publisher uses them.
"""

from dataclasses import dataclass
from enum import IntEnum
from typing import Literal

from pyingress.ingest.rtmp.errors import RtmpProtocolError, UnsupportedCodecError

TagKind = Literal["config", "frame", "end", "metadata"]


class VideoFrameType(IntEnum):
    KEY = 1
    INTER = 2
    DISPOSABLE_INTER = 3
    GENERATED_KEY = 4
    COMMAND = 5


class VideoPacketType(IntEnum):
    SEQUENCE_START = 0
    CODED_FRAMES = 1
    SEQUENCE_END = 2
    CODED_FRAMES_X = 3
    METADATA = 4
    MPEG2TS_SEQUENCE_START = 5
    MULTITRACK = 6
    MOD_EX = 7


class AudioPacketType(IntEnum):
    SEQUENCE_START = 0
    CODED_FRAMES = 1
    SEQUENCE_END = 2
    MULTICHANNEL_CONFIG = 4
    MULTITRACK = 5
    MOD_EX = 7


class MultitrackType(IntEnum):
    ONE_TRACK = 0
    MANY_TRACKS = 1
    MANY_TRACKS_MANY_CODECS = 2


EX_VIDEO_HEADER = 0x80
EX_AUDIO_FORMAT = 9
LEGACY_AVC, LEGACY_HEVC = 7, 12  # 12: the widespread (non-Adobe) "HEVC in FLV" extension, laid out like AVC
LEGACY_AAC, LEGACY_MP3, LEGACY_MP3_8K, LEGACY_ALAW, LEGACY_MULAW = 10, 2, 14, 7, 8

# FourCC -> FFmpeg codec name (packets.py uses FFmpeg's names).
VIDEO_FOURCCS = {b"avc1": "h264", b"hvc1": "hevc", b"av01": "av1", b"vp09": "vp9", b"vp08": "vp8", b"vvc1": "vvc"}
AUDIO_FOURCCS = {b"mp4a": "aac", b"Opus": "opus", b".mp3": "mp3", b"fLaC": "flac", b"ac-3": "ac3", b"ec-3": "eac3"}
_FOURCC_OF_VIDEO = {codec: fourcc for fourcc, codec in VIDEO_FOURCCS.items()}
_FOURCC_OF_AUDIO = {codec: fourcc for fourcc, codec in AUDIO_FOURCCS.items()}
# Codecs whose coded frames carry a composition time offset in E-RTMP CodedFrames packets.
_CTS_CODECS = frozenset({"h264", "hevc", "vvc"})

_LEGACY_VIDEO_NAMES = {2: "Sorenson H.263", 3: "Screen video", 4: "On2 VP6", 5: "On2 VP6 alpha", 6: "Screen video 2"}
_LEGACY_AUDIO_NAMES = {
    0: "linear PCM",
    1: "ADPCM",
    3: "linear PCM LE",
    4: "Nellymoser 16 kHz",
    5: "Nellymoser 8 kHz",
    6: "Nellymoser",
    11: "Speex",
    15: "device-specific",
}
_MP3_RATES = (5512, 11025, 22050, 44100)


@dataclass(frozen=True)
class VideoTag:
    codec: str
    kind: TagKind
    keyframe: bool = False
    composition_time: int = 0  # ms, pts - dts
    data: bytes = b""
    track_id: int = 0


@dataclass(frozen=True)
class AudioTag:
    codec: str
    kind: TagKind
    data: bytes = b""
    sample_rate: int = 0  # from the legacy header flags; 0 when the codec config says it
    channels: int = 0
    track_id: int = 0


class _Cursor:
    def __init__(self, data: bytes, pos: int = 0) -> None:
        self.data = data
        self.pos = pos

    def take(self, n: int, what: str) -> bytes:
        if self.pos + n > len(self.data):
            raise RtmpProtocolError(f"{what}: tag body truncated ({len(self.data)} bytes)")
        chunk = self.data[self.pos : self.pos + n]
        self.pos += n
        return chunk

    def u8(self, what: str) -> int:
        return self.take(1, what)[0]

    def rest(self) -> bytes:
        chunk = self.data[self.pos :]
        self.pos = len(self.data)
        return chunk

    def skip_mod_ex(self, packet_type: int, what: str) -> int:
        """Skip E-RTMP v2 ModEx blocks; returns the real packet type.

        The only ModEx defined (TimestampOffsetNano) refines time below our 1 ms time base, so it is read and dropped.
        """
        while packet_type == VideoPacketType.MOD_EX:  # 7 in both the audio and video enums
            size = self.u8(what) + 1
            if size == 256:
                size = int.from_bytes(self.take(2, what), "big") + 1
            self.take(size, what)
            packet_type = self.u8(what) & 0x0F
        return packet_type


def _si24(raw: bytes) -> int:
    value = int.from_bytes(raw, "big")
    return value - (1 << 24) if value & 0x800000 else value


def _tracks(
    cursor: _Cursor, packet_type: int, multitrack_marker: int, what: str
) -> tuple[int, list[tuple[bytes, int, bytes]]]:
    """Read the (optional) multitrack header and split the body into (fourcc, track id, track body) triples."""
    if packet_type != multitrack_marker:
        fourcc = cursor.take(4, what)
        return packet_type, [(fourcc, 0, cursor.rest())]
    byte = cursor.u8(what)
    layout, packet_type = byte >> 4, byte & 0x0F
    if packet_type == multitrack_marker:
        raise RtmpProtocolError(f"{what}: nested multitrack packet")
    if layout > MultitrackType.MANY_TRACKS_MANY_CODECS:
        raise RtmpProtocolError(f"{what}: unknown multitrack type {layout}")
    shared_fourcc = cursor.take(4, what) if layout != MultitrackType.MANY_TRACKS_MANY_CODECS else b""
    tracks: list[tuple[bytes, int, bytes]] = []
    while True:
        fourcc = cursor.take(4, what) if layout == MultitrackType.MANY_TRACKS_MANY_CODECS else shared_fourcc
        track_id = cursor.u8(what)
        if layout == MultitrackType.ONE_TRACK:
            tracks.append((fourcc, track_id, cursor.rest()))
            return packet_type, tracks
        size = int.from_bytes(cursor.take(3, what), "big")
        tracks.append((fourcc, track_id, cursor.take(size, what)))
        if cursor.pos >= len(cursor.data):
            return packet_type, tracks


def parse_video_tag(body: bytes) -> list[VideoTag]:
    """The video tags in one RTMP video message body (several for a multitrack message)."""
    what = "video tag"
    if not body:
        return []
    cursor = _Cursor(body, 1)
    header = body[0]
    frame_type = (header >> 4) & 0x07
    if not header & EX_VIDEO_HEADER:
        codec_id = header & 0x0F
        if frame_type == VideoFrameType.COMMAND:
            return []
        if codec_id not in (LEGACY_AVC, LEGACY_HEVC):
            name = _LEGACY_VIDEO_NAMES.get(codec_id, f"codec id {codec_id}")
            raise UnsupportedCodecError(f"video codec {name} is not supported: send H.264, or HEVC/AV1/VP9 via E-RTMP")
        codec = "h264" if codec_id == LEGACY_AVC else "hevc"
        packet_type = cursor.u8(what)
        cts = _si24(cursor.take(3, what))
        if packet_type > 2:
            raise RtmpProtocolError(f"{what}: unknown AVC packet type {packet_type}")
        kinds: tuple[TagKind, ...] = ("config", "frame", "end")
        kind = kinds[packet_type]
        keyframe = frame_type in (VideoFrameType.KEY, VideoFrameType.GENERATED_KEY)
        return [VideoTag(codec, kind, keyframe, cts if kind == "frame" else 0, cursor.rest())]

    packet_type = cursor.skip_mod_ex(header & 0x0F, what)
    if packet_type != VideoPacketType.METADATA and frame_type == VideoFrameType.COMMAND:
        return []  # a one-byte seek command, no video
    packet_type, tracks = _tracks(cursor, packet_type, VideoPacketType.MULTITRACK, what)
    keyframe = frame_type in (VideoFrameType.KEY, VideoFrameType.GENERATED_KEY)
    tags = []
    for fourcc, track_id, data in tracks:
        video_codec = VIDEO_FOURCCS.get(fourcc)
        if video_codec is None:
            raise UnsupportedCodecError(f"video FourCC {fourcc!r} is not supported")
        tag = _ex_video_body(video_codec, packet_type, keyframe, data, track_id)
        if tag is not None:
            tags.append(tag)
    return tags


def _ex_video_body(codec: str, packet_type: int, keyframe: bool, data: bytes, track_id: int) -> VideoTag | None:
    if packet_type == VideoPacketType.SEQUENCE_START:
        return VideoTag(codec, "config", data=data, track_id=track_id)
    if packet_type == VideoPacketType.CODED_FRAMES:
        cts = 0
        if codec in _CTS_CODECS:
            if len(data) < 3:
                raise RtmpProtocolError("video tag: coded frames without a composition time")
            cts, data = _si24(data[:3]), data[3:]
        return VideoTag(codec, "frame", keyframe, cts, data, track_id)
    if packet_type == VideoPacketType.CODED_FRAMES_X:
        return VideoTag(codec, "frame", keyframe, 0, data, track_id)
    if packet_type == VideoPacketType.SEQUENCE_END:
        return VideoTag(codec, "end", track_id=track_id)
    if packet_type == VideoPacketType.METADATA:
        return VideoTag(codec, "metadata", data=data, track_id=track_id)
    if packet_type == VideoPacketType.MPEG2TS_SEQUENCE_START:
        return None  # an MPEG-TS descriptor; AV1 carries its sequence header in band as well
    raise RtmpProtocolError(f"video tag: unknown packet type {packet_type}")


def parse_audio_tag(body: bytes) -> list[AudioTag]:
    """The audio tags in one RTMP audio message body; an empty body is the legacy "silence" message."""
    what = "audio tag"
    if not body:
        return []
    cursor = _Cursor(body, 1)
    header = body[0]
    sound_format = header >> 4
    if sound_format != EX_AUDIO_FORMAT:
        channels = 2 if header & 0x01 else 1
        rate = _MP3_RATES[(header >> 2) & 0x03]
        if sound_format == LEGACY_AAC:
            packet_type = cursor.u8(what)
            if packet_type > 1:
                raise RtmpProtocolError(f"{what}: unknown AAC packet type {packet_type}")
            return [AudioTag("aac", "config" if packet_type == 0 else "frame", cursor.rest())]
        if sound_format in (LEGACY_MP3, LEGACY_MP3_8K):
            rate = 8000 if sound_format == LEGACY_MP3_8K else rate
            return [AudioTag("mp3", "frame", cursor.rest(), rate, channels)]
        if sound_format in (LEGACY_ALAW, LEGACY_MULAW):
            codec = "pcm_alaw" if sound_format == LEGACY_ALAW else "pcm_mulaw"
            return [AudioTag(codec, "frame", cursor.rest(), 8000, channels)]
        name = _LEGACY_AUDIO_NAMES.get(sound_format, f"sound format {sound_format}")
        raise UnsupportedCodecError(f"audio codec {name} is not supported: send AAC, MP3 or Opus")

    packet_type = cursor.skip_mod_ex(header & 0x0F, what)
    packet_type, tracks = _tracks(cursor, packet_type, AudioPacketType.MULTITRACK, what)
    tags = []
    for fourcc, track_id, data in tracks:
        audio_codec = AUDIO_FOURCCS.get(fourcc)
        if audio_codec is None:
            raise UnsupportedCodecError(f"audio FourCC {fourcc!r} is not supported")
        if packet_type == AudioPacketType.SEQUENCE_START:
            tags.append(AudioTag(audio_codec, "config", data, track_id=track_id))
        elif packet_type == AudioPacketType.CODED_FRAMES:
            tags.append(AudioTag(audio_codec, "frame", data, track_id=track_id))
        elif packet_type == AudioPacketType.SEQUENCE_END:
            tags.append(AudioTag(audio_codec, "end", track_id=track_id))
        elif packet_type != AudioPacketType.MULTICHANNEL_CONFIG:  # channel order: the decoder reads it in band
            raise RtmpProtocolError(f"{what}: unknown packet type {packet_type}")
    return tags


# -- builders (what a publisher sends) ---------------------------------------------------------------------------


def legacy_video_tag(
    kind: TagKind, data: bytes, *, keyframe: bool = False, composition_time: int = 0, codec: str = "h264"
) -> bytes:
    """A classic FLV AVC (or codec-id-12 HEVC) video tag body."""
    codec_id = LEGACY_AVC if codec == "h264" else LEGACY_HEVC
    frame_type = VideoFrameType.KEY if keyframe or kind == "config" else VideoFrameType.INTER
    packet_type = {"config": 0, "frame": 1, "end": 2}[kind]
    return bytes([(frame_type << 4) | codec_id, packet_type]) + (composition_time & 0xFFFFFF).to_bytes(3, "big") + data


def ex_video_tag(
    codec: str,
    packet_type: VideoPacketType,
    data: bytes = b"",
    *,
    keyframe: bool = False,
    composition_time: int = 0,
    track_id: int | None = None,
) -> bytes:
    """An Enhanced RTMP video tag body; ``track_id`` set wraps it as a one-track multitrack packet."""
    frame_type = (
        VideoFrameType.KEY if keyframe or packet_type == VideoPacketType.SEQUENCE_START else VideoFrameType.INTER
    )
    fourcc = _FOURCC_OF_VIDEO[codec]
    if packet_type == VideoPacketType.CODED_FRAMES and codec in _CTS_CODECS:
        data = (composition_time & 0xFFFFFF).to_bytes(3, "big") + data
    first = EX_VIDEO_HEADER | (frame_type << 4)
    if track_id is None:
        return bytes([first | packet_type]) + fourcc + data
    return (
        bytes([first | VideoPacketType.MULTITRACK, (MultitrackType.ONE_TRACK << 4) | packet_type])
        + fourcc
        + bytes([track_id])
        + data
    )


def aac_tag(kind: Literal["config", "frame"], data: bytes) -> bytes:
    """A classic FLV AAC audio tag body (the header always says 44 kHz stereo 16-bit, as the FLV spec asks)."""
    return bytes([(LEGACY_AAC << 4) | 0x0F, 0 if kind == "config" else 1]) + data


def ex_audio_tag(codec: str, packet_type: AudioPacketType, data: bytes = b"") -> bytes:
    return bytes([(EX_AUDIO_FORMAT << 4) | packet_type]) + _FOURCC_OF_AUDIO[codec] + data


def mp3_tag(data: bytes, *, sample_rate_index: int = 3, stereo: bool = True) -> bytes:
    return bytes([(LEGACY_MP3 << 4) | (sample_rate_index << 2) | 0x02 | int(stereo)]) + data
