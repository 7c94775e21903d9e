"""What a session needs to outlive a crashed media worker: a bound on restarts, and a clock that keeps going.

A worker that dies (a native decoder bug, the OOM killer, an operator's SIGKILL) is replaced from the zygote in
milliseconds; the room participant and its tracks stay, subscribers see a short freeze.  Two things make that safe:

- ``RestartBudget``: at most ``limit`` restarts in any ``window`` seconds, so a stream that crashes every decoder it
  meets ends in ERROR instead of looping;
- ``OutputClock``: a new worker starts its timeline at 0, but the room must see time go on.  Its frames are shifted
  to follow the last frame delivered plus the wall time the restart took, the same shift for every track so audio
  and video stay together, and RTP timestamps never step back.
"""

import collections
import time
from collections.abc import Callable
from dataclasses import replace

from pyingress.media.packets import OutputFrame


class RestartBudget:
    """At most ``limit`` restarts in any ``window`` seconds."""

    def __init__(self, limit: int = 3, window: float = 60.0, clock: Callable[[], float] = time.monotonic) -> None:
        self.limit = limit
        self.window = window
        self._clock = clock
        self._restarts: collections.deque[float] = collections.deque()

    def allow(self) -> bool:
        """True, and counted, when one more restart fits the budget now."""
        now = self._clock()
        while self._restarts and now - self._restarts[0] >= self.window:
            self._restarts.popleft()
        if len(self._restarts) >= self.limit:
            return False
        self._restarts.append(now)
        return True


class OutputClock:
    """The session's output timeline across worker restarts (seconds, from frames' own time bases)."""

    def __init__(self, clock_ns: Callable[[], int] = time.monotonic_ns) -> None:
        self._clock_ns = clock_ns
        self._end = 0.0  # the end of the latest frame delivered, in session seconds
        self._end_at_ns = 0  # when it was delivered
        self._shift = 0.0  # added to the current worker's frames

    def restarted(self) -> None:
        """A new worker, whose frames start again near 0: they continue from where the room is now."""
        waited = (self._clock_ns() - self._end_at_ns) / 1e9 if self._end_at_ns else 0.0
        self._shift = self._end + max(0.0, waited)

    def deliver(self, frame: OutputFrame) -> OutputFrame:
        """``frame`` on the session's timeline (unchanged until the first restart)."""
        if self._shift:
            frame = replace(frame, pts=frame.pts + round(self._shift / frame.time_base))
        end = float((frame.pts + frame.duration) * frame.time_base)
        if end > self._end:
            self._end = end
            self._end_at_ns = self._clock_ns()
        return frame
