"""The GOP hold of unwatched video: what is held, what must be decoded at once, what a resume gets."""

from pyingress.media.idle import GopHold, HeldPacket


def _packet(n: int) -> HeldPacket:
    return HeldPacket(bytes([n]), n, n, None, n)


def test_nothing_is_held_before_a_keyframe_opens_a_gop() -> None:
    hold = GopHold()
    assert hold.offer(_packet(1), keyframe=False) == [_packet(1)]  # the decoder runs on; nothing to hold
    assert not hold.holding and hold.held_total == 0


def test_a_keyframe_starts_a_fresh_gop_and_release_gives_it_back_in_order() -> None:
    hold = GopHold()
    assert hold.offer(_packet(1), keyframe=True) is None
    assert hold.offer(_packet(2), keyframe=False) is None
    assert hold.offer(_packet(3), keyframe=True) is None  # the previous GOP is of no use any more
    assert hold.offer(_packet(4), keyframe=False) is None
    assert hold.release() == [_packet(3), _packet(4)]
    assert not hold.holding and hold.release() == []
    assert hold.held_total == 4


def test_a_gop_longer_than_the_hold_is_handed_back_to_decode_and_not_held_again_until_a_keyframe() -> None:
    hold = GopHold(max_packets=3)
    for n in range(3):
        assert hold.offer(_packet(n), keyframe=n == 0) is None
    assert hold.offer(_packet(3), keyframe=False) == [_packet(0), _packet(1), _packet(2), _packet(3)]
    assert hold.overflows == 1 and not hold.holding
    assert hold.offer(_packet(4), keyframe=False) == [_packet(4)]
    assert hold.offer(_packet(5), keyframe=True) is None and hold.holding
