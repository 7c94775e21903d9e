"""The size a pass-through layer is announced with before its first keyframe told the real one."""

from livekit.protocol.models import VideoQuality

from pyingress.media.packets import StreamDescription
from pyingress.media.passthrough_layer import LayerForwarder, announced_sizes
from pyingress.media.timeline import SessionTimeline

LOW, MEDIUM, HIGH = VideoQuality.LOW, VideoQuality.MEDIUM, VideoQuality.HIGH


def _layers(**known: tuple[int, int]) -> list[LayerForwarder]:
    """LOW, MEDIUM and HIGH VP8 layers; a size given is what the layer already knows."""
    timeline = SessionTimeline()
    return [
        LayerForwarder(StreamDescription("video", "vp8", None, *known.get(name, (0, 0)), layer=quality), timeline)
        for name, quality in (("LOW", LOW), ("MEDIUM", MEDIUM), ("HIGH", HIGH))
    ]


def test_an_unknown_layer_is_the_next_better_known_one_halved_per_step() -> None:
    assert announced_sizes(_layers(HIGH=(1280, 720))) == {HIGH: (1280, 720), MEDIUM: (640, 360), LOW: (320, 180)}
    assert announced_sizes(_layers(HIGH=(1280, 720), MEDIUM=(960, 540))) == {
        HIGH: (1280, 720),
        MEDIUM: (960, 540),
        LOW: (480, 270),  # from the nearest better layer, not the best
    }
    assert announced_sizes(_layers(HIGH=(426, 240)))[LOW] == (106, 60)  # kept even


def test_with_no_better_layer_known_the_next_worse_one_is_doubled_and_nothing_known_is_zero() -> None:
    assert announced_sizes(_layers(LOW=(320, 180))) == {LOW: (320, 180), MEDIUM: (640, 360), HIGH: (1280, 720)}
    assert announced_sizes(_layers(MEDIUM=(640, 360))) == {LOW: (320, 180), MEDIUM: (640, 360), HIGH: (1280, 720)}
    assert announced_sizes(_layers()) == {LOW: (0, 0), MEDIUM: (0, 0), HIGH: (0, 0)}
