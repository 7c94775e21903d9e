"""Ways for a session to receive what the pipeline produces: plain callbacks, or asyncio queues per track.

Pipelines call their sink from their own threads; ``AsyncQueueSink`` moves every frame and event onto the
session's event loop, one queue per output track ("audio", or a layer's VideoQuality) plus one for events.  Its
frame queues are bounded: a publisher that stops reading loses the oldest frames (counted), it never makes the
pipeline's threads wait.
"""

import asyncio
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Protocol

from pyingress.media.events import PipelineEvent
from pyingress.media.packets import LAYER_NAMES, OutputFrame

TrackKey = str | int  # "audio" or a VideoQuality


class PipelineSink(Protocol):
    """Where a pipeline delivers, from its own threads: every sink here is one."""

    def on_frame(self, frame: OutputFrame) -> None: ...

    def on_event(self, event: PipelineEvent) -> None: ...


def track_name(frame: OutputFrame) -> str:
    """ "audio", "video" or the layer's name (LOW, MEDIUM, HIGH): how counters and latencies name a track."""
    if frame.quality is None:
        return frame.kind
    return LAYER_NAMES[frame.quality] if frame.quality < len(LAYER_NAMES) else str(frame.quality)


def track_key(frame: OutputFrame) -> TrackKey:
    return "audio" if frame.quality is None else frame.quality


@dataclass
class CallbackSink:
    frame_callback: Callable[[OutputFrame], None]
    event_callback: Callable[[PipelineEvent], None] = field(default=lambda event: None)

    def on_frame(self, frame: OutputFrame) -> None:
        self.frame_callback(frame)

    def on_event(self, event: PipelineEvent) -> None:
        self.event_callback(event)


class AsyncQueueSink:
    """Frames and events delivered into asyncio queues on ``loop`` (thread-safe to call from any thread)."""

    def __init__(self, loop: asyncio.AbstractEventLoop, max_frames: int = 90) -> None:
        self.loop = loop
        self.max_frames = max_frames  # ~3 s of video at 30 fps per track
        self.events: asyncio.Queue[PipelineEvent] = asyncio.Queue()
        self._tracks: dict[TrackKey, asyncio.Queue[OutputFrame]] = {}
        self.dropped = 0

    def track(self, key: TrackKey) -> asyncio.Queue[OutputFrame]:
        """The queue of one output track; call on the loop."""
        queue = self._tracks.get(key)
        if queue is None:
            queue = self._tracks[key] = asyncio.Queue(self.max_frames)
        return queue

    def on_frame(self, frame: OutputFrame) -> None:
        self.loop.call_soon_threadsafe(self._put_frame, frame)

    def on_event(self, event: PipelineEvent) -> None:
        self.loop.call_soon_threadsafe(self.events.put_nowait, event)

    def _put_frame(self, frame: OutputFrame) -> None:
        queue = self.track(track_key(frame))
        if queue.full():
            queue.get_nowait()
            self.dropped += 1
        queue.put_nowait(frame)
