"""The media pipeline as the session sees it: push packets in, get frames and events out, per session.

    pipeline = open_pipeline(config, sink)          # a worker process per transcoded session (default)
    pipeline.add_stream(desc); pipeline.push(packet) …; pipeline.end()
    pipeline.request_keyframe(quality)              # PLI from a subscriber, per layer
    pipeline.set_layer_active(quality, active)      # dynacast: pause a layer nobody watches, IDR on resume

``push`` never blocks the caller (the front door's event loop): packets wait in a ``PacketQueue`` bounded in
time, and a writer thread feeds the worker; in real time, when nothing waits and the pipe has room, ``push``
writes the packet itself (``ProcessPipeline._write_now``).  Frames and events reach ``sink`` from a reader
thread, so the sink must be thread-safe: the session's ``sinks.CallbackSink`` callbacks only hop onto its event
loop with ``loop.call_soon_threadsafe``.

The worker wire (``wire.py``) carries no video layer: a packet crosses without its ``EncodedPacket.layer``,
because a ``Transcoder`` takes one stream per kind.  Of a simulcast source the session must hand a transcoding
pipeline one layer, the best; ``passthrough.PassthroughPipeline`` forwards every layer.

Isolation: ``ProcessPipeline`` (the default) survives anything the worker does — an exception, a decoder error
storm, a segfault — by reporting ``PipelineFailed`` for this session only.  ``ThreadPipeline`` runs the same
``Transcoder`` in-process: same CPU, no isolation from native crashes; kept for tools and the benchmark's
comparison.  When transcoding is off, ``passthrough.PassthroughPipeline`` does the (cheap) work inline.
"""

import array
import contextlib
import fcntl
import logging
import os
import signal
import subprocess
import termios
import threading
import time
from collections import deque
from collections.abc import Callable
from typing import Literal, Protocol

from pyingress.media.config import PipelineConfig, PipelineError
from pyingress.media.events import (
    PipelineEnded,
    PipelineEvent,
    PipelineFailed,
    PipelineStats,
    StatsUpdated,
    UpstreamKeyframeNeeded,
)
from pyingress.media.flow import PacketQueue
from pyingress.media.latency import LatencyRecorder
from pyingress.media.launcher import WorkerLauncher, WorkerProcess, default_launcher
from pyingress.media.packets import EncodedPacket, OutputFrame, StreamDescription
from pyingress.media.passthrough import PassthroughPipeline
from pyingress.media.recovery import OutputClock, RestartBudget
from pyingress.media.sinks import PipelineSink, track_name
from pyingress.media.transcoder import Transcoder
from pyingress.media.wire import (
    EventMessage,
    FrameMessage,
    MessageReader,
    WireError,
    encode_config,
    encode_end,
    encode_keyframe_request,
    encode_layer_active,
    encode_packet,
    encode_stream,
)

log = logging.getLogger(__name__)

Clock = Callable[[], int]
_END = "end"


class MediaPipeline(Protocol):
    latency: LatencyRecorder

    def add_stream(self, desc: StreamDescription) -> None: ...

    def push(self, packet: EncodedPacket) -> None: ...

    def end(self) -> None: ...

    def request_keyframe(self, quality: int) -> None: ...

    def set_layer_active(self, quality: int, active: bool) -> None: ...

    def wait(self, timeout: float | None = None) -> bool: ...

    def close(self) -> None: ...

    @property
    def stats(self) -> PipelineStats: ...


class _QueuedPipeline:
    """What the process and thread pipelines share: the time-bounded input queue, sink dispatch, stats."""

    def __init__(self, config: PipelineConfig, sink: PipelineSink, clock: Clock) -> None:
        self.config = config
        self.sink = sink
        self.clock = clock
        self.latency = LatencyRecorder()
        self._queue = PacketQueue(config.max_queue_delay)
        self._cond = threading.Condition()
        self._ended = False  # end() was called
        self._finished = threading.Event()  # PipelineEnded or PipelineFailed delivered
        self._closed = False
        self._worker_stats = PipelineStats()
        self._inline_writes = 0  # packets push() handed over itself, without the writer thread
        self.error: str | None = None

    # -- session side --

    def add_stream(self, desc: StreamDescription) -> None:
        with self._cond:
            self._queue.put_marker(desc, self.clock())
            self._cond.notify()

    def push(self, packet: EncodedPacket) -> None:
        now = self.clock()
        self.latency.packet_in(packet.kind, packet.keyframe, now)
        with self._cond:
            if self._ended or self._closed:
                return
            if self._write_now(packet, now):
                return
            self._queue.put(packet, now)
            self._cond.notify()

    def _write_now(self, packet: EncodedPacket, now: int) -> bool:
        """Hand ``packet`` to the consumer at once, in the caller's thread, if that cannot block (lock held)."""
        return False

    def end(self) -> None:
        with self._cond:
            if not self._ended:
                self._ended = True
                self._queue.put_marker(_END, self.clock())
                self._cond.notify()

    def wait(self, timeout: float | None = None) -> bool:
        """True once the pipeline ended (all frames delivered) or failed."""
        return self._finished.wait(timeout)

    @property
    def stats(self) -> PipelineStats:
        counters = dict(self._worker_stats.counters)
        counters["packets_dropped_behind"] = self._queue.dropped_packets
        counters["keyframe_skips"] = self._queue.keyframe_skips
        counters["packets_written_inline"] = self._inline_writes
        return PipelineStats(counters)

    # -- delivery (reader/decode threads) --

    def _next_item(self) -> tuple[EncodedPacket | None, object, int] | None:
        """Blocks for the next packet or marker; None once closed."""
        with self._cond:
            while True:
                if self._closed:
                    return None
                item = self._queue.get(self.clock())
                if item is not None:
                    return item.packet, item.marker, item.arrival_ns
                self._cond.wait()

    def _deliver_frame(self, frame: OutputFrame, arrival_ns: int) -> None:
        self.latency.frame_out(track_name(frame), arrival_ns, self.clock())
        try:
            self.sink.on_frame(frame)
        except Exception:
            log.exception("frame sink failed")

    def _deliver_event(self, event: PipelineEvent) -> None:
        if isinstance(event, StatsUpdated):
            self._worker_stats = event.stats
        if isinstance(event, PipelineFailed):
            if self._finished.is_set():
                return
            self.error = event.message
            log.warning("session %s media pipeline failed: %s", self.config.session_id, event.message)
        try:
            self.sink.on_event(event)
        except Exception:
            log.exception("event sink failed")
        if isinstance(event, PipelineEnded | PipelineFailed):
            self._finished.set()


class ProcessPipeline(_QueuedPipeline):
    """A worker process per session (see worker.py for why), replaced when it dies (media/recovery.py).

    Each worker has its own writer, reader and stderr threads, tagged with a generation: after a restart the old
    ones find a newer generation and leave.  A new worker is told the config, the streams and which layers are
    paused, then takes the queued packets from where the old one stopped; its decoder starts at the next keyframe,
    which the source is asked for (``UpstreamKeyframeNeeded``)."""

    def __init__(
        self,
        config: PipelineConfig,
        sink: PipelineSink,
        clock: Clock = time.monotonic_ns,
        launcher: WorkerLauncher | None = None,
        restarts: RestartBudget | None = None,
    ) -> None:
        super().__init__(config, sink, clock)
        self._control: deque[bytes] = deque()  # keyframe/layer requests overtake queued media
        self._stderr_tail: deque[str] = deque(maxlen=5)
        self._writer_idle = False  # the writer thread waits with nothing buffered: push() may write itself
        self._launcher = launcher or default_launcher()
        self._restarts = restarts or RestartBudget()
        self._output = OutputClock(clock)
        self._streams: dict[str, StreamDescription] = {}  # what a restarted worker is told again
        self._layers_active: dict[int, bool] = {}
        self._generation = 0
        self._threads: list[threading.Thread] = []
        self.restarts = 0
        self._start_worker(encode_config(config))

    def _start_worker(self, first_message: bytes) -> None:
        """Launch a worker and its threads (under ``_cond`` when replacing one)."""
        process = self._launcher.launch()
        assert process.stdin is not None
        self.process: WorkerProcess = process
        self._stdin_fd = process.stdin.fileno()
        self._pipe_size = _pipe_capacity(self._stdin_fd)
        self._writer_idle = False
        self._generation += 1
        generation = self._generation
        threads = [
            threading.Thread(target=self._write_loop, args=(process, generation, first_message), name="media-writer"),
            threading.Thread(target=self._read_loop, args=(process, generation), name="media-reader"),
            threading.Thread(target=self._stderr_loop, args=(process,), name="media-stderr"),
        ]
        self._threads = threads
        for thread in threads:
            thread.daemon = True
            thread.start()
        log.info("session %s: media worker pid %d", self.config.session_id, process.pid)

    @property
    def pid(self) -> int:
        return self.process.pid

    def add_stream(self, desc: StreamDescription) -> None:
        with self._cond:
            self._streams[desc.kind] = desc
        super().add_stream(desc)

    def request_keyframe(self, quality: int) -> None:
        self._control_message(encode_keyframe_request(quality))

    def set_layer_active(self, quality: int, active: bool) -> None:
        with self._cond:
            self._layers_active[quality] = active
        self._control_message(encode_layer_active(quality, active))

    def _control_message(self, data: bytes) -> None:
        with self._cond:
            self._control.append(data)
            self._cond.notify()

    def close(self) -> None:
        """Stop now (no drain): the worker is told by EOF, and killed if it does not go within a second."""
        with self._cond:
            self._closed = True
            self._cond.notify_all()
            process, threads = self.process, self._threads
        with contextlib.suppress(OSError):
            if process.stdin is not None:
                process.stdin.close()
        try:
            process.wait(timeout=1.0)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()
        for thread in threads:
            if thread is not threading.current_thread():
                thread.join(timeout=2.0)

    def _deliver_frame(self, frame: OutputFrame, arrival_ns: int) -> None:
        super()._deliver_frame(self._output.deliver(frame), arrival_ns)

    def _write_now(self, packet: EncodedPacket, now: int) -> bool:
        """In real time the writer thread is idle when a packet comes: writing it here saves waking that thread
        for every packet (live 720p, 20 s: the writer's 0.16 CPU-s gone, the pushing thread's +0.06, session side
        0.60 → 0.52 CPU-s).  Only when nothing is queued or buffered, so order holds, and only when the pipe has
        room for all of it, so this never blocks: nobody else writes to this pipe, and its room only grows while
        we hold the lock."""
        if not self._writer_idle or self._queue or self._control or self._pipe_size is None:
            return False
        data = encode_packet(packet, now)
        if len(data) > _pipe_room(self._stdin_fd, self._pipe_size):
            return False
        with contextlib.suppress(OSError):  # the worker is gone; the reader reports why
            os.write(self._stdin_fd, data)
        self._inline_writes += 1
        return True

    def _write_loop(self, process: WorkerProcess, generation: int, first_message: bytes) -> None:
        stdin = process.stdin
        assert stdin is not None
        try:
            stdin.write(first_message)
            stdin.flush()
            flushed = True
            while True:
                with self._cond:
                    if generation != self._generation:
                        return  # a newer worker has its own writer
                    # push() may write itself only while this thread waits with nothing left in its buffer.
                    self._writer_idle = flushed
                    while not self._control and not self._queue and not self._closed:
                        self._cond.wait()
                        if generation != self._generation:
                            return
                    self._writer_idle = False
                    if self._closed:
                        return
                    control = list(self._control)
                    self._control.clear()
                    item = self._queue.get(self.clock()) if not control else None
                for data in control:
                    stdin.write(data)
                if item is not None:
                    if item.packet is not None:
                        stdin.write(encode_packet(item.packet, item.arrival_ns))
                    elif isinstance(item.marker, StreamDescription):
                        stdin.write(encode_stream(item.marker))
                    elif item.marker == _END:
                        stdin.write(encode_end())
                flushed = not self._queue
                if flushed:
                    stdin.flush()
        except (BrokenPipeError, ValueError, OSError):
            return  # the worker is gone; the reader reports why

    def _read_loop(self, process: WorkerProcess, generation: int) -> None:
        stdout = process.stdout
        assert stdout is not None
        reader = MessageReader()
        fd = stdout.fileno()
        try:
            while True:
                data = os.read(fd, 1 << 16)
                if not data:
                    break
                for message in reader.feed(data):
                    if isinstance(message, FrameMessage):
                        self._deliver_frame(message.frame, message.arrival_ns)
                    elif isinstance(message, EventMessage):
                        self._deliver_event(message.event)
        except WireError as error:
            self._deliver_event(PipelineFailed(f"media worker sent garbage: {error}"))
            process.kill()
        code = process.wait()
        if self._finished.is_set() or self._closed or generation != self._generation:
            return
        how = _describe_exit(code)
        if not self._replace_worker(how):
            last_words = f": {self._stderr_tail[-1]}" if self._stderr_tail else ""
            self._deliver_event(PipelineFailed(f"media worker exited unexpectedly ({how}){last_words}"))

    def _replace_worker(self, how: str) -> bool:
        """A new worker in the dead one's place, if the budget allows; the session carries on."""
        with self._cond:
            if self._closed or self._ended or not self._restarts.allow():
                return False
            first = encode_config(self.config) + b"".join(encode_stream(d) for d in self._streams.values())
            first += b"".join(encode_layer_active(q, on) for q, on in self._layers_active.items() if not on)
            try:
                self._start_worker(first)
            except OSError as error:
                log.warning("session %s: could not restart its media worker: %s", self.config.session_id, error)
                return False
            self._output.restarted()
            self.restarts += 1
            self._cond.notify_all()  # the old writer leaves
        log.warning(
            "session %s: media worker %s; restarted it (pid %d), from the next keyframe",
            self.config.session_id,
            how,
            self.process.pid,
        )
        self._deliver_event(UpstreamKeyframeNeeded(None))  # the new decoder starts at a keyframe: ask for one now
        return True

    def _stderr_loop(self, process: WorkerProcess) -> None:
        stderr = process.stderr
        assert stderr is not None
        for raw in stderr:
            line = raw.decode(errors="replace").rstrip()
            if line:
                self._stderr_tail.append(line)
                log.info("media worker %s: %s", process.pid, line)


def _pipe_capacity(fd: int) -> int | None:
    try:
        return fcntl.fcntl(fd, fcntl.F_GETPIPE_SZ)
    except (OSError, AttributeError):  # not a pipe (or not Linux): the writer thread does all writing
        return None


def _pipe_room(fd: int, capacity: int) -> int:
    """Bytes a write is sure to find room for: capacity less what is unread, less two pages for the partly
    used pages at the pipe's head and tail (the kernel keeps a pipe in whole pages)."""
    unread = array.array("i", [0])
    fcntl.ioctl(fd, termios.FIONREAD, unread)
    return capacity - unread[0] - 2 * 4096


def _describe_exit(code: int) -> str:
    if code < 0:
        try:
            return f"killed by {signal.Signals(-code).name}"
        except ValueError:
            return f"killed by signal {-code}"
    return f"exit code {code}"


class ThreadPipeline(_QueuedPipeline):
    """The same transcoder in this process, on a decode thread: no isolation from native faults."""

    def __init__(self, config: PipelineConfig, sink: PipelineSink, clock: Clock = time.monotonic_ns) -> None:
        super().__init__(config, sink, clock)
        self._transcoder = Transcoder(config, self._deliver_frame, self._on_transcoder_event, clock)
        self._thread = threading.Thread(target=self._decode_loop, name="media-decode", daemon=True)
        self._thread.start()

    def request_keyframe(self, quality: int) -> None:
        self._transcoder.request_keyframe(quality)

    def set_layer_active(self, quality: int, active: bool) -> None:
        self._transcoder.set_layer_active(quality, active)

    def close(self) -> None:
        with self._cond:
            self._closed = True
            self._cond.notify_all()
        self._thread.join(timeout=5.0)
        self._transcoder.abort()

    def _on_transcoder_event(self, event: PipelineEvent) -> None:
        self._deliver_event(event)

    def _decode_loop(self) -> None:
        transcoder = self._transcoder
        next_stats = time.monotonic() + 1.0
        try:
            while True:
                item = self._next_item()
                if item is None:
                    transcoder.abort()
                    return
                packet, marker, arrival = item
                if packet is not None:
                    transcoder.push(packet, arrival)
                elif isinstance(marker, StreamDescription):
                    transcoder.add_stream(marker)
                elif marker == _END:
                    transcoder.end()
                    if transcoder.failed is None:
                        self._deliver_event(transcoder.stats())
                        self._deliver_event(PipelineEnded())
                    return
                if transcoder.failed is not None:
                    transcoder.abort()
                    return
                if time.monotonic() >= next_stats:
                    self._deliver_event(transcoder.stats())
                    next_stats = time.monotonic() + 1.0
        except PipelineError as error:
            transcoder.fail(str(error))
        except Exception as error:
            log.exception("media pipeline failed")
            transcoder.fail(f"media pipeline error: {type(error).__name__}: {error}")
        transcoder.abort()


def open_pipeline(
    config: PipelineConfig,
    sink: PipelineSink,
    isolation: Literal["process", "thread"] = "process",
    clock: Clock = time.monotonic_ns,
    launcher: WorkerLauncher | None = None,
) -> MediaPipeline:
    """The pipeline for one session: pass-through when transcoding is off, else a worker process (or thread)."""
    if not config.transcode:
        return PassthroughPipeline(config, sink, clock)
    if isolation == "thread":
        return ThreadPipeline(config, sink, clock)
    return ProcessPipeline(config, sink, clock, launcher)
