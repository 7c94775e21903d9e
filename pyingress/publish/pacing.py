"""Real-time pacing of encoded frames against one session clock, without IO (time is passed in).

Frames reach the publisher as the pipeline produces them, which is bursty (encoder threads, a GOP delivered at
once by an RTMP server).  Each frame is sent when its media time comes due on a clock shared by all tracks, so
audio and video keep their relation and the SFU sees a steady stream.  A frame more than ``max_late`` behind the
clock (100 ms, issue 6) is dropped and counted; a video stream that dropped a frame waits for its next keyframe
(a delta frame after a gap would decode as garbage) and asks for one.  If a stream keeps being late for
``resync_after`` seconds, the source is behind as a whole (a stall, not jitter) and the clock is re-anchored on
the next frame that can be sent, adding that latency once instead of dropping forever.  A frame due more than
``max_lead`` ahead means the timestamps jumped: the clock is re-anchored too.

The anchor is the first frame's arrival, so if that frame came late relative to the ones after it (encoder start,
a GOP burst from the source), every later frame would wait that much: a standing delay.  When every frame of a
``trim_window`` waited at least ``trim_threshold`` between arriving and going out, the clock is moved earlier by
that wait (at most ``max_trim`` per window).  The wait is measured from the frame's *arrival*, not from when the
send loop looks at it: frames queued behind a sleeping one are looked at just in time and would hide the delay.

Audio late by its muxing moves the clock rather than being dropped: an MPEG-TS muxer may hold audio until a PES is
full (FFmpeg's ~170 ms of AAC), so each PES's first frame comes that late.  Video then waits with the audio of its
instant, which is what keeps lip sync at a LiveKit viewer (it plays each track as it arrives unless the room syncs
streams), exactly as when that audio anchored the clock in the first place.
"""

from collections.abc import Hashable
from dataclasses import dataclass, field
from enum import Enum

AUDIO = "audio"  # the audio stream's key (the room publisher's): late by its muxing, it moves the clock


class Action(Enum):
    SEND = "send"  # send now or after ``delay``
    DROP = "drop"


@dataclass(frozen=True)
class Decision:
    action: Action
    delay: float = 0.0  # seconds to wait before sending (SEND only)
    late: bool = False  # dropped for lateness (vs. waiting for a keyframe)
    request_keyframe: bool = False  # this stream just started waiting for a keyframe: ask the encoder for one
    resynced: bool = False  # the clock was re-anchored on this frame


@dataclass
class StreamState:
    waiting_for_keyframe: bool = False
    late_since: float | None = None


@dataclass
class PacerStats:
    sent: int = 0
    dropped_late: int = 0
    dropped_waiting_keyframe: int = 0
    resyncs: int = 0
    trimmed: float = 0.0  # seconds of standing delay removed


@dataclass
class SessionClock:
    """Media time (seconds) → wall time (seconds, monotonic), anchored on the first frame of the session."""

    origin_media: float | None = None
    origin_wall: float = 0.0

    @property
    def anchored(self) -> bool:
        return self.origin_media is not None

    def anchor(self, media_time: float, now: float) -> None:
        self.origin_media = media_time
        self.origin_wall = now

    def due(self, media_time: float) -> float:
        assert self.origin_media is not None
        return self.origin_wall + (media_time - self.origin_media)


@dataclass
class FramePacer:
    """Decides, per frame, whether to send it (and after how long) or drop it.  One instance per session."""

    max_late: float = 0.1
    # Audio later than max_late but within this moves the clock instead of being dropped: an MPEG-TS muxer may send
    # a PES of audio at once when it is full (FFmpeg: 2930 B ≈ 170 ms of AAC, or half its 0.7 s -muxdelay).
    max_late_audio: float = 0.4
    resync_after: float = 0.5
    max_lead: float = 5.0
    trim_window: float = 1.0
    trim_threshold: float = 0.02
    max_trim: float = 0.5
    clock: SessionClock = field(default_factory=SessionClock)
    stats: PacerStats = field(default_factory=PacerStats)
    _streams: dict[Hashable, StreamState] = field(default_factory=dict)
    _window_start: float | None = None
    _window_min_lead: float = float("inf")

    def stream(self, key: Hashable) -> StreamState:
        state = self._streams.get(key)
        if state is None:
            state = self._streams[key] = StreamState()
        return state

    def wait_for_keyframe(self, key: Hashable) -> None:
        """Hold ``key`` back until its next keyframe (a resumed layer, a new peer connection)."""
        self.stream(key).waiting_for_keyframe = True

    def decide(
        self, key: Hashable, media_time: float, keyframe: bool, now: float, arrived: float | None = None
    ) -> Decision:
        """What to do with a frame of stream ``key`` (audio frames pass ``keyframe=True``).

        ``arrived``: when the frame reached the publisher (default ``now``).  Lateness is the frame's on arrival:
        a frame that came in time and then waited behind others here (a backlog the trim has just made due, a busy
        event loop) is sent at once, not dropped; dropping it would be the clock correcting its own wait.
        """
        state = self.stream(key)
        resynced = False
        moved_for_audio = False
        reached = now if arrived is None else min(arrived, now)
        if not self.clock.anchored:
            self.clock.anchor(media_time, reached)
            self._window_start = now
        lateness = reached - self.clock.due(media_time)
        if lateness < -self.max_lead:
            self.clock.anchor(media_time, reached)
            self.stats.resyncs += 1
            lateness, resynced = 0.0, True
        sendable = keyframe or not state.waiting_for_keyframe
        if key == AUDIO and self.max_late < lateness <= self.max_late_audio:
            # Audio late by its muxing (a whole PES at once) on a clock a picture anchored: move the clock to it,
            # so video waits with it (lip sync, as when the audio anchored the clock) instead of dropping it.
            self.clock.anchor(media_time, reached)
            self.stats.resyncs += 1
            lateness, resynced, moved_for_audio = 0.0, True, True
        if lateness > self.max_late:
            if sendable and state.late_since is not None and now - state.late_since >= self.resync_after:
                self.clock.anchor(media_time, reached)
                self.stats.resyncs += 1
                lateness, resynced = 0.0, True
            else:
                if state.late_since is None:
                    state.late_since = now
                request = not state.waiting_for_keyframe or keyframe
                state.waiting_for_keyframe = True
                self.stats.dropped_late += 1
                return Decision(Action.DROP, late=True, request_keyframe=request)
        if not sendable:
            self.stats.dropped_waiting_keyframe += 1
            return Decision(Action.DROP)
        state.late_since = None
        state.waiting_for_keyframe = False
        self.stats.sent += 1
        delay = max(0.0, self.clock.due(media_time) - now)
        waited = delay + max(0.0, now - arrived) if arrived is not None else delay
        # A move for late audio does not restart the trim's window: sources whose audio comes late at every PES
        # would never complete one, and a move made once (an encoder's late start) would stay a standing delay.
        self._trim(waited, now, reset=resynced and not moved_for_audio)
        return Decision(Action.SEND, delay=delay, resynced=resynced)

    def _trim(self, lead: float, now: float, reset: bool) -> None:
        if reset or self._window_start is None:
            self._window_start, self._window_min_lead = now, float("inf")
            return
        self._window_min_lead = min(self._window_min_lead, lead)
        if now - self._window_start < self.trim_window:
            return
        if self._window_min_lead > self.trim_threshold:
            shift = min(self._window_min_lead - self.trim_threshold / 2, self.max_trim)
            self.clock.origin_wall -= shift
            self.stats.trimmed += shift
        self._window_start, self._window_min_lead = now, float("inf")
