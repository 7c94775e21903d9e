"""Media workers forked from a warm zygote: fast to start, isolated like spawned ones, and never lost with it."""

import os
import signal
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from livekit.protocol.models import VideoQuality

from pyingress.media.config import PipelineConfig
from pyingress.media.events import PipelineEnded
from pyingress.media.launcher import ForkedWorker, WorkerLauncher
from pyingress.media.pipeline import ProcessPipeline
from pyingress.media.presets import audio_preset, video_preset
from tests.media.media_helpers import Collector, demux, make_clip, push_all

OFFLINE = PipelineConfig(video_preset(0), audio_preset(0), max_queue_delay=None)


def _parent(pid: int) -> int:
    stat = Path(f"/proc/{pid}/stat").read_text()
    return int(stat.rsplit(")", 1)[1].split()[1])


@pytest.fixture
def launcher() -> Iterator[WorkerLauncher]:
    launcher = WorkerLauncher()
    yield launcher
    launcher.close()


def _transcode(launcher: WorkerLauncher, clips: Path) -> tuple[ProcessPipeline, Collector, int]:
    """Two seconds of 360p through a worker from ``launcher``; also who the worker's parent was."""
    collector = Collector()
    pipeline = ProcessPipeline(OFFLINE, collector, launcher=launcher)
    parent = _parent(pipeline.pid)  # it waits for its configuration: alive
    try:
        push_all(pipeline, demux(make_clip(clips / "2s-360p.flv", size="640x360", duration=2.0)))
        pipeline.end()
        assert pipeline.wait(30)
    finally:
        pipeline.close()
    return pipeline, collector, parent


def test_workers_fork_from_one_zygote_in_milliseconds_and_transcode(launcher: WorkerLauncher, clips: Path) -> None:
    assert launcher.start()
    zygote = launcher.zygote_pid
    first = launcher.launch()  # waits for the zygote's imports
    assert isinstance(first, ForkedWorker) and _parent(first.pid) == zygote
    assert first.stdin is not None
    first.stdin.close()
    assert first.wait(10) == 0  # EOF before any configuration: a clean exit

    started = time.monotonic()
    second = launcher.launch()
    assert time.monotonic() - started < 0.1  # a spawned interpreter takes ~0.2 s before it even imports PyAV
    assert _parent(second.pid) == zygote and second.pid != first.pid
    assert second.stdin is not None
    second.stdin.close()
    second.wait(10)

    pipeline, collector, parent = _transcode(launcher, clips)
    assert parent == zygote
    assert collector.failure is None and collector.of(PipelineEnded)
    assert collector.count(VideoQuality.MEDIUM) == 60 and collector.count(VideoQuality.LOW) == 60
    cpu_ms = pipeline.stats.get("worker_cpu_ms")
    assert 0 < cpu_ms < 10_000  # the forked worker accounts for itself: nobody else can
    assert pipeline.stats.get("worker_max_rss_kb") > 10_000


def test_a_killed_worker_reports_its_signal_and_the_zygote_keeps_serving(launcher: WorkerLauncher) -> None:
    worker = launcher.launch()
    os.kill(worker.pid, signal.SIGSEGV)
    assert worker.wait(10) == -signal.SIGSEGV
    other = launcher.launch()
    other.kill()
    assert other.wait(10) == -signal.SIGKILL
    other.kill()  # after the exit: nothing to signal, no error (the pid may already be someone else's)
    assert _parent(launcher.launch().pid) == launcher.zygote_pid


def test_when_the_zygote_dies_its_workers_end_and_the_next_launch_starts_a_new_one(launcher: WorkerLauncher) -> None:
    worker = launcher.launch()
    old = launcher.zygote_pid
    assert old is not None
    os.kill(old, signal.SIGKILL)
    assert worker.wait(10) == -signal.SIGKILL  # reported, not waited on forever
    deadline = time.monotonic() + 10
    while launcher.zygote_pid == old and time.monotonic() < deadline:
        time.sleep(0.01)
    fresh = launcher.launch()
    assert launcher.zygote_pid not in (None, old) and _parent(fresh.pid) == launcher.zygote_pid
    assert fresh.stdin is not None
    fresh.stdin.close()
    assert fresh.wait(10) == 0


def test_without_forking_workers_are_spawned_and_account_for_themselves_the_same_way(clips: Path) -> None:
    spawner = WorkerLauncher(fork=False)
    assert not spawner.start()
    pipeline, collector, parent = _transcode(spawner, clips)
    assert parent == os.getpid()
    assert collector.failure is None and collector.count(VideoQuality.MEDIUM) == 60
    assert pipeline.stats.get("worker_cpu_ms") > 0


def test_close_ends_the_zygote_and_its_workers_and_a_later_launch_starts_afresh(launcher: WorkerLauncher) -> None:
    worker = launcher.launch()
    old = launcher.zygote_pid
    launcher.close()
    assert worker.wait(10) == -signal.SIGKILL and launcher.zygote_pid is None
    fresh = launcher.launch()
    assert launcher.zygote_pid not in (None, old) and _parent(fresh.pid) == launcher.zygote_pid
