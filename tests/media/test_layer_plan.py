"""Layer fitting: LiveKit's exact table (ingress.md §2.4) and our orientation-aware default."""

import pytest
from livekit.protocol.ingress import IngressVideoEncodingPreset
from livekit.protocol.models import VideoQuality

from pyingress.media.layer_plan import LayerFit, display_size, fit_to_box, plan_layers
from pyingress.media.presets import LayerSpec, video_preset

LIVEKIT = LayerFit.LIVEKIT
ORIENTED = LayerFit.ORIENTATION_AWARE

# (top box, layer count) -> fit -> source -> published sizes LOW→HIGH.  The 720p/3-layer LIVEKIT rows are the
# reference's own examples; the others follow the same arithmetic (shrink to width, then height, round up to even).
EXPECTED: dict[tuple[str, int], dict[LayerFit, dict[str, str]]] = {
    ("1280x720", 3): {
        LIVEKIT: {
            "1920x1080": "320x180 640x360 1280x720",
            "1080x1920": "102x180 202x360 406x720",
            "1440x1080": "240x180 480x360 960x720",
            "854x480": "320x180 640x360 854x480",
            "640x480": "240x180 480x360 640x480",
            "320x240": "240x180 320x240",
            "720x1280": "102x180 202x360 406x720",
        },
        ORIENTED: {
            "1920x1080": "320x180 640x360 1280x720",
            "1080x1920": "180x320 360x640 720x1280",
            "1440x1080": "240x180 480x360 960x720",
            "854x480": "320x180 640x360 854x480",
            "640x480": "240x180 480x360 640x480",
            "320x240": "240x180 320x240",
            "720x1280": "180x320 360x640 720x1280",
        },
    },
    ("1920x1080", 3): {
        LIVEKIT: {
            "1920x1080": "480x270 960x540 1920x1080",
            "1080x1920": "152x270 304x540 608x1080",
            "1440x1080": "360x270 720x540 1440x1080",
            "854x480": "480x270 854x480",
            "640x480": "360x270 640x480",
            "320x240": "320x240",
            "720x1280": "152x270 304x540 608x1080",
        },
        ORIENTED: {
            "1920x1080": "480x270 960x540 1920x1080",
            "1080x1920": "270x480 540x960 1080x1920",
            "1440x1080": "360x270 720x540 1440x1080",
            "854x480": "480x270 854x480",
            "640x480": "360x270 640x480",
            "320x240": "320x240",
            "720x1280": "270x480 540x960 720x1280",
        },
    },
    ("960x540", 2): {
        LIVEKIT: {
            "1920x1080": "480x270 960x540",
            "1080x1920": "152x270 304x540",
            "1440x1080": "360x270 720x540",
            "854x480": "480x270 854x480",
            "640x480": "360x270 640x480",
            "320x240": "320x240",
            "720x1280": "152x270 304x540",
        },
        ORIENTED: {
            "1920x1080": "480x270 960x540",
            "1080x1920": "270x480 540x960",
            "1440x1080": "360x270 720x540",
            "854x480": "480x270 854x480",
            "640x480": "360x270 640x480",
            "320x240": "320x240",
            "720x1280": "270x480 540x960",
        },
    },
    ("1280x720", 1): {
        LIVEKIT: {
            "1920x1080": "1280x720",
            "1080x1920": "406x720",
            "1440x1080": "960x720",
            "854x480": "854x480",
            "640x480": "640x480",
            "320x240": "320x240",
            "720x1280": "406x720",
        },
        ORIENTED: {
            "1920x1080": "1280x720",
            "1080x1920": "720x1280",
            "1440x1080": "960x720",
            "854x480": "854x480",
            "640x480": "640x480",
            "320x240": "320x240",
            "720x1280": "720x1280",
        },
    },
    ("1920x1080", 1): {
        LIVEKIT: {
            "1920x1080": "1920x1080",
            "1080x1920": "608x1080",
            "1440x1080": "1440x1080",
            "854x480": "854x480",
            "640x480": "640x480",
            "320x240": "320x240",
            "720x1280": "608x1080",
        },
        ORIENTED: {
            "1920x1080": "1920x1080",
            "1080x1920": "1080x1920",
            "1440x1080": "1440x1080",
            "854x480": "854x480",
            "640x480": "640x480",
            "320x240": "320x240",
            "720x1280": "720x1280",
        },
    },
}

SOURCES = ["1920x1080", "1080x1920", "1440x1080", "854x480", "640x480", "320x240", "720x1280"]
ALL_PRESETS = list(IngressVideoEncodingPreset.values())


def _size(text: str) -> tuple[int, int]:
    width, height = text.split("x")
    return int(width), int(height)


@pytest.mark.parametrize("fit", [LIVEKIT, ORIENTED], ids=lambda fit: fit.name)
@pytest.mark.parametrize("source", SOURCES)
@pytest.mark.parametrize("preset", ALL_PRESETS, ids=IngressVideoEncodingPreset.Name)
def test_every_preset_and_source_gives_the_exact_layer_sizes(preset: int, source: str, fit: LayerFit) -> None:
    encoding = video_preset(preset)
    top = encoding.layers[0]
    expected = EXPECTED[(f"{top.width}x{top.height}", len(encoding.layers))][fit][source]
    plan = plan_layers(encoding.layers, *_size(source), fit=fit)
    assert " ".join(f"{layer.width}x{layer.height}" for layer in plan.layers) == expected


def test_layers_are_sorted_low_to_high_with_their_configured_quality_labels() -> None:
    two_layers = video_preset(IngressVideoEncodingPreset.H264_540P_25FPS_2_LAYERS)
    plan = plan_layers(two_layers.layers, 1920, 1080)
    assert [layer.quality for layer in plan.layers] == [VideoQuality.LOW, VideoQuality.HIGH]  # no MEDIUM
    three = plan_layers(video_preset(IngressVideoEncodingPreset.H264_720P_30FPS_3_LAYERS).layers, 320, 240)
    assert [layer.quality_name for layer in three.layers] == ["LOW", "MEDIUM"]  # HIGH dropped, labels kept
    assert three.top.quality == VideoQuality.MEDIUM
    assert three.layer(VideoQuality.HIGH) is None


def test_livekit_fit_never_rescales_bitrates() -> None:
    encoding = video_preset(IngressVideoEncodingPreset.H264_720P_30FPS_3_LAYERS)
    for source in SOURCES:
        plan = plan_layers(encoding.layers, *_size(source), fit=LIVEKIT)
        configured = {spec.quality: spec.bitrate for spec in encoding.layers}
        assert all(layer.bitrate == configured[layer.quality] for layer in plan.layers)


def test_orientation_aware_bitrates_follow_the_encoded_area() -> None:
    encoding = video_preset(IngressVideoEncodingPreset.H264_720P_30FPS_3_LAYERS)
    # Portrait fills the turned box: same pixels, same bitrates as landscape.
    portrait = plan_layers(encoding.layers, 1080, 1920)
    assert [layer.bitrate for layer in portrait.layers] == [237_500, 671_751, 1_900_000]
    # 4:3 uses 3/4 of each box: bitrate × 0.75^0.75, truncated.
    four_three = plan_layers(encoding.layers, 1440, 1080)
    assert [layer.bitrate for layer in four_three.layers] == [191_407, 541_382, 1_531_262]
    # A source below the box: 854×480 is 44.5 % of 1280×720.
    small = plan_layers(encoding.layers, 854, 480)
    assert small.top.bitrate == 1_034_834


def test_custom_portrait_boxes_are_turned_for_landscape_sources() -> None:
    layers = [LayerSpec(VideoQuality.HIGH, 720, 1280, 2_000_000), LayerSpec(VideoQuality.LOW, 360, 640, 700_000)]
    plan = plan_layers(layers, 1920, 1080)
    assert [(layer.width, layer.height) for layer in plan.layers] == [(640, 360), (1280, 720)]
    exact = plan_layers(layers, 1920, 1080, fit=LIVEKIT)
    assert [(layer.width, layer.height) for layer in exact.layers] == [(360, 202), (720, 406)]


def test_square_source_keeps_the_box_and_odd_sizes_round_up_to_even() -> None:
    layers = [LayerSpec(VideoQuality.HIGH, 1280, 720, 1_900_000)]
    for fit in (LIVEKIT, ORIENTED):
        top = plan_layers(layers, 1080, 1080, fit=fit).top
        assert (top.width, top.height) == (720, 720)
    assert fit_to_box(853, 481, 1280, 720) == (854, 482)
    assert fit_to_box(1279, 719, 640, 360) == (640, 360)


def test_display_rotation_swaps_the_source_size() -> None:
    assert display_size(1920, 1080, 90) == (1080, 1920)
    assert display_size(1920, 1080, -90) == (1080, 1920)
    assert display_size(1920, 1080, 270) == (1080, 1920)
    assert display_size(1920, 1080, 180) == (1920, 1080)
    assert display_size(1920, 1080, 0) == (1920, 1080)


def test_an_empty_source_is_refused() -> None:
    with pytest.raises(ValueError, match="source size"):
        plan_layers(video_preset(0).layers, 0, 1080)
