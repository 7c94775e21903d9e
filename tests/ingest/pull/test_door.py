"""The pull door in the service: a worker per URL ingress feeding a MediaSource, and how each way of ending reads —
the end of the media, a failure in the worker's words, the worker killed or frozen, the session closing it."""

import asyncio
import os
import signal
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from livekit.protocol.ingress import IngressInfo, IngressInput

from pyingress.ingest.pull.door import PullSettings, UrlPullDoor
from pyingress.ingest.pull.http import FetchOptions
from pyingress.ingest.source import EndReason, MediaSource
from pyingress.media.launcher import WorkerLauncher
from pyingress.media.packets import EncodedPacket, StreamDescription
from tests.harness.media_server import MediaServer
from tests.harness.pull_media import make_file


@pytest.fixture(scope="module")
def root(tmp_path_factory: pytest.TempPathFactory) -> Path:
    directory = tmp_path_factory.mktemp("pull-door")
    make_file(directory, "clip.ts", duration=3, size="320x180")
    return directory


@pytest.fixture(scope="module")
def server(root: Path) -> Iterator[MediaServer]:
    with MediaServer(root) as running:
        yield running


@pytest.fixture(scope="module")
def launcher() -> Iterator[WorkerLauncher]:
    launching = WorkerLauncher()
    yield launching
    launching.close()


def door(launcher: WorkerLauncher, margin: float = 10.0) -> UrlPullDoor:
    fetch = FetchOptions(open_timeout=1.0, read_timeout=1.0)
    return UrlPullDoor(PullSettings(fetch=fetch, silence_margin=margin), launcher)


def info(url: str) -> IngressInfo:
    return IngressInfo(ingress_id="IN_test", input_type=IngressInput.URL_INPUT, url=url, room_name="r")


async def drain(source: MediaSource, timeout: float = 20) -> list[object]:
    items: list[object] = []
    async with asyncio.timeout(timeout):
        async for item in source:
            items.append(item)
    return items


async def test_a_file_feeds_the_source_and_ends_complete(launcher: WorkerLauncher, server: MediaServer) -> None:
    pulling = door(launcher)
    source = pulling.open(info(server.file_url("clip.ts")), "UR_test1")
    assert source.resource_id == "UR_test1" and source.protocol == "url"
    items = await drain(source)
    assert [i.kind for i in items if isinstance(i, StreamDescription)] == ["video", "audio"]
    assert sum(isinstance(i, EncodedPacket) and i.kind == "video" for i in items) == 90
    assert source.end_reason == EndReason.COMPLETE and source.error is None
    assert 2.9 <= source.metadata["position_seconds"] <= 3.05 and source.metadata["duration_seconds"] >= 3.0
    await asyncio.sleep(0.1)
    assert pulling.feeds == {}


async def test_a_failure_ends_the_source_in_the_workers_words(launcher: WorkerLauncher, server: MediaServer) -> None:
    source = door(launcher).open(info(server.url("status/404")), "UR_test2")
    assert await drain(source) == []
    assert source.end_reason == EndReason.ERROR
    assert source.error == f"HTTP 404 Not Found from {server.url('status/404')}"


async def test_a_killed_worker_ends_only_its_source(launcher: WorkerLauncher, server: MediaServer) -> None:
    pulling = door(launcher)
    killed = pulling.open(info(server.file_url("clip.ts")), "UR_killed")
    other = pulling.open(info(server.file_url("clip.ts")), "UR_other")
    others = asyncio.create_task(drain(other))
    async for item in killed:
        if isinstance(item, EncodedPacket):
            break
    process = pulling.feeds["UR_killed"].process
    assert process is not None
    os.kill(process.pid, signal.SIGKILL)
    await drain(killed)
    assert killed.end_reason == EndReason.ERROR
    assert killed.error == "URL pull worker exited unexpectedly (killed by SIGKILL)"
    await others
    assert other.end_reason == EndReason.COMPLETE


async def test_a_frozen_worker_is_killed_after_its_silence(launcher: WorkerLauncher, server: MediaServer) -> None:
    pulling = door(launcher, margin=0.5)  # silent for 1 + 1 + 0.5 s
    source = pulling.open(info(server.file_url("clip.ts")), "UR_frozen")
    async for item in source:
        if isinstance(item, EncodedPacket):
            break
    process = pulling.feeds["UR_frozen"].process
    assert process is not None
    os.kill(process.pid, signal.SIGSTOP)
    began = time.monotonic()
    await drain(source)
    assert source.end_reason == EndReason.ERROR
    assert source.error == f"URL pull worker for {server.file_url('clip.ts')} stopped responding (2.5 s)"
    assert 2.0 <= time.monotonic() - began <= 5.0
    assert process.wait(timeout=5) == -signal.SIGKILL


async def test_closing_the_source_kills_the_worker(launcher: WorkerLauncher, server: MediaServer) -> None:
    pulling = door(launcher)
    source = pulling.open(info(server.file_url("clip.ts")), "UR_closed")
    async for item in source:
        if isinstance(item, EncodedPacket):
            break
    feed = pulling.feeds["UR_closed"]
    process = feed.process
    assert process is not None
    source.close("ingress deleted")
    assert await asyncio.to_thread(process.wait, 5) == -signal.SIGKILL
    assert source.end_reason == EndReason.CLOSED
    assert feed.task is not None
    await asyncio.wait_for(feed.task, 5)
