"""The vocabulary that crosses the rooms of the data path.

Front doors (``ingest/``) produce ``StreamDescription`` + ``EncodedPacket``; the pipeline (``media/``) turns them
into ``OutputFrame`` per output track and layer; the publisher (``publish/``) sends those.  Kept deliberately small.
"""

from dataclasses import dataclass
from fractions import Fraction
from typing import Literal

MediaKind = Literal["audio", "video"]

# A video layer is named by the livekit VideoQuality it stands for (LOW=0, MEDIUM=1, HIGH=2); ``None`` on a
# description or packet means the stream has one layer only (RTMP, SRT, files, a WHIP publisher without simulcast).
LAYER_NAMES = ("LOW", "MEDIUM", "HIGH")


def layer_of_rid_index(index: int) -> int:
    """A simulcast publisher's rids in offer order are HIGH, MEDIUM, LOW (reference ingress.md §1.5 (b))."""
    if not 0 <= index < len(LAYER_NAMES):
        raise ValueError(f"a simulcast publisher has at most {len(LAYER_NAMES)} layers, not rid #{index + 1}")
    return len(LAYER_NAMES) - 1 - index


# Codec names are FFmpeg's (what PyAV's CodecContext.create takes): "h264", "hevc", "av1", "vp8", "vp9",
# "aac", "mp3", "opus", "pcm_alaw" ...


@dataclass(frozen=True)
class StreamDescription:
    """One elementary stream as the publisher announced it, before any packet is decoded."""

    kind: MediaKind
    codec: str
    # Decoder extradata in FFmpeg's convention: avcC / hvcC / av1C record, AAC AudioSpecificConfig, or None.
    codec_config: bytes | None = None
    width: int = 0
    height: int = 0
    frame_rate: float = 0.0
    sample_rate: int = 0
    channels: int = 0
    layer: int | None = None  # video layer of a simulcast publisher (VideoQuality), None when it has one


@dataclass(frozen=True)
class EncodedPacket:
    """One access unit (video) or frame (audio) as it arrived, with timestamps in ``time_base``.

    H.264/HEVC data is in the same framing as ``codec_config`` implies: length-prefixed (AVCC) when the config is
    an avcC/hvcC record, Annex-B start codes otherwise.
    """

    kind: MediaKind
    codec: str
    data: bytes
    pts: int
    dts: int
    time_base: Fraction
    keyframe: bool = False
    # Set when the stream's decoder configuration changes at this packet (e.g. a new AVC sequence header).
    codec_config: bytes | None = None
    layer: int | None = None  # as StreamDescription.layer


@dataclass(frozen=True)
class OutputFrame:
    """One encoded frame ready for a room track: video per simulcast layer, audio as one Opus track."""

    kind: MediaKind
    codec: str  # "h264" (Annex-B, SPS/PPS with every IDR), "vp8" or "opus"
    data: bytes
    pts: int
    time_base: Fraction  # 1/90000 for video, 1/48000 for audio
    keyframe: bool = False
    quality: int | None = None  # livekit VideoQuality of the layer (LOW=0, MEDIUM=1, HIGH=2); None for audio
    width: int = 0
    height: int = 0
    duration: int = 0  # in time_base; audio: 960 at 48 kHz for 20 ms
