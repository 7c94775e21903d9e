"""Sessions side by side: a worker process per session, faults contained, queues bounded in time."""

import os
import random
import signal
import threading
import time
from collections.abc import Callable
from dataclasses import replace
from pathlib import Path

import pytest
from livekit.protocol.models import VideoCodec, VideoQuality

from pyingress.media.config import PipelineConfig
from pyingress.media.events import PipelineEnded, PipelineFailed, UpstreamKeyframeNeeded
from pyingress.media.pipeline import MediaPipeline, ProcessPipeline, ThreadPipeline, open_pipeline
from pyingress.media.presets import VideoEncoding, audio_preset, video_preset
from tests.media.media_helpers import Collector, Source, demux, make_clip, push_all

LOW, MEDIUM = VideoQuality.LOW, VideoQuality.MEDIUM
LIVE = PipelineConfig(video_preset(0), audio_preset(0))  # max_queue_delay 0.5 s, as for a live publisher


def _source(clips: Path) -> Source:
    return demux(make_clip(clips / "6s-360p.flv", size="640x360", duration=6.0))


def _feed_to_the_end(pipeline: MediaPipeline, source: Source, *, pace: bool, speed: float) -> None:
    try:
        push_all(pipeline, source, pace=pace, speed=speed)
        pipeline.end()
        assert pipeline.wait(60)
    finally:
        pipeline.close()


def _corrupt_after(source: Source, seconds: float) -> Source:
    noise = random.Random(5)
    packets = []
    for packet in source.packets:
        if packet.kind == "video" and packet.dts * packet.time_base >= seconds:
            packet = replace(packet, data=bytes(noise.getrandbits(8) for _ in range(len(packet.data))))
        packets.append(packet)
    return Source(source.streams, packets)


def _run_live(pipeline: ProcessPipeline | ThreadPipeline, source: Source, speed: float = 2.0) -> threading.Thread:
    def feed() -> None:
        push_all(pipeline, source, pace=True, speed=speed)
        pipeline.end()

    thread = threading.Thread(target=feed)
    thread.start()
    return thread


def test_a_corrupt_bitstream_ends_its_session_in_error_and_the_other_keeps_producing(clips: Path) -> None:
    source = _source(clips)
    broken, healthy = Collector(), Collector()
    bad = ProcessPipeline(LIVE, broken)
    good = ProcessPipeline(LIVE, healthy)
    feeders = [_run_live(bad, _corrupt_after(source, 2.0)), _run_live(good, source)]
    try:
        assert good.wait(30) and bad.wait(30)
        for feeder in feeders:
            feeder.join()
    finally:
        bad.close()
        good.close()
    assert broken.failure is not None and broken.failure.startswith("video decoder (h264) failed: Invalid data")
    assert bad.error == broken.failure
    assert healthy.failure is None and healthy.of(PipelineEnded)
    assert healthy.count(MEDIUM) >= 170 and healthy.count(LOW) >= 170  # see the crash test below
    failed_at = broken.time_of(PipelineFailed)
    assert sum(at > failed_at for at in healthy.arrivals[MEDIUM]) > 30  # it kept producing after the other died
    assert broken.count(MEDIUM) < 70  # nothing after the garbage started (2 s at 30 fps)


def _wait_for(condition: Callable[[], bool], timeout: float = 20.0) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        assert time.monotonic() < deadline
        time.sleep(0.01)


def test_a_crashed_worker_is_replaced_and_its_session_carries_on_in_time(clips: Path) -> None:
    source = _source(clips)
    crashed, healthy = Collector(), Collector()
    victim = ProcessPipeline(LIVE, crashed)
    good = ProcessPipeline(LIVE, healthy)
    feeders = [_run_live(victim, source), _run_live(good, source)]
    try:
        _wait_for(lambda: crashed.count(MEDIUM) >= 30)
        first_pid, before = victim.pid, crashed.count(MEDIUM)
        os.kill(first_pid, signal.SIGSEGV)  # what a native decoder bug looks like from outside
        _wait_for(lambda: crashed.count(MEDIUM) >= before + 30)  # frames again, from the new worker
        assert victim.wait(30) and good.wait(30)
        for feeder in feeders:
            feeder.join()
    finally:
        victim.close()
        good.close()
    assert crashed.failure is None and crashed.of(PipelineEnded) and victim.restarts == 1
    assert victim.pid != first_pid
    assert crashed.of(UpstreamKeyframeNeeded) == [UpstreamKeyframeNeeded(None)]  # asked of the publisher at once
    for track in (MEDIUM, LOW, "audio"):
        times = [float(frame.pts * frame.time_base) for frame in crashed.frames[track]]
        assert times == sorted(times) and len(set(times)) == len(times), track  # the room's clock never steps back
    resumed = crashed.frames[MEDIUM][before:]
    assert resumed[0].keyframe  # the new worker starts where a subscriber can
    # A loaded machine may skip a few stale frames (the live time bound); it must never stop or fail.
    assert healthy.failure is None and healthy.of(PipelineEnded) and healthy.count(MEDIUM) >= 170


def test_the_fourth_crash_in_a_minute_ends_only_its_session_with_a_clear_message(clips: Path) -> None:
    source = _source(clips)
    crashed = Collector()
    victim = ProcessPipeline(LIVE, crashed)
    feeder = _run_live(victim, source, speed=1.0)
    try:
        for crash in range(4):
            frames = crashed.count(LOW)
            _wait_for(lambda frames=frames: crashed.count(LOW) > frames)
            os.kill(victim.pid, signal.SIGKILL)
            if crash < 3:
                _wait_for(lambda crash=crash: victim.restarts == crash + 1)
        assert victim.wait(10)
        feeder.join()
    finally:
        victim.close()
    assert victim.restarts == 3
    assert crashed.failure is not None
    assert crashed.failure.startswith("media worker exited unexpectedly (killed by SIGKILL)")


def test_the_thread_pipeline_reports_a_broken_stream_the_same_way(clips: Path) -> None:
    collector = Collector()
    pipeline = ThreadPipeline(replace(LIVE, max_queue_delay=None), collector)
    try:
        push_all(pipeline, _corrupt_after(_source(clips), 1.0))
        pipeline.end()
        assert pipeline.wait(30)
    finally:
        pipeline.close()
    assert collector.failure is not None and collector.failure.startswith("video decoder (h264) failed")


def test_falling_behind_real_time_drops_to_the_next_keyframe_instead_of_building_latency(clips: Path) -> None:
    source = _source(clips)  # a keyframe every second
    collector = Collector()
    pipeline = ProcessPipeline(LIVE, collector)
    feeder = _run_live(pipeline, source, speed=1.0)
    try:
        time.sleep(1.5)
        # The worker stalls for 2.5 s (a starved CPU, a swap storm): long enough for the pipe to fill and a
        # keyframe to arrive behind stale packets.
        os.kill(pipeline.pid, signal.SIGSTOP)
        time.sleep(2.5)
        os.kill(pipeline.pid, signal.SIGCONT)
        feeder.join()
        assert pipeline.wait(30)
    finally:
        pipeline.close()
    stats = pipeline.stats
    assert collector.failure is None
    assert stats.get("keyframe_skips") >= 1 and stats.get("packets_dropped_behind") > 0
    assert collector.count(MEDIUM) <= 150  # a GOP or more was skipped, not queued up
    # once caught up, frames come out as fast as before the stall: the backlog did not stay in the pipe
    assert pipeline.latency.summary("MEDIUM", skip=collector.count(MEDIUM) - 45).p95_ms < 250


def test_first_encoded_frame_within_700_ms_of_the_first_keyframe(clips: Path) -> None:
    source = _source(clips)
    collector = Collector()
    pipeline = open_pipeline(LIVE, collector)  # created when the publisher connects, as the session does
    try:
        push_all(pipeline, Source(source.streams, source.packets[:60]), pace=True)
        deadline = time.monotonic() + 10
        while pipeline.latency.first_frame_delay is None:
            assert time.monotonic() < deadline
            time.sleep(0.01)
    finally:
        pipeline.close()
    assert pipeline.latency.first_frame_delay is not None and pipeline.latency.first_frame_delay <= 0.7


def test_an_encoder_codec_livekit_does_not_publish_fails_the_session(clips: Path) -> None:
    collector = Collector()
    config = replace(LIVE, video=VideoEncoding(VideoCodec.H264_HIGH, 30, video_preset(0).layers))
    pipeline = ProcessPipeline(config, collector)
    try:
        push_all(pipeline, Source(_source(clips).streams, []))
        assert pipeline.wait(10)
    finally:
        pipeline.close()
    assert collector.failure == "unsupported mime type for encoder"


@pytest.mark.parametrize("paced", [True, False], ids=["real-time", "burst"])
def test_push_writes_real_time_packets_itself_and_leaves_a_burst_to_the_writer(clips: Path, paced: bool) -> None:
    source = _source(clips)
    collector = Collector()
    pipeline = ProcessPipeline(PipelineConfig(video_preset(0), audio_preset(0), max_queue_delay=None), collector)
    # A burst (all at once) forms a queue that push() must not jump; in real time nothing waits.
    _feed_to_the_end(pipeline, source, pace=paced, speed=2.0)
    assert collector.failure is None
    for quality in (LOW, MEDIUM):  # nothing lost, nothing reordered, either way
        stamps = [frame.pts for frame in collector.frames[quality]]
        assert stamps == sorted(stamps) and len(set(stamps)) == len(stamps) == 180
    inline = pipeline.stats.get("packets_written_inline")
    if paced:  # the writer thread slept through (almost) every packet: the session wrote them as they came
        assert inline >= 0.8 * len(source.packets)
    else:
        assert inline < len(source.packets) // 2


@pytest.mark.parametrize("isolation", ["process", "thread"])
def test_live_latency_stays_low_without_source_b_frames(clips: Path, isolation: str) -> None:
    source = _source(clips)
    collector = Collector()
    pipeline = open_pipeline(LIVE, collector, isolation=isolation)  # type: ignore[arg-type]
    _feed_to_the_end(pipeline, source, pace=True, speed=1.5)
    assert collector.count(MEDIUM) == 180
    # 640x360 is cheap; generous bounds because the CI machine is shared (the benchmark reports the real figures)
    assert pipeline.latency.summary("MEDIUM", skip=30).p95_ms < 150
    assert pipeline.latency.summary("audio", skip=30).p95_ms < 150
