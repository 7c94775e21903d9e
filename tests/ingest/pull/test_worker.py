"""The demux worker as a process (forked from the media zygote, or spawned): what it says on its pipe for a real
file over HTTP, in real time, and for a URL that fails."""

import os
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

import pytest

from pyingress.ingest.pull.http import FetchOptions
from pyingress.ingest.pull.worker import PullRequest
from pyingress.media.events import PipelineFailed, SpliceReached, StatsUpdated
from pyingress.media.launcher import WorkerLauncher, WorkerProcess
from pyingress.media.packets import EncodedPacket, StreamDescription
from pyingress.media.wire import EndOfStream, EventMessage, MessageReader, PacketMessage, StreamMessage
from tests.harness.media_server import MediaServer
from tests.harness.pull_media import make_file, make_hls_vod
from tests.harness.scte35_ts import add_break


@pytest.fixture(scope="module")
def root(tmp_path_factory: pytest.TempPathFactory) -> Path:
    directory = tmp_path_factory.mktemp("pull-worker")
    make_file(directory, "clip.ts", duration=3, size="320x180")
    make_hls_vod(directory, directory / "clip.ts")
    add_break(directory / "clip.ts", directory / "break.ts", 4242, out_at=1.0, back_at=2.0, notice=0.7)
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


@dataclass
class Heard:
    streams: list[StreamDescription] = field(default_factory=list)
    packets: list[tuple[float, EncodedPacket]] = field(default_factory=list)  # (arrival, packet)
    stats: list[dict[str, int]] = field(default_factory=list)
    splices: list[tuple[float, SpliceReached]] = field(default_factory=list)  # (arrival, event)
    failure: str | None = None
    ended: bool = False
    exit_code: int | None = None


def start(launcher: WorkerLauncher, url: str, **fetch: float) -> WorkerProcess:
    worker = launcher.launch("pull")
    assert worker.stdin is not None
    options = FetchOptions(**{"open_timeout": 3.0, "read_timeout": 2.0, **fetch})  # type: ignore[arg-type]
    worker.stdin.write(PullRequest(url, options).to_json())
    worker.stdin.flush()
    return worker


def listen(worker: WorkerProcess, stop_after_packets: int | None = None) -> Heard:
    heard, reader = Heard(), MessageReader()
    assert worker.stdout is not None and worker.stdin is not None
    while data := os.read(worker.stdout.fileno(), 1 << 16):
        for message in reader.feed(data):
            if isinstance(message, StreamMessage):
                heard.streams.append(message.desc)
            elif isinstance(message, PacketMessage):
                heard.packets.append((time.monotonic(), message.packet))
            elif isinstance(message, EventMessage) and isinstance(message.event, StatsUpdated):
                heard.stats.append(message.event.stats.counters)
            elif isinstance(message, EventMessage) and isinstance(message.event, SpliceReached):
                heard.splices.append((time.monotonic(), message.event))
            elif isinstance(message, EventMessage) and isinstance(message.event, PipelineFailed):
                heard.failure = message.event.message
            elif isinstance(message, EndOfStream):
                heard.ended = True
        if stop_after_packets is not None and len(heard.packets) >= stop_after_packets:
            worker.stdin.close()  # the session goes away
            stop_after_packets = None
    heard.exit_code = worker.wait(timeout=10)
    return heard


@pytest.mark.parametrize("path", ["files/clip.ts", "files/clip-vod/index.m3u8"])
def test_a_file_is_described_then_sent_in_real_time_then_ended(
    launcher: WorkerLauncher, server: MediaServer, path: str
) -> None:
    heard = listen(start(launcher, server.url(path)))
    assert heard.failure is None and heard.ended and heard.exit_code == 0
    assert [(s.kind, s.codec) for s in heard.streams] == [("video", "h264"), ("audio", "aac")]
    assert (heard.streams[0].width, heard.streams[0].height) == (320, 180)
    assert (heard.streams[1].sample_rate, heard.streams[1].channels) == (48000, 2)
    videos = [p for _, p in heard.packets if p.kind == "video"]
    assert len(videos) == 90 and videos[0].keyframe
    # 3 s of media, the first 0.5 s (the lead) at once: the rest at the media's pace.
    spread = heard.packets[-1][0] - heard.packets[0][0]
    assert 2.0 <= spread <= 3.0, spread
    assert 2900 <= heard.stats[-1]["position_ms"] <= 3050 and heard.stats[-1]["duration_ms"] >= 3000


def test_scte35_splices_are_reported_when_the_media_reaches_them(launcher: WorkerLauncher, server: MediaServer) -> None:
    heard = listen(start(launcher, server.url("files/break.ts")))
    assert heard.failure is None and heard.ended
    assert [event for _, event in heard.splices] == [SpliceReached(4242, True), SpliceReached(4242, False)]
    # Each when its splice time (1 s and 2 s into the media) is due in real time: not when its section arrived
    # 0.7 s before, nor with the packets of that time, which leave the 0.5 s lead early.
    first = heard.packets[0][0]
    out_at, back_at = (at - first for at, _ in heard.splices)
    assert 0.9 <= out_at <= 1.15 and 1.9 <= back_at <= 2.15, (out_at, back_at)
    assert heard.stats[-1]["scte35_splices"] == 2 and heard.stats[-1]["scte35_skipped"] == 0


def test_a_failing_url_is_reported_in_words_and_the_worker_exits_1(
    launcher: WorkerLauncher, server: MediaServer
) -> None:
    heard = listen(start(launcher, server.url("status/404")))
    assert heard.failure == f"HTTP 404 Not Found from {server.url('status/404')}"
    assert heard.exit_code == 1 and not heard.ended and heard.packets == []


def test_the_worker_goes_when_its_session_does(launcher: WorkerLauncher, server: MediaServer) -> None:
    began = time.monotonic()
    heard = listen(start(launcher, server.url("files/clip.ts")), stop_after_packets=5)
    assert heard.exit_code == 0 and not heard.ended and time.monotonic() - began < 2


def test_a_spawned_worker_behaves_the_same(server: MediaServer) -> None:
    spawning = WorkerLauncher(fork=False)
    heard = listen(start(spawning, server.url("status/500")))
    assert heard.failure is not None and heard.failure.startswith("HTTP 500 Internal Server Error")
    assert heard.exit_code == 1
