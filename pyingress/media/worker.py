"""The media worker process: one per transcoded session, speaking wire.py on stdin/stdout.

Why a process: a decoder fed a hostile or broken bitstream can do worse than raise — FFmpeg bugs crash or hang
native code, and that must end one session, not the service (ingress.md §1.1: LiveKit runs a handler process per
session for the same reason).  Forked from a warm zygote (launcher.py) a worker starts in milliseconds with PyAV
imported; it costs a pipe copy of the compressed data each way and ~40 MB of RSS; docs/performance.md has the
measured comparison with threads.

Exit codes: 0 after a clean end of stream (or when the session went away), 1 after a failure already reported as
a ``PipelineFailed`` event.  Anything else (a signal) the session reports itself.

    python -m pyingress.media.worker      (or forked by pyingress.media.zygote, which calls main())
"""

import contextlib
import ctypes
import logging
import os
import resource
import select
import signal
import sys
import threading
import time

import av.logging

from pyingress.media.config import PipelineError
from pyingress.media.events import PipelineEnded, PipelineEvent, PipelineFailed, StatsUpdated
from pyingress.media.packets import OutputFrame
from pyingress.media.transcoder import Transcoder
from pyingress.media.wire import (
    ConfigMessage,
    EndOfStream,
    KeyframeRequest,
    LayerActive,
    Message,
    MessageReader,
    PacketMessage,
    StreamMessage,
    encode_event,
    encode_output,
)

log = logging.getLogger("pyingress.media.worker")

STATS_INTERVAL = 1.0
# The longest a finished frame waits in the worker for others to share its write, when one read brought several
# packets (a worker catching up); in real time a read brings one packet and nothing waits.
HOLD_LIMIT = 0.02
_PR_SET_PDEATHSIG = 1


class _Output:
    """Writes whole messages to the session; layer threads and the main thread share it."""

    def __init__(self, fd: int) -> None:
        self._fd = fd
        self._lock = threading.Lock()
        self._batch: list[bytes] = []
        self._batcher: int | None = None  # the thread whose messages are being held for one write
        self._held_since: float | None = None  # monotonic time of the oldest held message

    def hold(self) -> None:
        """Until ``release()``, what this thread writes is kept and then sent in one write.

        The worker holds while it works through what one read of its input brought: a packet's whole ladder, and
        when it is catching up several packets' worth, leave in one write and wake the session's reader once.
        Each wakeup costs the session ~80 µs of CPU on this VM: a 20 s 720p clip offline took 0.15–0.16 s of
        session CPU with a write per message, 0.10 s with a write per read (0.08 s without the time bound).
        The cost is latency for what waits in the batch: the top layer waits for the lower layers' encodes (a
        few ms at 1080p), and ``due()`` bounds the rest.  (Plain methods, not a context manager: this runs for
        every read, and a generator-based one cost 0.4 % of the worker.)
        """
        self._batcher = threading.get_ident()
        self._held_since = None

    def due(self, now: float) -> bool:
        """Whether held output has waited ``HOLD_LIMIT`` already and should go now."""
        return self._held_since is not None and now - self._held_since >= HOLD_LIMIT

    def release(self) -> None:
        self._batcher = None
        self._held_since = None
        if self._batch:
            batch, self._batch = self._batch, []
            self._write(b"".join(batch))

    def write(self, data: bytes) -> None:
        if self._batcher == threading.get_ident():
            if self._held_since is None:
                self._held_since = time.monotonic()
            self._batch.append(data)
        else:
            self._write(data)

    def _write(self, data: bytes) -> None:
        with self._lock:
            view = memoryview(data)
            while view:
                written = os.write(self._fd, view)
                view = view[written:]

    def frame(self, frame: OutputFrame, arrival_ns: int) -> None:
        self.write(encode_output(frame, arrival_ns))

    def event(self, event: PipelineEvent) -> None:
        self.write(encode_event(event))


def die_with_parent() -> None:
    """A session process that dies without closing our stdin must not leave an orphan encoding for nobody."""
    with contextlib.suppress(OSError, AttributeError):
        ctypes.CDLL("libc.so.6", use_errno=True).prctl(_PR_SET_PDEATHSIG, signal.SIGKILL)


def _with_usage(stats: StatsUpdated) -> StatsUpdated:
    """The worker's own CPU time and peak RSS ride along with its counters: a forked worker is not the session's
    child, so nothing else can account for it (rusage of a forked process starts at zero)."""
    usage = resource.getrusage(resource.RUSAGE_SELF)
    stats.stats.counters["worker_cpu_ms"] = round((usage.ru_utime + usage.ru_stime) * 1000)
    stats.stats.counters["worker_max_rss_kb"] = usage.ru_maxrss
    return stats


class Worker:
    def __init__(self, in_fd: int, output: _Output) -> None:
        self.in_fd = in_fd
        self.output = output
        self.reader = MessageReader()
        self.transcoder: Transcoder | None = None
        self.ended = False

    def run(self) -> int:
        next_stats = time.monotonic() + STATS_INTERVAL
        while True:
            ready, _, _ = select.select([self.in_fd], [], [], STATS_INTERVAL)
            if ready:
                data = os.read(self.in_fd, 1 << 16)
                if not data:
                    return self._session_gone()
                output = self.output
                output.hold()
                try:
                    messages = list(self.reader.feed(data))
                    self._hoist_keyframe_requests(messages)
                    for message in messages:
                        self._handle(message)
                        if self.ended:
                            return 0
                        if output.due(time.monotonic()):
                            output.release()
                            output.hold()
                finally:
                    output.release()
            transcoder = self.transcoder
            if transcoder is not None and transcoder.failed is not None:
                return 1  # a layer thread failed and has reported it
            if time.monotonic() >= next_stats and transcoder is not None:
                self.output.event(_with_usage(transcoder.stats()))
                next_stats = time.monotonic() + STATS_INTERVAL

    def _hoist_keyframe_requests(self, messages: list[Message]) -> None:
        """Act on this read's keyframe requests before its packets: a worker catching up (a slow start, a burst)
        would otherwise encode those packets' pictures first, and the viewer asking would wait for all of them."""
        if self.transcoder is None:
            return
        for message in messages:
            if isinstance(message, KeyframeRequest):
                self.transcoder.request_keyframe(message.quality)
        messages[:] = [message for message in messages if not isinstance(message, KeyframeRequest)]

    def _handle(self, message: Message) -> None:
        if isinstance(message, ConfigMessage):
            self.transcoder = Transcoder(message.config, self.output.frame, self.output.event)
            return
        transcoder = self.transcoder
        if transcoder is None:
            raise PipelineError("media worker: no configuration before media")
        if isinstance(message, PacketMessage):
            transcoder.push(message.packet, message.arrival_ns)
        elif isinstance(message, StreamMessage):
            transcoder.add_stream(message.desc)
        elif isinstance(message, KeyframeRequest):
            transcoder.request_keyframe(message.quality)
        elif isinstance(message, LayerActive):
            transcoder.set_layer_active(message.quality, message.active)
        elif isinstance(message, EndOfStream):
            transcoder.end()
            if transcoder.failed is None:
                self.output.event(_with_usage(transcoder.stats()))
                self.output.event(PipelineEnded())
            self.ended = True

    def _session_gone(self) -> int:
        if self.transcoder is not None:
            self.transcoder.abort()
        return 0


def main() -> int:
    # The protocol owns private copies of stdin/stdout; fd 1 then points at stderr so that a stray print or a
    # library writing to stdout cannot corrupt the frame stream.
    in_fd, out_fd = os.dup(0), os.dup(1)
    os.dup2(2, 1)
    sys.stdout = sys.stderr
    logging.basicConfig(level=logging.WARNING, format="%(levelname)s %(name)s: %(message)s", stream=sys.stderr)
    av.logging.set_level(av.logging.ERROR)
    die_with_parent()
    output = _Output(out_fd)
    worker = Worker(in_fd, output)
    try:
        code = worker.run()
    except PipelineError as error:
        output.event(PipelineFailed(str(error)))
        code = 1
    except Exception as error:  # any other fault is this session's too: report it, never hang
        log.exception("media worker failed")
        output.event(PipelineFailed(f"media worker error: {type(error).__name__}: {error}"))
        code = 1
    sys.stderr.flush()
    os._exit(code)  # layer threads may sit in native code; nothing left to clean up in-process


if __name__ == "__main__":
    main()
