"""The media clock of a pulled file: due times follow media time, with a lead; jumps and stalls re-anchor it."""

from pyingress.ingest.pull.pacing import MediaClock


def test_packets_are_due_at_their_media_time_less_the_lead() -> None:
    clock = MediaClock(lead=0.5)
    assert clock.due(10.0, now=100.0) == 99.5  # the first packet goes at once
    assert clock.due(10.5, now=100.0) == 100.0
    assert clock.due(13.0, now=101.0) == 102.5


def test_a_packet_stored_behind_a_later_one_is_due_at_once_not_a_jump() -> None:
    clock = MediaClock(lead=0.5, max_jump=3.0)
    clock.due(0.0, now=0.0)
    assert clock.due(2.0, now=1.5) == 1.5  # audio stored ahead of video
    assert clock.due(1.2, now=1.5) == 0.7  # the video behind it: already due, sent right after
    assert clock.reanchors == 0


def test_a_timestamp_jump_or_a_long_stall_re_anchors_on_the_packet() -> None:
    clock = MediaClock(lead=0.5, max_jump=3.0)
    clock.due(0.0, now=0.0)
    assert clock.due(100.0, now=1.0) == 0.5  # jumped forward by 99 s: due now (less the lead)
    assert clock.due(101.0, now=1.0) == 1.5
    assert clock.due(5.0, now=2.0) == 1.5  # back to a smaller clock: anchored again
    assert clock.due(6.0, now=12.0) == 11.5  # a 9 s stall: played on from here, no burst to catch up
    assert clock.reanchors == 3
