"""One clock per session: packet timestamps rebased to 0 in microseconds, monotonic, A/V kept together.

Publishers are sloppy with time: OBS restarts its clock after a reconnect, FLV timestamps wrap after 2^32 ms,
MPEG-TS after 2^33 ticks of 90 kHz, encoders emit a DTS that steps back by a millisecond.  None of that may end a
session or reach the room, so every packet passes through its track's ``TrackTimeline`` before decoding:

- all tracks of a session share one origin (the first DTS seen on any track), so audio that starts 200 ms after
  video is still 200 ms after it;
- a jump of the DTS by more than ``max_gap`` either way is a *discontinuity*: the track continues one frame
  after its last timestamp instead, and the session remembers the correction so that the other track, meeting
  the same jump a moment later, applies the same one (sync survives the jump);
- a backward jump by almost exactly 2^31/2^32/2^33 ticks of the packet's time base is a *wraparound*: the offset
  grows by that period, with no correction needed;
- small backward steps of the DTS are pushed forward to keep it strictly increasing (containers without a
  DTS, like Matroska, give FFmpeg's guesses); the PTS is never moved, it is what viewers see and what the
  decoder reorders by.

Source B-frames are legal here (PTS ≠ DTS order); the decoder reorders them and nothing leaves the pipeline with
B-frames because every layer is re-encoded without them.  ``reordered`` counts what was seen.
Sans-IO: no clocks, no I/O; the front door's timestamps go in, normalised integers come out.
"""

from dataclasses import dataclass
from fractions import Fraction

MICROS_PER_SECOND = 1_000_000
_WRAP_BITS = (32, 33, 31)  # FLV/RTMP ms (32), MPEG-TS 90 kHz (33), signed 32-bit clocks (31)


@dataclass
class TimelineCounters:
    discontinuities: int = 0
    wraparounds: int = 0
    non_monotonic: int = 0  # DTS steps back by less than max_gap, pushed forward
    reordered: int = 0  # PTS below an earlier PTS: the source has B-frames


@dataclass(frozen=True)
class TimelinePoint:
    pts: int  # microseconds since the session origin
    dts: int
    discontinuity: bool  # this packet was rebased (a jump or a wraparound)


@dataclass(frozen=True)
class _Rebase:
    raw_jump: int  # µs the raw clock jumped by
    correction: int  # µs added to the offset
    at: int  # normalised DTS where it happened


def to_micros(value: int, time_base: Fraction) -> int:
    return value * time_base.numerator * MICROS_PER_SECOND // time_base.denominator


class SessionTimeline:
    """The shared origin and the last correction, for all tracks of one session."""

    def __init__(self, max_gap: float = 1.0, sync_window: float = 5.0) -> None:
        self.max_gap = int(max_gap * MICROS_PER_SECOND)
        self.sync_window = int(sync_window * MICROS_PER_SECOND)
        self.offset: int | None = None  # the offset the raw clock currently needs
        self.last_rebase: _Rebase | None = None
        self.tracks: dict[str, TrackTimeline] = {}

    def track(self, name: str, default_step: float = 1 / 30) -> "TrackTimeline":
        if name not in self.tracks:
            self.tracks[name] = TrackTimeline(self, int(default_step * MICROS_PER_SECOND))
        return self.tracks[name]

    def counters(self) -> TimelineCounters:
        total = TimelineCounters()
        for track in self.tracks.values():
            total.discontinuities += track.counters.discontinuities
            total.wraparounds += track.counters.wraparounds
            total.non_monotonic += track.counters.non_monotonic
            total.reordered += track.counters.reordered
        return total


class TrackTimeline:
    def __init__(self, session: SessionTimeline, default_step: int) -> None:
        self.session = session
        self.counters = TimelineCounters()
        self._offset = 0
        self._step = default_step  # the last ordinary DTS increment, the guess for "one frame later"
        self._last_raw_dts: int | None = None
        self._last_dts = 0
        self._max_pts = 0
        self._known_rebase: _Rebase | None = None  # the session correction this track already follows

    def normalise(self, pts: int, dts: int, time_base: Fraction) -> TimelinePoint:
        raw_dts = to_micros(dts, time_base)
        raw_composition = to_micros(_unwrap_small(pts - dts), time_base)  # PTS/DTS may straddle a wrap
        session = self.session
        rebased = False
        first = self._last_raw_dts is None
        if self._last_raw_dts is None:
            if session.offset is None:
                session.offset = -raw_dts
            self._offset = session.offset
            self._known_rebase = session.last_rebase
        else:
            jump = raw_dts - self._last_raw_dts
            if abs(jump) > session.max_gap or self._follows_shared_rebase(jump):
                self._rebase(jump, time_base)
                rebased = True
            elif jump > 0:
                self._step = min(jump, 200_000)
        self._last_raw_dts = raw_dts
        out_pts = raw_dts + raw_composition + self._offset  # PTS is the truth a viewer sees: never moved
        out_dts = raw_dts + self._offset
        if not first and out_dts <= self._last_dts:
            self.counters.non_monotonic += 1
            out_dts = self._last_dts + 1
        if not first and out_pts < self._max_pts:
            self.counters.reordered += 1
        self._max_pts = out_pts if first else max(self._max_pts, out_pts)
        self._last_dts = out_dts
        return TimelinePoint(out_pts, out_dts, rebased)

    def _shared_rebase_for(self, jump: int) -> "_Rebase | None":
        """The correction another track made for a jump of about this size, near this track's position."""
        last = self.session.last_rebase
        if last is None or last is self._known_rebase:
            return None
        if abs(self._last_dts - last.at) > self.session.sync_window:
            return None
        if abs(jump - last.raw_jump) > self.session.max_gap // 2:
            return None
        return last

    def _follows_shared_rebase(self, jump: int) -> bool:
        # A jump just under max_gap here while the other track saw one just over it must still be corrected.
        return abs(jump) > 2 * self._step and self._shared_rebase_for(jump) is not None

    def _rebase(self, jump: int, time_base: Fraction) -> None:
        session = self.session
        wrap = _wrap_period(jump, time_base, session.max_gap)
        if wrap is not None:
            self.counters.wraparounds += 1
            self._offset += wrap  # exact: every track gets the same period, sync untouched
            session.offset = self._offset
            return
        self.counters.discontinuities += 1
        shared = self._shared_rebase_for(jump)
        if shared is not None:
            self._offset += shared.correction
            self._known_rebase = shared
        else:
            correction = self._step - jump  # continue one frame after the last timestamp
            self._offset += correction
            self._known_rebase = _Rebase(jump, correction, self._last_dts)
            session.last_rebase = self._known_rebase
        session.offset = self._offset


def _wrap_period(jump: int, time_base: Fraction, tolerance: int) -> int | None:
    if jump >= 0:
        return None
    for bits in _WRAP_BITS:
        period = to_micros(1 << bits, time_base)
        if abs(jump + period) <= tolerance:
            return period
    return None


def _unwrap_small(ticks: int) -> int:
    """A composition offset of about ±2^32 or ±2^33 ticks is a wrap between PTS and DTS, not a real delay."""
    if abs(ticks) < 1 << 30:
        return ticks
    candidates = [ticks + sign * (1 << bits) for bits in (32, 33) for sign in (-1, 1)]
    return min(candidates, key=abs)
