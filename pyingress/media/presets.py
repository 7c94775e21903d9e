"""The encoding a session uses: LiveKit's presets, the defaults for custom options, and the layer ladder maths.

Numbers and rules are livekit/ingress's (ingress.md §2.1–2.3), so that a preset gives exactly the layers a
LiveKit user expects: the top layer halved per extra layer, each lower bitrate the top one times the area
ratio to the power 0.75, truncated.
"""

import math
from dataclasses import dataclass

from livekit.protocol.ingress import (
    IngressAudioEncodingOptions,
    IngressAudioEncodingPreset,
    IngressAudioOptions,
    IngressVideoEncodingOptions,
    IngressVideoEncodingPreset,
    IngressVideoOptions,
)
from livekit.protocol.models import AudioCodec, VideoCodec, VideoQuality

from pyingress.control.errors import INVALID_AUDIO_PRESET, INVALID_VIDEO_PRESET

# The reference point of the bitrate formula for layers given without a bitrate: 1080p30 at 3.5 Mb/s.
REFERENCE_BITRATE = 3_500_000
REFERENCE_WIDTH = 1920
REFERENCE_HEIGHT = 1080
REFERENCE_FRAME_RATE = 30.0

# Custom video options without layers get this top layer (note: not preset 0's 1.9 Mb/s).
CUSTOM_DEFAULT_TOP = (1280, 720, 1_700_000)

OPUS_SAMPLE_RATE = 48_000
OPUS_FRAME_MS = 20


@dataclass(frozen=True)
class LayerSpec:
    """One simulcast layer as configured: a bounding box and a target bitrate (bps)."""

    quality: int  # livekit VideoQuality: LOW=0, MEDIUM=1, HIGH=2
    width: int
    height: int
    bitrate: int

    @property
    def quality_name(self) -> str:
        return VideoQuality.Name(self.quality)


@dataclass(frozen=True)
class VideoEncoding:
    codec: int  # livekit VideoCodec, resolved: H264_BASELINE or VP8
    frame_rate: float
    layers: tuple[LayerSpec, ...]  # as configured (presets: HIGH first)

    @property
    def codec_name(self) -> str:
        return VideoCodec.Name(self.codec)


@dataclass(frozen=True)
class AudioEncoding:
    codec: int  # livekit AudioCodec, resolved: OPUS
    channels: int
    bitrate: int
    disable_dtx: bool


def bitrate_for(
    ref_bitrate: float,
    ref_width: int,
    ref_height: int,
    ref_frame_rate: float,
    width: int,
    height: int,
    frame_rate: float,
) -> int:
    """Scale a bitrate by (frame-rate ratio)^0.75 × (area ratio)^0.75, truncated like LiveKit's uint32 cast."""
    ratio = math.pow(frame_rate / ref_frame_rate, 0.75)
    ratio *= math.pow((width * height) / (ref_width * ref_height), 0.75)
    return int(ref_bitrate * ratio)


def ladder(top_width: int, top_height: int, top_bitrate: int, layer_count: int) -> tuple[LayerSpec, ...]:
    """HIGH first, then each extra layer halved again; 3 layers are HIGH/MEDIUM/LOW, 2 layers HIGH/LOW."""
    layers = [LayerSpec(VideoQuality.HIGH, top_width, top_height, top_bitrate)]
    for step in range(1, layer_count):
        width, height = top_width >> step, top_height >> step
        bitrate = bitrate_for(top_bitrate, top_width, top_height, 1, width, height, 1)
        layers.append(LayerSpec(layer_count - 1 - step, width, height, bitrate))
    return tuple(layers)


# preset enum value -> (frame rate, top width, top height, top bitrate, layer count)
_VIDEO_PRESETS: dict[int, tuple[float, int, int, int, int]] = {
    IngressVideoEncodingPreset.H264_720P_30FPS_3_LAYERS: (30, 1280, 720, 1_900_000, 3),
    IngressVideoEncodingPreset.H264_1080P_30FPS_3_LAYERS: (30, 1920, 1080, 3_500_000, 3),
    IngressVideoEncodingPreset.H264_540P_25FPS_2_LAYERS: (25, 960, 540, 1_000_000, 2),
    IngressVideoEncodingPreset.H264_720P_30FPS_1_LAYER: (30, 1280, 720, 1_900_000, 1),
    IngressVideoEncodingPreset.H264_1080P_30FPS_1_LAYER: (30, 1920, 1080, 3_500_000, 1),
    IngressVideoEncodingPreset.H264_720P_30FPS_3_LAYERS_HIGH_MOTION: (30, 1280, 720, 2_500_000, 3),
    IngressVideoEncodingPreset.H264_1080P_30FPS_3_LAYERS_HIGH_MOTION: (30, 1920, 1080, 4_500_000, 3),
    IngressVideoEncodingPreset.H264_540P_25FPS_2_LAYERS_HIGH_MOTION: (25, 960, 540, 1_300_000, 2),
    IngressVideoEncodingPreset.H264_720P_30FPS_1_LAYER_HIGH_MOTION: (30, 1280, 720, 2_500_000, 1),
    IngressVideoEncodingPreset.H264_1080P_30FPS_1_LAYER_HIGH_MOTION: (30, 1920, 1080, 4_500_000, 1),
}

# preset enum value -> (channels, bitrate)
_AUDIO_PRESETS: dict[int, tuple[int, int]] = {
    IngressAudioEncodingPreset.OPUS_STEREO_96KBPS: (2, 96_000),
    IngressAudioEncodingPreset.OPUS_MONO_64KBS: (1, 64_000),
}

DEFAULT_VIDEO_PRESET = IngressVideoEncodingPreset.H264_720P_30FPS_3_LAYERS
DEFAULT_AUDIO_PRESET = IngressAudioEncodingPreset.OPUS_STEREO_96KBPS


def video_preset(preset: int) -> VideoEncoding:
    try:
        frame_rate, width, height, bitrate, count = _VIDEO_PRESETS[preset]
    except KeyError:
        raise INVALID_VIDEO_PRESET from None
    return VideoEncoding(VideoCodec.H264_BASELINE, frame_rate, ladder(width, height, bitrate, count))


def audio_preset(preset: int) -> AudioEncoding:
    try:
        channels, bitrate = _AUDIO_PRESETS[preset]
    except KeyError:
        raise INVALID_AUDIO_PRESET from None
    return AudioEncoding(AudioCodec.OPUS, channels, bitrate, disable_dtx=False)


def video_from_options(options: IngressVideoEncodingOptions) -> VideoEncoding:
    """Custom options with LiveKit's defaults filled in (H.264 baseline, 30 fps, a 720p ladder at 1.7 Mb/s)."""
    codec = options.video_codec or VideoCodec.H264_BASELINE
    frame_rate = options.frame_rate if options.frame_rate > 0 else REFERENCE_FRAME_RATE
    if not options.layers:
        return VideoEncoding(codec, frame_rate, ladder(*CUSTOM_DEFAULT_TOP, 3))
    layers = tuple(
        LayerSpec(
            layer.quality,
            layer.width,
            layer.height,
            layer.bitrate
            or bitrate_for(
                REFERENCE_BITRATE,
                REFERENCE_WIDTH,
                REFERENCE_HEIGHT,
                REFERENCE_FRAME_RATE,
                layer.width,
                layer.height,
                frame_rate,
            ),
        )
        for layer in options.layers
    )
    return VideoEncoding(codec, frame_rate, layers)


def audio_from_options(options: IngressAudioEncodingOptions) -> AudioEncoding:
    """Custom options with LiveKit's defaults: Opus, stereo, 96 kb/s stereo or 64 kb/s mono, DTX on."""
    channels = options.channels or 2
    bitrate = options.bitrate or (64_000 if channels == 1 else 96_000)
    return AudioEncoding(options.audio_codec or AudioCodec.OPUS, channels, bitrate, options.disable_dtx)


def resolve_video(options: IngressVideoOptions | None) -> VideoEncoding:
    """The encoding a session uses for the ingress's video options (none → preset 0)."""
    kind = options.WhichOneof("encoding_options") if options is not None else None
    if options is None or kind is None:
        return video_preset(DEFAULT_VIDEO_PRESET)
    if kind == "preset":
        return video_preset(options.preset)
    return video_from_options(options.options)


def resolve_audio(options: IngressAudioOptions | None) -> AudioEncoding:
    """The encoding a session uses for the ingress's audio options (none → OPUS_STEREO_96KBPS)."""
    kind = options.WhichOneof("encoding_options") if options is not None else None
    if options is None or kind is None:
        return audio_preset(DEFAULT_AUDIO_PRESET)
    if kind == "preset":
        return audio_preset(options.preset)
    return audio_from_options(options.options)


def all_video_presets() -> list[tuple[str, VideoEncoding]]:
    return [(IngressVideoEncodingPreset.Name(value), video_preset(value)) for value in _VIDEO_PRESETS]


def all_audio_presets() -> list[tuple[str, AudioEncoding]]:
    return [(IngressAudioEncodingPreset.Name(value), audio_preset(value)) for value in _AUDIO_PRESETS]
