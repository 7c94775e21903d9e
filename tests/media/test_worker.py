"""The worker's loop in this process, on real pipes and a real transcoder: what one read brings leaves together."""

import os
import threading
import time
from pathlib import Path

import pytest

from pyingress.media import worker as worker_module
from pyingress.media.config import PipelineConfig
from pyingress.media.events import PipelineEnded
from pyingress.media.presets import audio_preset, video_preset
from pyingress.media.wire import (
    EventMessage,
    FrameMessage,
    MessageReader,
    encode_config,
    encode_end,
    encode_packet,
    encode_stream,
)
from tests.media.media_helpers import demux, make_clip


class _CountingOutput(worker_module._Output):
    def __init__(self, fd: int) -> None:
        super().__init__(fd)
        self.writes = 0

    def _write(self, data: bytes) -> None:
        self.writes += 1
        super()._write(data)


def _run_worker(clips: Path) -> tuple[int, int, list[FrameMessage], list[EventMessage]]:
    """Everything (config, streams, every packet, end) is in the input pipe before the worker reads: one read
    brings many packets, as when a worker catches up.  Returns (packets, writes, frames, events)."""
    source = demux(make_clip(clips / "1s-180p.flv", size="320x180", duration=1.0))
    stream = encode_config(PipelineConfig(video_preset(0), audio_preset(0)))
    stream += b"".join(encode_stream(desc) for desc in source.streams)
    stream += b"".join(encode_packet(packet, time.monotonic_ns()) for packet in source.packets)
    stream += encode_end()
    assert len(stream) < 60_000  # fits the pipe: the worker finds it all there
    in_r, in_w = os.pipe()
    out_r, out_w = os.pipe()
    os.write(in_w, stream)
    os.close(in_w)
    received = bytearray()

    def drain() -> None:
        while chunk := os.read(out_r, 1 << 16):
            received.extend(chunk)

    reader = threading.Thread(target=drain)
    reader.start()
    output = _CountingOutput(out_w)
    try:
        assert worker_module.Worker(in_r, output).run() == 0
    finally:
        os.close(out_w)
        reader.join(10)
        os.close(in_r)
        os.close(out_r)
    messages = MessageReader().feed(bytes(received))
    frames = [m for m in messages if isinstance(m, FrameMessage)]
    events = [m for m in messages if isinstance(m, EventMessage)]
    return len(source.packets), output.writes, frames, events


def test_what_one_read_brings_leaves_in_one_write_per_read(clips: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(worker_module, "HOLD_LIMIT", 60.0)  # this test is about batching, not the time bound
    packets, writes, frames, events = _run_worker(clips)
    assert sum(f.frame.kind == "video" for f in frames) == 30  # 320x180 is one layer: every picture, none lost
    assert sum(f.frame.kind == "audio" for f in frames) >= 49
    assert isinstance(events[-1].event, PipelineEnded)
    # The whole input came in one or two reads (60 kB, the pipe's size); the output left in as many writes.
    assert writes <= 3, f"{writes} writes for {packets} packets"


def test_held_frames_leave_once_they_have_waited_the_hold_limit(clips: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(worker_module, "HOLD_LIMIT", 0.0)  # every handled message is due at once
    packets, writes, frames, _ = _run_worker(clips)
    assert sum(f.frame.kind == "video" for f in frames) == 30
    # Each packet that produced output was written on its own, as in real time.
    assert writes >= 30 + 49, f"{writes} writes for {packets} packets"


def test_due_counts_from_the_oldest_held_message() -> None:
    read_fd, write_fd = os.pipe()
    try:
        output = worker_module._Output(write_fd)
        assert not output.due(time.monotonic() + 10)  # not holding
        output.hold()
        assert not output.due(time.monotonic() + 10)  # holding nothing
        output.write(b"\x00\x00\x00\x01E")
        held_at = time.monotonic()
        assert not output.due(held_at)
        assert output.due(held_at + worker_module.HOLD_LIMIT + 0.001)
        os.set_blocking(read_fd, False)
        with pytest.raises(BlockingIOError):
            os.read(read_fd, 100)  # held: nothing written before release()
        output.release()
        assert os.read(read_fd, 100) == b"\x00\x00\x00\x01E"
        assert not output.due(time.monotonic() + 10)
    finally:
        os.close(read_fd)
        os.close(write_fd)
