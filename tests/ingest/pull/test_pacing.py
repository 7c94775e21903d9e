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


def test_live_runs_behind_by_the_slack_and_trims_a_standing_wait() -> None:
    clock = MediaClock.live(target_duration=1.0)  # slack 0.6 s, window 2 s
    assert clock.due(0.0, now=10.0) == 10.6
    clock.waited(0.6, now=10.6)
    # We joined in the middle of a segment: the next one arrives 0.9 s before its packets are due, every time.
    for n in range(1, 7):
        arrival = 10.0 + n - 0.3
        due = clock.due(float(n), now=arrival)
        clock.waited(due - arrival, now=due)
    assert 0.25 <= clock.trimmed <= 0.35
    arrival = 17.0 - 0.3
    assert abs(clock.due(7.0, now=arrival) - (arrival + 0.6)) < 0.06  # now just the slack after arrival


def test_a_file_is_never_trimmed() -> None:
    clock = MediaClock(lead=0.5)
    clock.due(0.0, now=0.0)
    for n in range(10):
        clock.waited(5.0, now=float(n))
    assert clock.trimmed == 0.0
