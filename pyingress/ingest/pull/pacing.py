"""Real time for a downloaded file: each packet leaves when its media time comes due, not when it has arrived.

A file comes as fast as the network gives it; the rest of the data path is built for live sources (its queues
are bounded in time, media/flow.py), so the demux worker releases packets at the media's own pace: a 10-minute
file takes 10 minutes and starts at once.  Sans-IO: times are passed in.

- The clock is anchored on the first packet: it is due now, and a packet ``t`` seconds of media later is due
  ``t`` seconds later, less ``lead``.  The lead lets packets go a little early, which absorbs a container whose
  audio and video are interleaved unevenly (a packet stored after one with a later time goes out right behind
  it instead of late) and gives the decoder its first frames at once.  The room publisher paces frames again on
  its own clock, so the lead never reaches viewers as jitter.
- A packet due more than ``max_jump`` from now, either way, means the timestamps jumped (an HLS discontinuity, a
  new MPEG-TS clock) or the download stalled that long: the clock is re-anchored on that packet, as a player does
  — the room sees a freeze, never a burst to catch up.
"""

from dataclasses import dataclass


@dataclass
class MediaClock:
    lead: float = 0.5
    max_jump: float = 3.0
    origin_media: float | None = None
    origin_wall: float = 0.0
    reanchors: int = 0

    def due(self, media_time: float, now: float) -> float:
        """Wall time (same clock as ``now``) at which the packet at ``media_time`` (seconds) may leave."""
        if self.origin_media is None:
            self._anchor(media_time, now)
        assert self.origin_media is not None
        due = self.origin_wall + (media_time - self.origin_media) - self.lead
        if due - now > self.max_jump or now - due > self.max_jump:
            self._anchor(media_time, now)
            self.reanchors += 1
            due = now - self.lead
        return due

    def _anchor(self, media_time: float, now: float) -> None:
        self.origin_media = media_time
        self.origin_wall = now
