"""What the session keeps of its video while the room join runs: each layer from its latest keyframe on."""

from fractions import Fraction

from pyingress.media.packets import OutputFrame
from pyingress.publish.join_hold import JoinHold


def frame(quality: int, index: int, keyframe: bool = False, kind: str = "video") -> OutputFrame:
    return OutputFrame(
        kind=kind,
        codec="h264" if kind == "video" else "opus",
        data=bytes([index]),
        pts=index * 3000,
        time_base=Fraction(1, 90_000),
        keyframe=keyframe,
        quality=quality if kind == "video" else None,
    )


def test_each_layer_is_kept_from_its_latest_keyframe_on() -> None:
    hold = JoinHold()
    for index in range(6):
        hold.add(frame(2, index, keyframe=index in (0, 3)))
        hold.add(frame(0, index, keyframe=index == 0))
    assert [f.data[0] for f in hold.take(2)] == [3, 4, 5]
    assert [f.data[0] for f in hold.take(0)] == [0, 1, 2, 3, 4, 5]
    assert hold.take(2) == [] and hold.take(1) == []  # taken once; a layer never seen has nothing


def test_frames_before_any_keyframe_and_audio_are_not_kept() -> None:
    hold = JoinHold()
    hold.add(frame(1, 0))
    hold.add(frame(1, 1))
    hold.add(frame(0, 0, kind="audio"))
    assert hold.take(1) == []
    hold.add(frame(1, 2, keyframe=True))
    hold.add(frame(1, 3))
    assert [f.data[0] for f in hold.take(1)] == [2, 3]


def test_a_gop_longer_than_the_limit_is_given_up_until_the_next_keyframe() -> None:
    hold = JoinHold(limit=4)
    for index in range(6):
        hold.add(frame(2, index, keyframe=index == 0))
    assert hold.take(2) == []  # too long a burst: the join asks the encoder for a fresh IDR instead
    for index in range(6, 9):
        hold.add(frame(2, index, keyframe=index == 7))
    assert [f.data[0] for f in hold.take(2)] == [7, 8]
