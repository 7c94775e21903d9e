"""Timestamps normalised per session: rebased, monotonic, jumps and wraparounds absorbed, A/V kept together."""

import itertools
from fractions import Fraction

from hypothesis import given, settings
from hypothesis import strategies as st

from pyingress.media.timeline import SessionTimeline, TrackTimeline

MS = Fraction(1, 1000)
TS = Fraction(1, 90000)


def _feed(track: TrackTimeline, stamps: list[int], time_base: Fraction = MS) -> list[int]:
    return [track.normalise(stamp, stamp, time_base).dts for stamp in stamps]


def _interleave(video_ms: list[int], audio_ms: list[int]) -> list[tuple[str, int]]:
    return sorted([("video", t) for t in video_ms] + [("audio", t) for t in audio_ms], key=lambda item: item[1])


def _run(session: SessionTimeline, packets: list[tuple[str, int]], time_base: Fraction = MS) -> dict[str, list[int]]:
    out: dict[str, list[int]] = {"video": [], "audio": []}
    for kind, stamp in packets:
        track = session.track(kind, 1 / 30 if kind == "video" else 0.021)
        out[kind].append(track.normalise(stamp, stamp, time_base).dts)
    return out


def _video(start: int, count: int) -> list[int]:
    return [start + round(i * 1000 / 30) for i in range(count)]


def _audio(start: int, count: int) -> list[int]:
    return [start + round(i * 1024 * 1000 / 48000) for i in range(count)]


def test_first_timestamp_of_the_session_becomes_zero_and_tracks_keep_their_offsets() -> None:
    session = SessionTimeline()
    out = _run(session, _interleave(_video(5000, 30), _audio(5200, 40)))
    assert out["video"][0] == 0
    assert out["audio"][0] == 200_000  # audio started 200 ms after video and still does
    assert out["video"][-1] == 967_000  # 29 frames at 30 fps, in whole ms as FLV carries them


def _assert_continuous(values: list[int], max_step: int) -> None:
    steps = [b - a for a, b in itertools.pairwise(values)]
    assert min(steps) > 0
    assert max(steps) <= max_step, max(steps)


def _sync_error(out: dict[str, list[int]], video_ms: list[int], audio_ms: list[int]) -> float:
    """After the jump, the distance between the last video and last audio timestamp must stay as in the source."""
    source = audio_ms[-1] - video_ms[-1]
    return abs((out["audio"][-1] - out["video"][-1]) / 1000 - source)


def test_forward_and_backward_jumps_of_ten_seconds_keep_output_continuous_and_in_sync() -> None:
    for jump in (10_000, -10_000):
        video = _video(0, 90) + _video(3000 + jump, 90)
        audio = _audio(0, 141) + _audio(3008 + jump, 141)
        session = SessionTimeline()
        out = _run(session, _interleave(video, audio))
        _assert_continuous(out["video"], 45_000)
        _assert_continuous(out["audio"], 45_000)
        # shifted source timestamps after the jump keep their A/V distance (here 8 ms) up to one frame
        assert _sync_error(out, [t - jump for t in video[90:]], [t - jump for t in audio[141:]]) <= 34
        counters = session.counters()
        assert counters.discontinuities == 2 and counters.wraparounds == 0


def test_rtmp_32_bit_millisecond_wraparound_is_exact() -> None:
    start = (1 << 32) - 1500
    session = SessionTimeline()
    # interleave by the unwrapped time, as a muxer would, then send the wrapped values
    order = _interleave(_video(start, 120), _audio(start + 5, 190))
    out = _run(session, [(kind, stamp % (1 << 32)) for kind, stamp in order])
    assert out["video"] == [round(i * 1000 / 30) * 1000 for i in range(120)]
    assert out["audio"][0] == 5000 and out["audio"][-1] == round(189 * 1024 * 1000 / 48000) * 1000 + 5000
    assert session.counters().wraparounds == 2 and session.counters().discontinuities == 0


def test_mpegts_33_bit_wraparound_at_90khz() -> None:
    track = SessionTimeline().track("video")
    stamps = [((1 << 33) - 6000 + i * 3000) % (1 << 33) for i in range(10)]
    out = _feed(track, stamps, TS)
    expected = [i * 3000 * 1_000_000 / 90000 for i in range(10)]
    assert all(abs(got - want) < 2 for got, want in zip(out, expected, strict=True))
    assert track.counters.wraparounds == 1


def test_small_backward_steps_are_pushed_forward_and_counted() -> None:
    track = SessionTimeline().track("audio")
    out = _feed(track, [0, 20, 40, 39, 60, 80])
    assert out == [0, 20_000, 40_000, 40_001, 60_000, 80_000]
    assert track.counters.non_monotonic == 1 and track.counters.discontinuities == 0


def test_b_frames_keep_pts_order_for_the_decoder_and_are_counted() -> None:
    track = SessionTimeline().track("video")
    # decode order I P B B with DTS 0,33,66,100 and PTS 66,166,100,133 (ms)
    points = [track.normalise(p, d, MS) for p, d in [(66, 0), (166, 33), (100, 66), (133, 100)]]
    assert [point.pts for point in points] == [66_000, 166_000, 100_000, 133_000]
    assert all(point.pts >= point.dts for point in points)
    assert track.counters.reordered == 2


def test_a_composition_offset_across_the_wrap_stays_small() -> None:
    track = SessionTimeline().track("video")
    dts = (1 << 32) - 10
    point = track.normalise(20, dts, MS)  # PTS already wrapped, DTS not yet: composition 30 ms
    assert point.pts - point.dts == 30_000


@settings(max_examples=300, deadline=None)
@given(
    st.lists(
        st.tuples(st.sampled_from(["audio", "video"]), st.integers(min_value=-(1 << 34), max_value=1 << 34)),
        min_size=1,
        max_size=60,
    ),
    st.sampled_from([MS, TS, Fraction(1, 48000)]),
)
def test_any_input_gives_strictly_increasing_dts_and_keeps_the_composition_offset(
    packets: list[tuple[str, int]], time_base: Fraction
) -> None:
    session = SessionTimeline()
    last: dict[str, int] = {}
    for kind, stamp in packets:
        point = session.track(kind).normalise(stamp + 7, stamp, time_base)
        assert point.dts > last.get(kind, -(1 << 62))
        last[kind] = point.dts
        assert point.pts - point.dts <= 7 * time_base * 1_000_000 + 1  # a pushed-forward DTS only narrows it


def test_a_guessed_dts_going_back_moves_only_the_dts() -> None:
    # Matroska has no DTS; FFmpeg's guesses can step back around B-frames.  PTS must stay exact.
    track = SessionTimeline().track("video")
    points = [track.normalise(p, d, MS) for p, d in [(23, 23), (156, 156), (90, 23), (56, 56), (123, 90)]]
    assert [point.pts for point in points] == [0, 133_000, 67_000, 33_000, 100_000]
    assert [point.dts for point in points] == [0, 133_000, 133_001, 133_002, 133_003]
