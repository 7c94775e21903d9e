"""Real time for a downloaded file: each packet leaves when its media time comes due, not when it has arrived.

A file comes as fast as the network gives it; the rest of the data path is built for live sources (its queues
are bounded in time, media/flow.py), so the demux worker releases packets at the media's own pace: a 10-minute
file takes 10 minutes and starts at once.  Sans-IO: times are passed in.

- The clock is anchored on the first packet: it is due now, and a packet ``t`` seconds of media later is due
  ``t`` seconds later, less ``lead``.  For a file the lead lets packets go a little early, which absorbs a
  container whose audio and video are interleaved unevenly (a packet stored after one with a later time goes out
  right behind it instead of late) and gives the decoder its first frames at once.  The room publisher paces
  frames again on its own clock, so the lead never reaches viewers as jitter.
- A packet due more than ``max_jump`` from now, either way, means the timestamps jumped (an HLS discontinuity, a
  new MPEG-TS clock) or the download stalled that long: the clock is re-anchored on that packet, as a player does
  — the room sees a freeze, never a burst to catch up.
- **Live** (an HLS playlist without an end marker): packets arrive as the producer publishes them, a segment at a
  time, and an HLS client may reload an unchanged playlist only every half target duration (RFC 8216 §6.3.4), so
  a segment is seen up to that much after it appeared.  The clock then runs ``trim_slack`` behind the first
  packet (a negative lead) so that such a segment is not late, and any standing wait beyond the slack — e.g. from
  joining the stream in the middle of its newest segment — is taken away once per ``trim_window``: frames reach
  the room the reload delay plus the slack after their segment was published, and that does not grow.
"""

import math
from dataclasses import dataclass


@dataclass
class MediaClock:
    lead: float = 0.5
    max_jump: float = 3.0
    trim_slack: float | None = None  # live: the wait kept for arrival jitter; None (files): never trimmed
    trim_window: float = 2.0
    origin_media: float | None = None
    origin_wall: float = 0.0
    reanchors: int = 0
    trimmed: float = 0.0  # seconds of standing wait taken away (live)
    _window_start: float | None = None
    _window_min: float = math.inf

    @classmethod
    def live(cls, target_duration: float) -> "MediaClock":
        slack = target_duration / 2 + 0.1  # the reload interval, and FFmpeg's 100 ms wait steps
        return cls(lead=-slack, trim_slack=slack, trim_window=2 * target_duration)

    def due(self, media_time: float, now: float) -> float:
        """Wall time (same clock as ``now``) at which the packet at ``media_time`` (seconds) may leave."""
        if self.origin_media is None:
            self._anchor(media_time, now)
        assert self.origin_media is not None
        due = self.origin_wall + (media_time - self.origin_media) - self.lead
        if due - now > self.max_jump - self.lead or now - due > self.max_jump:
            self._anchor(media_time, now)
            self.reanchors += 1
            due = now - self.lead
        return due

    def waited(self, wait: float, now: float) -> None:
        """A packet arrived ``wait`` seconds before it was due.  Live: a wait beyond the slack that every packet
        of a window had is standing delay, and the clock moves that much earlier."""
        if self.trim_slack is None:
            return
        if self._window_start is None:
            self._window_start = now
        self._window_min = min(self._window_min, wait)
        if now - self._window_start < self.trim_window:
            return
        excess = self._window_min - self.trim_slack
        if excess > 0.05:
            self.origin_wall -= excess
            self.trimmed += excess
        self._window_start, self._window_min = now, math.inf

    def _anchor(self, media_time: float, now: float) -> None:
        self.origin_media = media_time
        self.origin_wall = now
        self._window_start, self._window_min = None, math.inf
