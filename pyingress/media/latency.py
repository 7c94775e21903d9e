"""Added latency per output track, packet in → encoded frame out, and the time to the first frame.

Measured where the session sees it: the packet's arrival is stamped when the front door pushes it, the frame's
when the pipeline hands it over (after the worker pipe), with the system-wide monotonic clock, so the figure
includes queueing, decoding, scaling, encoding and both pipe hops.
"""

import collections
import threading
from collections.abc import Callable
from dataclasses import dataclass


@dataclass(frozen=True)
class LatencySummary:
    count: int
    p50_ms: float
    p95_ms: float
    max_ms: float


def percentile(sorted_values: list[float], fraction: float) -> float:
    if not sorted_values:
        return 0.0
    index = min(len(sorted_values) - 1, max(0, round(fraction * (len(sorted_values) - 1))))
    return sorted_values[index]


class LatencyRecorder:
    """The last ``keep`` samples per track ("audio", "LOW", "MEDIUM", "HIGH"); thread-safe."""

    def __init__(self, keep: int = 20_000) -> None:
        self._samples: dict[str, collections.deque[float]] = {}
        self._keep = keep
        self._lock = threading.Lock()
        self.first_keyframe_in_ns: int | None = None
        self.first_video_out_ns: int | None = None
        self.first_audio_out_ns: int | None = None
        self._observers: list[Callable[[str, float], None]] = []

    def observe(self, observer: Callable[[str, float], None]) -> None:
        """Call ``observer(track, seconds)`` for every sample from now on (from the pipeline's threads)."""
        self._observers.append(observer)

    def packet_in(self, kind: str, keyframe: bool, now_ns: int) -> None:
        if kind == "video" and keyframe and self.first_keyframe_in_ns is None:
            self.first_keyframe_in_ns = now_ns

    def frame_out(self, track: str, arrival_ns: int, now_ns: int) -> None:
        with self._lock:
            samples = self._samples.get(track)
            if samples is None:
                samples = self._samples[track] = collections.deque(maxlen=self._keep)
            samples.append((now_ns - arrival_ns) / 1e6)
        for observer in self._observers:
            observer(track, (now_ns - arrival_ns) / 1e9)
        if track == "audio":
            if self.first_audio_out_ns is None:
                self.first_audio_out_ns = now_ns
        elif self.first_video_out_ns is None:
            self.first_video_out_ns = now_ns

    def samples(self, track: str) -> list[float]:
        with self._lock:
            return list(self._samples.get(track, ()))

    def summary(self, track: str, skip: int = 0) -> LatencySummary:
        """Percentiles in ms; ``skip`` leaves out the first samples (start-up backlog)."""
        values = sorted(self.samples(track)[skip:])
        if not values:
            return LatencySummary(0, 0.0, 0.0, 0.0)
        return LatencySummary(len(values), percentile(values, 0.5), percentile(values, 0.95), values[-1])

    def tracks(self) -> list[str]:
        with self._lock:
            return sorted(self._samples)

    @property
    def first_frame_delay(self) -> float | None:
        """Seconds from the publisher's first video keyframe arriving to the first encoded video frame out."""
        if self.first_keyframe_in_ns is None or self.first_video_out_ns is None:
            return None
        return (self.first_video_out_ns - self.first_keyframe_in_ns) / 1e9
