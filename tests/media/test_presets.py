"""LiveKit's presets and the custom-option defaults, against the numbers of reference ingress.md §2.1–2.3."""

import pytest
from livekit.protocol.ingress import (
    IngressAudioEncodingOptions,
    IngressAudioOptions,
    IngressVideoEncodingOptions,
    IngressVideoEncodingPreset,
    IngressVideoOptions,
)
from livekit.protocol.models import AudioCodec, VideoCodec, VideoLayer, VideoQuality

from pyingress.control.errors import IngressError
from pyingress.media.presets import (
    audio_preset,
    bitrate_for,
    resolve_audio,
    resolve_video,
    video_from_options,
    video_preset,
)

HIGH, MEDIUM, LOW = VideoQuality.HIGH, VideoQuality.MEDIUM, VideoQuality.LOW

# (enum name, fps, [(quality, width, height, bitrate)]) — the reference table, exactly.
REFERENCE_PRESETS = [
    (
        "H264_720P_30FPS_3_LAYERS",
        30,
        [(HIGH, 1280, 720, 1_900_000), (MEDIUM, 640, 360, 671_751), (LOW, 320, 180, 237_500)],
    ),
    (
        "H264_1080P_30FPS_3_LAYERS",
        30,
        [(HIGH, 1920, 1080, 3_500_000), (MEDIUM, 960, 540, 1_237_436), (LOW, 480, 270, 437_500)],
    ),
    ("H264_540P_25FPS_2_LAYERS", 25, [(HIGH, 960, 540, 1_000_000), (LOW, 480, 270, 353_553)]),
    ("H264_720P_30FPS_1_LAYER", 30, [(HIGH, 1280, 720, 1_900_000)]),
    ("H264_1080P_30FPS_1_LAYER", 30, [(HIGH, 1920, 1080, 3_500_000)]),
    (
        "H264_720P_30FPS_3_LAYERS_HIGH_MOTION",
        30,
        [(HIGH, 1280, 720, 2_500_000), (MEDIUM, 640, 360, 883_883), (LOW, 320, 180, 312_500)],
    ),
    (
        "H264_1080P_30FPS_3_LAYERS_HIGH_MOTION",
        30,
        [(HIGH, 1920, 1080, 4_500_000), (MEDIUM, 960, 540, 1_590_990), (LOW, 480, 270, 562_500)],
    ),
    ("H264_540P_25FPS_2_LAYERS_HIGH_MOTION", 25, [(HIGH, 960, 540, 1_300_000), (LOW, 480, 270, 459_619)]),
    ("H264_720P_30FPS_1_LAYER_HIGH_MOTION", 30, [(HIGH, 1280, 720, 2_500_000)]),
    ("H264_1080P_30FPS_1_LAYER_HIGH_MOTION", 30, [(HIGH, 1920, 1080, 4_500_000)]),
]


def _layers(encoding: object) -> list[tuple[int, int, int, int]]:
    return [(layer.quality, layer.width, layer.height, layer.bitrate) for layer in encoding.layers]  # type: ignore[attr-defined]


def test_reference_table_covers_every_enum_value() -> None:
    assert sorted(name for name, _, _ in REFERENCE_PRESETS) == sorted(IngressVideoEncodingPreset.keys())


@pytest.mark.parametrize(("name", "fps", "layers"), REFERENCE_PRESETS)
def test_video_preset_layers_equal_the_reference(name: str, fps: int, layers: list[tuple[int, int, int, int]]) -> None:
    encoding = video_preset(IngressVideoEncodingPreset.Value(name))
    assert encoding.codec == VideoCodec.H264_BASELINE
    assert encoding.frame_rate == fps
    assert _layers(encoding) == layers


def test_audio_presets() -> None:
    stereo = audio_preset(IngressAudioOptions(preset=0).preset)
    mono = audio_preset(1)
    assert (stereo.codec, stereo.channels, stereo.bitrate, stereo.disable_dtx) == (AudioCodec.OPUS, 2, 96_000, False)
    assert (mono.codec, mono.channels, mono.bitrate, mono.disable_dtx) == (AudioCodec.OPUS, 1, 64_000, False)


def test_unknown_presets_are_refused_with_livekit_messages() -> None:
    with pytest.raises(IngressError, match=r"^invalid video encoding preset$"):
        video_preset(10)
    with pytest.raises(IngressError, match=r"^invalid audio encoding preset$"):
        audio_preset(2)


def test_defaults_without_options_are_preset_0_and_opus_stereo_96k() -> None:
    assert _layers(resolve_video(None)) == REFERENCE_PRESETS[0][2]
    assert _layers(resolve_video(IngressVideoOptions(name="v"))) == REFERENCE_PRESETS[0][2]
    audio = resolve_audio(None)
    assert (audio.channels, audio.bitrate) == (2, 96_000)


def test_custom_options_without_layers_get_the_1_7_mbps_720p_ladder() -> None:
    encoding = video_from_options(IngressVideoEncodingOptions())
    assert encoding.codec == VideoCodec.H264_BASELINE and encoding.frame_rate == 30
    assert _layers(encoding) == [(HIGH, 1280, 720, 1_700_000), (MEDIUM, 640, 360, 601_040), (LOW, 320, 180, 212_500)]


@pytest.mark.parametrize(
    ("width", "height", "fps", "bitrate"),
    [(1280, 720, 30, 1_905_158), (1920, 1080, 15, 2_081_112), (480, 270, 15, 260_139)],
)
def test_bitrate_for_layers_given_without_one(width: int, height: int, fps: float, bitrate: int) -> None:
    options = IngressVideoEncodingOptions(frame_rate=fps, layers=[VideoLayer(quality=HIGH, width=width, height=height)])
    assert video_from_options(options).layers[0].bitrate == bitrate
    assert bitrate_for(3_500_000, 1920, 1080, 30, width, height, fps) == bitrate


def test_custom_options_keep_given_values_and_codec() -> None:
    options = IngressVideoEncodingOptions(
        video_codec=VideoCodec.VP8,
        frame_rate=24,
        layers=[VideoLayer(quality=HIGH, width=1920, height=1080, bitrate=4_500_000)],
    )
    encoding = resolve_video(IngressVideoOptions(options=options))
    assert encoding.codec == VideoCodec.VP8 and encoding.frame_rate == 24
    assert _layers(encoding) == [(HIGH, 1920, 1080, 4_500_000)]


@pytest.mark.parametrize(
    ("channels", "bitrate", "expected"),
    [(0, 0, (2, 96_000)), (1, 0, (1, 64_000)), (2, 0, (2, 96_000)), (1, 32_000, (1, 32_000))],
)
def test_custom_audio_defaults(channels: int, bitrate: int, expected: tuple[int, int]) -> None:
    audio = resolve_audio(IngressAudioOptions(options=IngressAudioEncodingOptions(channels=channels, bitrate=bitrate)))
    assert audio.codec == AudioCodec.OPUS
    assert (audio.channels, audio.bitrate) == expected


def test_disable_dtx_is_carried() -> None:
    audio = resolve_audio(IngressAudioOptions(options=IngressAudioEncodingOptions(disable_dtx=True)))
    assert audio.disable_dtx is True
