"""Frames and events handed from pipeline threads to an asyncio loop, one bounded queue per track."""

import asyncio
import threading
from fractions import Fraction

from pyingress.media.events import PipelineEnded
from pyingress.media.packets import OutputFrame
from pyingress.media.sinks import AsyncQueueSink, CallbackSink


async def test_frames_reach_per_track_queues_from_another_thread() -> None:
    sink = AsyncQueueSink(asyncio.get_running_loop(), max_frames=3)
    video = [OutputFrame("video", "h264", bytes([i]), i, Fraction(1, 90000), quality=2) for i in range(5)]
    audio = OutputFrame("audio", "opus", b"a", 0, Fraction(1, 48000))

    def produce() -> None:
        for frame in [*video, audio]:
            sink.on_frame(frame)
        sink.on_event(PipelineEnded())

    thread = threading.Thread(target=produce)
    thread.start()
    assert await asyncio.wait_for(sink.events.get(), 5) == PipelineEnded()
    thread.join()
    high = sink.track(2)
    assert [high.get_nowait().pts for _ in range(high.qsize())] == [2, 3, 4]  # the oldest two were dropped
    assert sink.dropped == 2
    assert sink.track("audio").get_nowait() == audio


def test_callback_sink_defaults_to_ignoring_events() -> None:
    seen: list[OutputFrame] = []
    sink = CallbackSink(seen.append)
    frame = OutputFrame("audio", "opus", b"a", 0, Fraction(1, 48000))
    sink.on_frame(frame)
    sink.on_event(PipelineEnded())
    assert seen == [frame]
