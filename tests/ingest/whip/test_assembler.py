"""Frames from RTP packets: out at once when whole, NACKs for gaps, a bounded wait, and a clean restart after loss."""

from pyingress.ingest.whip.assembler import FrameAssembler, unwrap


def video(max_wait: float = 0.1) -> FrameAssembler:
    # A payload starting with b"S" can start a frame (as an H.264 STAP-A or an FU-A start would).
    return FrameAssembler(is_start=lambda p: p[:1] == b"S", max_wait=max_wait)


def test_a_frame_leaves_with_its_last_packet() -> None:
    a = video()
    assert a.push(100, 3000, False, b"S1", 0.0) == []
    assert a.push(101, 3000, False, b"m2", 0.0) == []
    (frame,) = a.push(102, 3000, True, b"m3", 0.01)
    assert frame.payloads == (b"S1", b"m2", b"m3") and frame.arrival == 0.01 and not frame.after_loss
    (frame,) = a.push(103, 6000, True, b"S4", 0.04)
    assert frame.timestamp == 6000 and (frame.first_seq, frame.last_seq) == (103, 103)


def test_reordering_inside_a_frame_costs_nothing_but_order() -> None:
    a = video()
    a.push(1, 90, False, b"S1", 0.0)
    assert a.push(3, 90, True, b"m3", 0.0) == []
    assert a.missing() == [2]
    (frame,) = a.push(2, 90, False, b"m2", 0.001)
    assert frame.payloads == (b"S1", b"m2", b"m3")
    assert a.counters.lost == 0


def test_a_gap_is_nacked_and_a_retransmission_fills_it() -> None:
    a = video()
    a.push(10, 90, True, b"S", 0.0)
    a.push(12, 180, True, b"S", 0.01)
    assert a.nack_due(0.01) == [11]
    assert a.nack_due(0.02) == []  # not again before nack_interval
    assert a.nack_due(0.07) == [11]
    assert a.waiting  # the connection polls often while a gap is open
    frames = a.push(11, 135, True, b"S", 0.08)
    assert [f.timestamp for f in frames] == [135, 180]
    assert a.counters.recovered == 1 and a.counters.nacks == 2
    assert not a.waiting and a.nack_due(0.2) == []


def test_a_gap_nobody_fills_is_given_up_after_max_wait() -> None:
    a = video(max_wait=0.1)
    a.push(10, 90, True, b"S", 0.0)
    a.push(12, 180, False, b"m", 0.01)  # the rest of frame 180; its start (11) is lost
    a.push(13, 180, True, b"m", 0.01)
    a.push(14, 270, True, b"S", 0.02)
    assert a.poll(0.05) == []
    assert a.waiting
    (frame,) = a.poll(0.12)
    assert frame.timestamp == 270 and frame.after_loss and not a.waiting
    assert a.counters.lost == 1
    (frame,) = a.push(15, 360, True, b"S", 0.15)
    assert not frame.after_loss
    assert a.push(11, 180, False, b"S", 0.2) == [] and a.counters.late == 1


def test_a_large_keyframe_arriving_slowly_is_no_gap() -> None:
    a = video(max_wait=0.05)
    a.push(1, 90, False, b"S", 0.0)
    for seq in range(2, 40):
        assert a.push(seq, 90, False, b"m", seq * 0.01) == []
        assert a.poll(seq * 0.01) == []
    (frame,) = a.push(40, 90, True, b"m", 0.5)
    assert len(frame.payloads) == 40 and not frame.after_loss


def test_padding_takes_sequence_numbers_only() -> None:
    a = video()
    a.push(1, 90, True, b"S", 0.0)
    assert a.push(2, 90, False, b"", 0.0) == []
    assert a.push(3, 90, False, b"", 0.0) == []
    (frame,) = a.push(4, 180, True, b"S", 0.03)
    assert frame.payloads == (b"S",) and not frame.after_loss and a.counters.lost == 0


def test_sequence_numbers_and_timestamps_wrap() -> None:
    a = video()
    a.push(65535, 2**32 - 90, True, b"S", 0.0)
    (frame,) = a.push(0, 0, True, b"S", 0.03)
    assert (frame.first_seq, frame.timestamp) == (65536, 2**32)
    assert unwrap(2, 65530, 1 << 16) == 65538 and unwrap(65530, 65538, 1 << 16) == 65530


def test_audio_skips_a_gap_at_once() -> None:
    a = FrameAssembler(is_start=lambda p: True, whole_packets=True, max_wait=0.0)
    assert len(a.push(1, 960, False, b"a", 0.0)) == 1
    (frame,) = a.push(3, 2880, False, b"c", 0.02)
    assert frame.timestamp == 2880 and a.counters.lost == 1


def test_what_comes_before_a_frame_start_is_dropped() -> None:
    a = video()
    assert a.push(5, 90, True, b"m", 0.0) == []
    (frame,) = a.push(6, 180, True, b"S", 0.03)
    assert frame.first_seq == 6 and a.counters.before_start == 1


def test_the_hold_is_bounded() -> None:
    a = FrameAssembler(is_start=lambda p: p[:1] == b"S", max_wait=60.0, max_packets=16)
    a.push(1, 90, True, b"S", 0.0)
    frames = []
    for seq in range(3, 30):  # 2 never comes
        frames += a.push(seq, 90 * seq, True, b"S", 0.0)
    assert frames and frames[0].after_loss and a.held <= 16
