"""The pull door for ``http://`` and ``https://`` URL ingresses: one demux worker process per session.

``open(info, resource_id)`` returns the session's ``MediaSource`` at once and starts a ``PullFeed`` task that
launches the worker (worker.py, forked from the media zygote), sends it the request, and moves what it says into
the source: stream descriptions and packets (``BLOCK`` flow: when the session falls behind, this feed stops reading
the worker's pipe and the worker's pacing waits — nothing is dropped or buffered without bound on the way), and the
end — ``COMPLETE`` at the end of the media, ``ERROR`` with the worker's words otherwise.

The worker's own failures end only this session, in words:

- it exits without a word (a crash in native code, an OOM kill, ``kill -9``): ``URL pull worker exited
  unexpectedly (killed by SIGKILL)``;
- it goes silent — no packet and no heartbeat for ``silence_timeout`` (it sends one a second, and gives up on
  its own within the open/read timeouts): it is killed, and the error says so.

Closing the source (DeleteIngress, shutdown) kills the worker at once: it holds nothing worth a goodbye.
An SCTE-35 splice the worker reached (``SpliceReached``) sets the participant attribute
``ingress.outOfNetwork.eventID`` through the source: the event id going out of network, "" coming back.
Progress (media position of duration, from the heartbeats) is logged every 30 s of media and kept in the source's
``metadata`` (``position_seconds``, ``duration_seconds``: None when live) for the dashboard.
"""

import asyncio
import contextlib
import logging
import signal
import threading
from dataclasses import dataclass, field
from typing import IO

from livekit.protocol.ingress import IngressInfo

from pyingress.config import Config
from pyingress.ingest.flow import FlowPolicy
from pyingress.ingest.pull.http import FetchOptions
from pyingress.ingest.pull.scte35 import OUT_OF_NETWORK_ATTRIBUTE
from pyingress.ingest.pull.worker import PullRequest
from pyingress.ingest.source import EndReason, MediaSource
from pyingress.media.events import PipelineFailed, SpliceReached, StatsUpdated
from pyingress.media.launcher import WorkerLauncher, WorkerProcess, default_launcher
from pyingress.media.wire import EndOfStream, EventMessage, MessageReader, PacketMessage, StreamMessage, WireError

log = logging.getLogger("pyingress.pull")

PROTOCOL = "url"
PROGRESS_LOG_SECONDS = 30.0  # media seconds between "played 30.0 s of 600.0 s" log lines


@dataclass(frozen=True)
class PullSettings:
    fetch: FetchOptions = field(default_factory=FetchOptions)
    live_stall_timeout: float = 15.0
    lead: float = 0.5
    silence_margin: float = 10.0

    @property
    def silence_timeout(self) -> float:
        """How long the worker may say nothing before it is taken for hung: its own bounds plus a margin (it sends
        a heartbeat a second, and gives up by itself within the open and read timeouts)."""
        return self.fetch.open_timeout + self.fetch.read_timeout + self.silence_margin

    @classmethod
    def from_config(cls, config: Config) -> "PullSettings":
        pull = config.url_pull
        fetch = FetchOptions(
            open_timeout=pull.open_timeout, read_timeout=pull.read_timeout, ca_file=pull.ca_file, user_agent="pyingress"
        )
        return cls(fetch=fetch, live_stall_timeout=pull.live_stall_timeout)


@dataclass
class PullProgress:
    position: float = 0.0  # seconds of media sent into the session
    duration: float | None = None  # None: live, or not known

    def __str__(self) -> str:
        if self.duration is None:
            return f"{self.position:.1f} s"
        return f"{self.position:.1f} s of {self.duration:.1f} s"


class PullFeed:
    """One URL ingress's worker and the task that moves its output into the session's source."""

    def __init__(
        self, info: IngressInfo, source: MediaSource, settings: PullSettings, launcher: WorkerLauncher
    ) -> None:
        self.info = info
        self.source = source
        self.settings = settings
        self.launcher = launcher
        self.process: WorkerProcess | None = None
        self.progress = PullProgress()
        self.counters: dict[str, int] = {}
        self._closed = False
        self._next_progress_log = PROGRESS_LOG_SECONDS
        self._failure: str | None = None
        self.task: asyncio.Task[None] | None = None

    def start(self) -> None:
        self.task = asyncio.create_task(self.run(), name=f"pull-{self.source.resource_id}")
        self.source.on_close(self.close)

    def close(self, reason: str) -> None:
        """The session does not want the source any more: the worker goes now."""
        self._closed = True
        if self.process is not None:
            self.process.kill()
        if self.task is not None:
            self.task.cancel()

    async def run(self) -> None:
        try:
            error = await self._run()
        except asyncio.CancelledError:
            error = None
        except Exception as exc:  # a bug here must still end the session in words
            log.exception("URL pull %s failed", self.source.resource_id)
            error = f"URL pull failed: {type(exc).__name__}: {exc}"
        finally:
            await self._reap()
        if error is not None:
            self.source.end(EndReason.ERROR, error)
        elif not self.source.ended:
            self.source.end(EndReason.COMPLETE)
        log.info("URL pull %s ended at %s: %s", self.source.resource_id, self.progress, error or "complete")

    async def _run(self) -> str | None:
        """Feed the source; returns the error that ends it, None at the end of the media."""
        process = await asyncio.to_thread(self.launcher.launch, "pull")
        self.process = process
        log.info("URL pull %s: %s", self.source.resource_id, self.info.url)
        log.info("URL pull %s: worker pid %d", self.source.resource_id, process.pid)
        if self._closed:
            return None
        threading.Thread(target=self._log_stderr, args=(process.stderr,), name="pull-stderr", daemon=True).start()
        request = PullRequest(
            self.info.url,
            self.settings.fetch,
            lead=self.settings.lead,
            live_stall_timeout=self.settings.live_stall_timeout,
            session_id=self.source.resource_id,
        )
        assert process.stdin is not None and process.stdout is not None
        process.stdin.write(request.to_json())
        process.stdin.flush()
        loop = asyncio.get_running_loop()
        reader = asyncio.StreamReader(limit=1 << 20)
        transport, _ = await loop.connect_read_pipe(lambda: asyncio.StreamReaderProtocol(reader), process.stdout)
        try:
            return await self._pump(reader)
        finally:
            transport.close()

    async def _pump(self, reader: asyncio.StreamReader) -> str | None:
        messages = MessageReader()
        while True:
            try:
                async with asyncio.timeout(self.settings.silence_timeout):
                    data = await reader.read(1 << 16)
            except TimeoutError:
                assert self.process is not None
                self.process.kill()
                return f"URL pull worker for {self.info.url} stopped responding ({self.settings.silence_timeout:g} s)"
            if not data:
                return self._failure or await self._exited()
            try:
                batch = messages.feed(data)
            except WireError as error:
                assert self.process is not None
                self.process.kill()
                return f"URL pull worker sent garbage: {error}"
            for message in batch:
                if isinstance(message, PacketMessage):
                    await self.source.put(message.packet)
                elif isinstance(message, StreamMessage):
                    await self.source.put(message.desc)
                elif isinstance(message, EventMessage):
                    self._on_event(message.event)
                elif isinstance(message, EndOfStream):
                    return None

    def _on_event(self, event: object) -> None:
        if isinstance(event, StatsUpdated):
            self.counters = dict(event.stats.counters)
            self.progress.position = self.counters.get("position_ms", 0) / 1000
            duration = self.counters.get("duration_ms")
            self.progress.duration = duration / 1000 if duration is not None else None
            # How far it has played, where a session's readers (the dashboard, logs) find what a door says about
            # its publisher: the source's metadata, as RTMP puts the encoder's onMetaData there.
            self.source.metadata["position_seconds"] = self.progress.position
            self.source.metadata["duration_seconds"] = self.progress.duration
            if self.progress.position >= self._next_progress_log:
                self._next_progress_log = self.progress.position + PROGRESS_LOG_SECONDS
                log.info("URL pull %s: played %s", self.source.resource_id, self.progress)
        elif isinstance(event, SpliceReached):
            value = str(event.event_id) if event.out_of_network else ""
            log.info("URL pull %s: SCTE-35 splice, %s = %r", self.source.resource_id, OUT_OF_NETWORK_ATTRIBUTE, value)
            self.source.set_attributes({OUT_OF_NETWORK_ATTRIBUTE: value})
        elif isinstance(event, PipelineFailed) and self._failure is None:
            self._failure = event.message

    async def _exited(self) -> str:
        assert self.process is not None
        code = await asyncio.to_thread(self.process.wait)
        return f"URL pull worker exited unexpectedly ({_describe_exit(code)})"

    async def _reap(self) -> None:
        process = self.process
        if process is None:
            return
        with contextlib.suppress(OSError):
            if process.stdin is not None:
                process.stdin.close()  # the worker's signal to go, if it is still there
        try:
            await asyncio.wait_for(asyncio.to_thread(process.wait, 1.0), 2.0)
        except Exception:
            process.kill()
            await asyncio.to_thread(process.wait)

    def _log_stderr(self, stderr: IO[bytes] | None) -> None:
        if stderr is None:
            return
        with contextlib.suppress(ValueError, OSError):
            for raw in stderr:
                line = raw.decode(errors="replace").rstrip()
                if line:
                    log.info("URL pull %s: %s", self.source.resource_id, line)


def _describe_exit(code: int) -> str:
    if code < 0:
        try:
            return f"killed by {signal.Signals(-code).name}"
        except ValueError:
            return f"killed by signal {-code}"
    return f"exit code {code}"


class UrlPullDoor:
    """``PullDoor`` for http and https (``session.manager.SessionManager.start_pull`` asks it per URL ingress)."""

    schemes = ("http", "https")

    def __init__(self, settings: PullSettings, launcher: WorkerLauncher | None = None) -> None:
        self.settings = settings
        self._launcher = launcher
        self.feeds: dict[str, PullFeed] = {}  # resource id → feed, while it runs

    @property
    def launcher(self) -> WorkerLauncher:
        return self._launcher or default_launcher()

    def open(self, info: IngressInfo, resource_id: str) -> MediaSource:
        source = MediaSource(
            protocol=PROTOCOL,
            stream_key="",
            resource_id=resource_id,
            remote_address=info.url,
            flow=FlowPolicy.BLOCK,
        )
        feed = PullFeed(info, source, self.settings, self.launcher)
        self.feeds[resource_id] = feed
        feed.start()
        assert feed.task is not None
        feed.task.add_done_callback(lambda _: self.feeds.pop(resource_id, None))
        return source
