"""From FLV tags to the data path's vocabulary: ``StreamDescription`` once per stream, then ``EncodedPacket``s.

What it decides (and why):
- A stream is described when its decoder configuration arrives (AVC/HEVC/AAC need it: their frames are not
  decodable without it); codecs whose bitstream describes itself (AV1, VP9, MP3, G.711, Opus) are described
  at their first frame if no configuration came.
- Video before the first keyframe is dropped, as livekit/ingress does (ingress.md §1.4): a decoder cannot start
  there.
- Frames of a codec that needs a configuration but never got one are dropped; after ``config_grace_ms`` of such
  media the publisher is told clearly instead of leaving the session buffering until a watchdog fires.
- Multitrack (E-RTMP v2): the first track id seen per kind is ingested, others are ignored.
- A repeated identical sequence header is ignored; a changed one rides on the next packet as ``codec_config``.
- RTMP timestamps are 32-bit milliseconds; they are unwrapped so a 49-day stream keeps counting up.
"""

from dataclasses import dataclass, field
from fractions import Fraction
from typing import Any

from pyingress.ingest.rtmp.errors import RtmpProtocolError
from pyingress.ingest.rtmp.flv import AudioTag, VideoTag, parse_audio_tag, parse_video_tag
from pyingress.media.packets import EncodedPacket, MediaKind, StreamDescription

FLV_TIME_BASE = Fraction(1, 1000)
DEFAULT_CONFIG_GRACE_MS = 5000
_NEEDS_CONFIG = frozenset({"h264", "hevc", "vvc", "aac", "flac"})
_AAC_RATES = (96000, 88200, 64000, 48000, 44100, 32000, 24000, 22050, 16000, 12000, 11025, 8000, 7350)

MediaItem = StreamDescription | EncodedPacket


def parse_audio_specific_config(config: bytes) -> tuple[int, int]:
    """(sample rate, channels) from an MPEG-4 AudioSpecificConfig (ISO 14496-3 §1.6.2.1); zeros if unreadable."""
    if len(config) < 2:
        return 0, 0
    bits = int.from_bytes(config[:6].ljust(6, b"\0"), "big")
    pos = 48

    def read(n: int) -> int:
        nonlocal pos
        pos -= n
        return (bits >> pos) & ((1 << n) - 1)

    if read(5) == 31:
        read(6)
    index = read(4)
    rate = read(24) if index == 15 else (_AAC_RATES[index] if index < len(_AAC_RATES) else 0)
    channel_config = read(4)
    channels = {7: 8}.get(channel_config, channel_config) if channel_config < 8 else 0
    return rate, channels


def _number(value: Any) -> float:
    return float(value) if isinstance(value, int | float) and not isinstance(value, bool) else 0.0


@dataclass
class _Track:
    kind: MediaKind
    track_id: int | None = None
    codec: str = ""
    config: bytes | None = None
    described: bool = False
    pending_config: bytes | None = None
    seen_keyframe: bool = False
    unconfigured_since: int | None = None
    last_raw_ts: int | None = None
    wrap_offset: int = 0
    dropped_before_keyframe: int = 0
    dropped_without_config: int = 0
    extra: dict[str, Any] = field(default_factory=dict)

    def unwrap(self, timestamp: int) -> int:
        if self.last_raw_ts is not None and timestamp + (1 << 31) < self.last_raw_ts:
            self.wrap_offset += 1 << 32
        self.last_raw_ts = timestamp
        return timestamp + self.wrap_offset


class FlvDemuxer:
    """Stateful: feed audio/video message bodies with their timestamps, get descriptions and packets back."""

    def __init__(self, *, config_grace_ms: int = DEFAULT_CONFIG_GRACE_MS) -> None:
        self.config_grace_ms = config_grace_ms
        self.metadata: dict[str, Any] = {}
        self.video = _Track("video")
        self.audio = _Track("audio")

    @property
    def dropped_before_keyframe(self) -> int:
        return self.video.dropped_before_keyframe

    def set_metadata(self, metadata: dict[str, Any]) -> None:
        self.metadata = dict(metadata)

    def video_message(self, timestamp: int, body: bytes) -> list[MediaItem]:
        out: list[MediaItem] = []
        for tag in parse_video_tag(body):
            out += self._video_tag(timestamp, tag)
        return out

    def audio_message(self, timestamp: int, body: bytes) -> list[MediaItem]:
        out: list[MediaItem] = []
        for tag in parse_audio_tag(body):
            out += self._audio_tag(timestamp, tag)
        return out

    def _select(self, track: _Track, track_id: int) -> bool:
        if track.track_id is None:
            track.track_id = track_id
        return track.track_id == track_id

    def _video_tag(self, timestamp: int, tag: VideoTag) -> list[MediaItem]:
        track = self.video
        if not self._select(track, tag.track_id):
            return []
        if tag.kind == "metadata":
            track.extra["video_metadata"] = tag.data
            return []
        if tag.kind == "end":
            return []
        if tag.kind == "config":
            return self._configure(track, tag.codec, tag.data)
        out = self._describe_on_frame(track, tag.codec, timestamp)
        if out is None:
            return []
        if not track.seen_keyframe:
            if not tag.keyframe:
                track.dropped_before_keyframe += 1
                return out
            track.seen_keyframe = True
        dts = track.unwrap(timestamp)
        return [*out, self._packet(track, dts, dts + tag.composition_time, tag.data, tag.keyframe)]

    def _audio_tag(self, timestamp: int, tag: AudioTag) -> list[MediaItem]:
        track = self.audio
        if not self._select(track, tag.track_id):
            return []
        if tag.kind == "end":
            return []
        if tag.kind == "config":
            if tag.codec in ("aac", "opus", "flac") and len(tag.data) < 2:
                raise RtmpProtocolError(f"{tag.codec} sequence header of {len(tag.data)} bytes is too short")
            return self._configure(track, tag.codec, tag.data, tag.sample_rate, tag.channels)
        if not track.described and tag.codec not in _NEEDS_CONFIG:
            track.extra.update(sample_rate=tag.sample_rate, channels=tag.channels)
        out = self._describe_on_frame(track, tag.codec, timestamp)
        if out is None:
            return []
        dts = track.unwrap(timestamp)
        return [*out, self._packet(track, dts, dts, tag.data, True)]

    def _configure(self, track: _Track, codec: str, config: bytes, rate: int = 0, channels: int = 0) -> list[MediaItem]:
        if not config and codec in _NEEDS_CONFIG:
            raise RtmpProtocolError(f"empty {codec} sequence header")
        if track.described and codec == track.codec:
            if config != track.config:
                track.config = config
                track.pending_config = config
            return []
        track.codec, track.config = codec, config or None
        track.extra.update(sample_rate=rate, channels=channels)
        track.unconfigured_since = None
        track.seen_keyframe = False
        return [self._description(track)]

    def _describe_on_frame(self, track: _Track, codec: str, timestamp: int) -> list[MediaItem] | None:
        """[] or [new description] when frames of ``codec`` can be passed on now; None when they must be dropped."""
        if track.described and codec == track.codec:
            return []
        if codec in _NEEDS_CONFIG:
            track.dropped_without_config += 1
            if track.unconfigured_since is None:
                track.unconfigured_since = timestamp
            elif (timestamp - track.unconfigured_since) & 0xFFFFFFFF > self.config_grace_ms:
                raise RtmpProtocolError(
                    f"{track.kind} ({codec}) arrived without a sequence header for over {self.config_grace_ms} ms: "
                    "the decoder configuration is missing; check the encoder's output settings"
                )
            return None
        track.codec, track.config = codec, None
        track.seen_keyframe = False
        return [self._description(track)]

    def _description(self, track: _Track) -> StreamDescription:
        track.described = True
        track.pending_config = None
        meta = self.metadata
        if track.kind == "video":
            return StreamDescription(
                kind="video",
                codec=track.codec,
                codec_config=track.config,
                width=int(_number(meta.get("width"))),
                height=int(_number(meta.get("height"))),
                frame_rate=_number(meta.get("framerate", meta.get("videoframerate"))),
            )
        rate, channels = track.extra.get("sample_rate", 0), track.extra.get("channels", 0)
        if track.codec == "aac" and track.config:
            rate, channels = parse_audio_specific_config(track.config)
        elif track.codec == "opus":
            rate = 48000
            channels = track.config[9] if track.config and len(track.config) > 9 else 2
        return StreamDescription(
            kind="audio", codec=track.codec, codec_config=track.config, sample_rate=rate, channels=channels
        )

    def _packet(self, track: _Track, dts: int, pts: int, data: bytes, keyframe: bool) -> EncodedPacket:
        config, track.pending_config = track.pending_config, None
        return EncodedPacket(
            kind=track.kind,
            codec=track.codec,
            data=data,
            pts=pts,
            dts=dts,
            time_base=FLV_TIME_BASE,
            keyframe=keyframe,
            codec_config=config,
        )
