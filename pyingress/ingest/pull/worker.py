"""The demux worker: one process per URL ingress that fetches, demuxes and paces, speaking wire.py on stdout.

Why a process: the URL is anyone's, and FFmpeg's demuxers and HLS reader parse whatever it serves.  A crash or a
hang in there must end this session only, never the service or another session (the media worker isolates
decoding for the same reason).  Forked from the media zygote like the media workers (``launch("pull")``), so it
starts in milliseconds with PyAV imported.

    stdin   one JSON line (``PullRequest``), then nothing: EOF means the session is gone, and the worker exits
    stdout  S stream descriptions, then P packets at the media's pace (pacing.py), V events, E at the end
            V events: ``StatsUpdated`` about once a second (progress: ``position_ms``, ``duration_ms``, HLS
            counters) — the heartbeat the session watches — ``SpliceReached`` when the media reaches an SCTE-35
            splice_insert (scte35.py: when the media of its splice time is due in real time — packets leave
            ``lead`` early, the splice does not), and ``PipelineFailed(message)`` before exiting 1

A reader thread runs ahead of the clock by at most ``READ_AHEAD_BYTES`` / ``READ_AHEAD_PACKETS``, so a slow HLS
segment fetch or a seek does not make packets late, and memory stays bounded for any file.  If the reader sits in
one FFmpeg call for longer than ``hang_seconds`` (native code looping on a hostile file never returns to check a
timeout), the worker reports it and exits; if the whole process freezes, the session's silence watchdog kills it.

Exit codes: 0 after E (or when the session went away), 1 after a reported failure.
"""

import contextlib
import json
import logging
import os
import sys
import threading
import time
from collections import deque
from dataclasses import asdict, dataclass, field
from typing import Any

import av.logging

from pyingress.control.errors import IngressError
from pyingress.ingest.pull.demux import MediaError, MediaReader, open_media
from pyingress.ingest.pull.http import FetchError, FetchOptions, HttpClient
from pyingress.ingest.pull.opener import PullOpener, PullRefused
from pyingress.ingest.pull.pacing import MediaClock
from pyingress.ingest.pull.scte35 import SpliceCue, SpliceInsert, SpliceSchedule
from pyingress.media.events import PipelineEvent, PipelineFailed, PipelineStats, SpliceReached, StatsUpdated
from pyingress.media.packets import EncodedPacket
from pyingress.media.wire import encode_end, encode_event, encode_packet, encode_stream
from pyingress.media.worker import die_with_parent

log = logging.getLogger("pyingress.pull.worker")

READ_AHEAD_PACKETS = 600
READ_AHEAD_BYTES = 24 << 20
HEARTBEAT_SECONDS = 1.0


@dataclass(frozen=True)
class PullRequest:
    url: str
    fetch: FetchOptions = field(default_factory=FetchOptions)
    lead: float = 0.5
    live_stall_timeout: float = 15.0
    hang_seconds: float = 30.0
    session_id: str = ""

    def to_json(self) -> bytes:
        raw = asdict(self)
        raw["fetch"] = self.fetch.to_json()
        return json.dumps(raw).encode() + b"\n"

    @classmethod
    def from_json(cls, data: bytes) -> "PullRequest":
        raw = json.loads(data)
        raw["fetch"] = FetchOptions.from_json(raw["fetch"])
        return cls(**raw)


class _Output:
    def __init__(self, fd: int) -> None:
        self.fd = fd
        self.lock = threading.Lock()

    def write(self, data: bytes) -> None:
        with self.lock:
            view = memoryview(data)
            while view:
                view = view[os.write(self.fd, view) :]

    def event(self, event: PipelineEvent) -> None:
        self.write(encode_event(event))


_Item = EncodedPacket | SpliceCue


def _size(item: _Item) -> int:
    return len(item.data) if isinstance(item, EncodedPacket) else 0


class _ReadAhead:
    """Packets (and splice cues) read but not yet due, bounded in count and bytes; the reader thread fills it."""

    def __init__(self) -> None:
        self.items: deque[tuple[_Item, float]] = deque()  # with when it was read
        self.bytes = 0
        self.ended = False
        self.error: str | None = None
        self.busy_since: float | None = None  # when the reader entered the FFmpeg call it is in
        self.cond = threading.Condition()

    def put(self, packet: _Item) -> None:
        with self.cond:
            while len(self.items) >= READ_AHEAD_PACKETS or self.bytes + _size(packet) > READ_AHEAD_BYTES:
                if not self.items:
                    break
                self.cond.wait()
            self.items.append((packet, time.monotonic()))
            self.bytes += _size(packet)
            self.cond.notify_all()

    def finish(self, error: str | None) -> None:
        with self.cond:
            self.ended = True
            self.error = error
            self.cond.notify_all()

    def get(self, timeout: float) -> tuple[_Item, float] | None:
        with self.cond:
            if not self.items and not self.ended:
                self.cond.wait(timeout)
            if not self.items:
                return None
            item = self.items.popleft()
            self.bytes -= _size(item[0])
            self.cond.notify_all()
            return item


def _message(error: BaseException) -> str:
    if isinstance(error, PullRefused):
        return error.error.message
    if isinstance(error, IngressError):
        return error.message
    if isinstance(error, FetchError | MediaError):
        return str(error)
    return f"URL pull failed: {type(error).__name__}: {error}"


class PullWorker:
    def __init__(self, request: PullRequest, output: _Output) -> None:
        self.request = request
        self.output = output
        self.client = HttpClient(request.fetch)
        self.opener = PullOpener(self.client, request.url, live_stall_timeout=request.live_stall_timeout)
        self.reader: MediaReader | None = None
        self.clock = MediaClock(lead=request.lead)
        self.ahead = _ReadAhead()
        self.sent = 0
        self.position = 0.0  # seconds of media sent, from the container's start (or the first packet)
        self._origin: float | None = None
        self.splices = SpliceSchedule()
        self._sent_media_time: float | None = None  # of the latest packet sent
        self.splices_reached = 0
        self._held: list[tuple[float, SpliceInsert]] = []  # splices reached, each until its media is on time

    def run(self) -> int:
        fetch = self.request.fetch
        try:
            container = open_media(self.request.url, self.opener, fetch.open_timeout, fetch.read_timeout)
            self.reader = MediaReader(container, self.request.url)
            if self.opener.live:
                self.clock = MediaClock.live(self.opener.target_duration)
            for desc in self.reader.descriptions():
                self.output.write(encode_stream(desc))
        except Exception as error:
            return self._fail(error)
        threading.Thread(target=self._read, name="pull-reader", daemon=True).start()
        return self._pace()

    def _read(self) -> None:
        assert self.reader is not None
        error: str | None = None
        try:
            packets = self.reader.packets_in_order()
            while True:
                self.ahead.busy_since = time.monotonic()
                packet = next(packets, None)
                self.ahead.busy_since = None
                if packet is None:
                    break
                self.ahead.put(packet)
        except Exception as failure:
            error = _message(failure)
        self.ahead.finish(error)

    def _pace(self) -> int:
        next_heartbeat = time.monotonic() + HEARTBEAT_SECONDS
        while True:
            item = self.ahead.get(timeout=HEARTBEAT_SECONDS / 2)
            now = time.monotonic()
            self._release(now)
            if item is not None and isinstance(item[0], SpliceCue):
                self._hold(self.splices.add(item[0], self._sent_media_time), self._sent_media_time)
            elif item is not None:
                packet, arrived = item
                assert isinstance(packet, EncodedPacket)
                media_time = float(packet.dts * packet.time_base)
                due = self.clock.due(media_time, now)
                self.clock.waited(due - arrived, now)
                if due > now:
                    time.sleep(due - now)
                self.output.write(encode_packet(packet, time.monotonic_ns()))
                self.sent += 1
                self._advance(media_time)
                self._sent_media_time = media_time
                if self.splices.pending:
                    self._hold(self.splices.reached(media_time), media_time)
            elif self.ahead.ended:
                if self.ahead.error is not None:
                    self.output.event(self._stats())
                    self.output.event(PipelineFailed(self.ahead.error))
                    return 1
                self._release(now, everything=True)
                self.output.event(self._stats())
                self.output.write(encode_end())
                return 0
            busy = self.ahead.busy_since
            if busy is not None:
                # Inside one FFmpeg call, with no request or byte for that long either: native code going round
                # in circles (waiting for HLS segments or retrying a fetch keeps the network busy).
                stuck = now - max(busy, self.client.last_activity)
                if stuck > self.request.hang_seconds:
                    self.output.event(
                        PipelineFailed(f"{self.request.url}: the demuxer made no progress for {stuck:.0f} s")
                    )
                    return 1
            if now >= next_heartbeat:
                self.output.event(self._stats())
                next_heartbeat = now + HEARTBEAT_SECONDS

    def _hold(self, inserts: list[SpliceInsert], media_time: float | None) -> None:
        """Hold splices reached at ``media_time`` until that media is due in real time: the pacing sends packets
        ``lead`` early (a file) or late (live), and the attribute should change with the picture, as the
        reference schedules it at the splice's running time."""
        origin = self.clock.origin_media
        if origin is None or media_time is None:
            on_time = time.monotonic()
        else:
            on_time = self.clock.origin_wall + (media_time - origin)
        self._held.extend((on_time, insert) for insert in inserts)

    def _release(self, now: float, everything: bool = False) -> None:
        while self._held and (everything or self._held[0][0] <= now):  # in the order reached: out before back
            _, insert = self._held.pop(0)
            self.splices_reached += 1
            log.info("SCTE-35 splice_insert reached: event %d %s", insert.event_id, _splice_words(insert))
            self.output.event(SpliceReached(insert.event_id, insert.out_of_network and not insert.cancelled))

    def _advance(self, media_time: float) -> None:
        if self._origin is None:
            start = self.reader.start if self.reader is not None else None
            self._origin = start if start is not None else media_time
        self.position = max(self.position, media_time - self._origin)

    def _stats(self) -> StatsUpdated:
        counters: dict[str, int] = {"packets_sent": self.sent, "reanchors": self.clock.reanchors}
        counters["trimmed_ms"] = round(self.clock.trimmed * 1000)
        counters["position_ms"] = round(self.position * 1000)
        if self.reader is not None and self.reader.duration is not None:
            counters["duration_ms"] = round(self.reader.duration * 1000)
        opener = self.opener
        if opener.hls:
            counters["hls_live"] = int(opener.live)
            counters["hls_segments"] = opener.segments
            counters["hls_segments_skipped"] = opener.segments_skipped
            counters["hls_playlist_reloads"] = opener.playlist_reloads
        counters["http_requests"] = self.client.requests
        if self.reader is not None and (self.reader.cue_streams or self.splices_reached):
            counters["scte35_splices"] = self.splices_reached
            counters["scte35_skipped"] = self.reader.cues_skipped
        return StatsUpdated(PipelineStats(counters))

    def _fail(self, error: BaseException) -> int:
        if not isinstance(error, FetchError | MediaError | PullRefused | IngressError):
            log.exception("URL pull failed")
        self.output.event(PipelineFailed(_message(error)))
        return 1


def _splice_words(insert: SpliceInsert) -> str:
    if insert.cancelled:
        return "cancelled"
    return "out of network" if insert.out_of_network else "back in network"


def _read_request(fd: int) -> PullRequest:
    data = b""
    while not data.endswith(b"\n"):
        chunk = os.read(fd, 65536)
        if not chunk:
            raise SystemExit(0)  # the session went away before it asked for anything
        data += chunk
    return PullRequest.from_json(data)


def _exit_when_session_goes(fd: int) -> None:
    """The session closes our stdin to stop us (DeleteIngress, shutdown, a source it no longer wants)."""
    with contextlib.suppress(OSError):
        while os.read(fd, 4096):
            pass
    os._exit(0)


def main(argv: list[str] | None = None) -> Any:
    in_fd, out_fd = os.dup(0), os.dup(1)
    os.dup2(2, 1)  # a stray print must not corrupt the frame stream
    sys.stdout = sys.stderr
    logging.basicConfig(level=logging.INFO, format="%(levelname)s %(name)s: %(message)s", stream=sys.stderr)
    av.logging.set_level(av.logging.ERROR)
    die_with_parent()
    output = _Output(out_fd)
    request = _read_request(in_fd)
    threading.Thread(target=_exit_when_session_goes, args=(in_fd,), name="pull-stdin", daemon=True).start()
    try:
        code = PullWorker(request, output).run()
    except Exception as error:  # anything else is this session's fault too: report it, never hang
        log.exception("URL pull worker failed")
        with contextlib.suppress(OSError):
            output.event(PipelineFailed(_message(error)))
        code = 1
    sys.stderr.flush()
    os._exit(code)


if __name__ == "__main__":
    main()
