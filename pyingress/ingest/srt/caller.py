"""The SRT pull door: a URL ingress ``srt://host:port?streamid=…&passphrase=…&latency=…`` is pulled in caller mode.

This is what livekit/ingress does with ``srtclientsrc`` (reference ingress.md §1.6): connect, read MPEG-TS, play
it live — SRT's latency paces it, not a file clock.  What it adds:

- a URL that cannot work (not caller mode, a bad port, a passphrase libsrt refuses) refuses ``CreateIngress``
  in words, with nothing stored;
- a server that drops the connection, or is not there yet, is called again with backoff (0.5 s doubling to 5 s),
  the session and its room participant carrying on; a reconnection is a new MPEG-TS whose timestamps the
  pipeline's timeline joins up;
- no media for ``media_timeout`` (the reference's media watchdog: one minute) → ERROR ``source encoder not
  ready``, with the last failure in words after it; a host name that does not exist is an ERROR at once;
- DeleteIngress (the session closes the source) closes the socket, which ends a connect or a read at once.

The connection's thread is the listener's (feed.py ``pump``): libsrt and PyAV off the loop, items handed over.
"""

import asyncio
import logging
import socket
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from urllib.parse import parse_qs, urlsplit

from livekit.protocol.ingress import IngressInfo

from pyingress.config import Config
from pyingress.control.errors import SOURCE_NOT_READY, IngressError
from pyingress.ingest.flow import FlowPolicy
from pyingress.ingest.source import EndReason, MediaSource
from pyingress.ingest.srt.feed import HandOver, StatsStream, close_soon, pump
from pyingress.ingest.srt.libsrt import MAX_STREAMID, Opt, SrtError, SrtSocket
from pyingress.ingest.srt.stats import SrtStatsExport

log = logging.getLogger("pyingress.srt")

PROTOCOL = "srt"
BACKOFF_FIRST, BACKOFF_MAX = 0.5, 5.0


def _invalid(detail: str) -> IngressError:
    return IngressError("invalid_argument", f"invalid SRT URL: {detail}")


@dataclass(frozen=True)
class SrtUrl:
    """What an ``srt://`` URL ingress asks for.  Query keys as srt-live-transmit and GStreamer's srtsrc take them:
    ``streamid``, ``passphrase``, ``pbkeylen``, ``latency`` (ms), ``conntimeo`` (ms), ``mode`` (caller only)."""

    host: str
    port: int
    streamid: str = ""
    passphrase: str = ""
    pbkeylen: int = 0
    latency_ms: int | None = None
    connect_timeout_ms: int = 3000

    @classmethod
    def parse(cls, url: str) -> "SrtUrl":
        """Raises IngressError (invalid_argument) with what is wrong."""
        try:
            parts = urlsplit(url)
            port = parts.port
        except ValueError as error:
            raise _invalid(str(error)) from None
        if parts.scheme.lower() != "srt":
            raise _invalid("the scheme must be srt://")
        if not parts.hostname:
            raise _invalid("no host")
        if port is None or port == 0:
            raise _invalid("no port (srt://host:port)")
        query = {key: values[-1] for key, values in parse_qs(parts.query, keep_blank_values=True).items()}
        mode = query.get("mode", "caller")
        if mode not in ("caller", "client"):
            raise _invalid(f"mode={mode}: pyingress pulls as a caller (push to its SRT listener instead)")
        streamid = query.get("streamid", "")
        if len(streamid.encode()) > MAX_STREAMID:
            raise _invalid(f"streamid longer than {MAX_STREAMID} bytes")
        passphrase = query.get("passphrase", "")
        if passphrase and not 10 <= len(passphrase) <= 79:
            raise _invalid("passphrase must be 10 to 79 characters")
        pbkeylen = _int(query, "pbkeylen", 0)
        if pbkeylen not in (0, 16, 24, 32):
            raise _invalid(f"pbkeylen={pbkeylen} is not an AES key length (16, 24 or 32)")
        latency = _int(query, "latency", -1)
        if not -1 <= latency <= 60_000:
            raise _invalid(f"latency={latency} must be 0 to 60000 (ms)")
        connect_timeout = _int(query, "conntimeo", 3000)
        if not 100 <= connect_timeout <= 60_000:
            raise _invalid(f"conntimeo={connect_timeout} must be 100 to 60000 (ms)")
        return cls(
            host=parts.hostname,
            port=port,
            streamid=streamid,
            passphrase=passphrase,
            pbkeylen=pbkeylen,
            latency_ms=None if latency < 0 else latency,
            connect_timeout_ms=connect_timeout,
        )

    def __str__(self) -> str:  # for logs and errors: never the passphrase
        return f"srt://{self.host}:{self.port}"


def _int(query: dict[str, str], key: str, default: int) -> int:
    if key not in query:
        return default
    try:
        return int(query[key])
    except ValueError:
        raise _invalid(f"{key}={query[key][:20]!r} is not a number") from None


@dataclass(frozen=True)
class SrtPullSettings:
    read_timeout: float = 10.0
    media_timeout: float = 60.0  # reference: 1 min without media → "source encoder not ready"

    @classmethod
    def from_config(cls, config: Config) -> "SrtPullSettings":
        return cls(read_timeout=config.srt.read_timeout, media_timeout=config.srt.pull_media_timeout)


class SrtPull:
    """One ``srt://`` URL ingress: connect, read, reconnect with backoff, give up after ``media_timeout``."""

    def __init__(
        self, url: SrtUrl, source: MediaSource, loop: asyncio.AbstractEventLoop, settings: SrtPullSettings
    ) -> None:
        self.url = url
        self.source = source
        self.settings = settings
        self.hand_over = HandOver(source, loop)
        self.stats = SrtStatsExport(source.resource_id)
        self.connections = 0
        self.thread = threading.Thread(target=self._run, name=f"srt-pull-{source.resource_id}", daemon=True)
        self._sock: SrtSocket | None = None
        self._lock = threading.Lock()
        self._closing = False
        self._wake = threading.Event()
        self.on_end: Callable[[], None] | None = None  # on the event loop, once the source has ended

    def start(self) -> None:
        self.source.on_close(self.close)
        self.thread.start()

    def close(self, reason: str = "") -> None:
        with self._lock:
            self._closing = True
            sock = self._sock
        self._wake.set()
        if sock is not None:
            close_soon(sock)

    def _run(self) -> None:
        label = self.source.resource_id
        failure = "no connection yet"
        backoff = BACKOFF_FIRST
        error: str | None = None
        try:
            while not self._closing:
                started = time.monotonic()
                try:
                    address = self._resolve()
                except OSError as gone:
                    error = f"cannot resolve {self.url.host}: {gone.strerror or gone}"
                    break
                sock = self._connect(address)
                if isinstance(sock, str):
                    failure = sock
                else:
                    self.connections += 1
                    log.info("SRT pull %s: connected to %s (connection %d)", label, self.url, self.connections)
                    stream = StatsStream(sock, self.stats.update)
                    error = pump(stream, self.hand_over, self.settings.read_timeout, lambda: self._closing)
                    self.stats.connection_ended()
                    if error is not None:
                        break
                    failure = "the server closed the connection"
                    if time.monotonic() - started > 2 * BACKOFF_MAX:
                        backoff = BACKOFF_FIRST  # it ran for a while: start the backoff over
                if self._closing:
                    break
                silent = time.monotonic() - self.hand_over.last_packet
                if silent >= self.settings.media_timeout:
                    error = f"{SOURCE_NOT_READY.message} ({self.url}: {failure}; no media for {silent:.0f} s)"
                    break
                log.info("SRT pull %s: %s: %s; calling again in %.1f s", label, self.url, failure, backoff)
                self._wake.wait(min(backoff, self.settings.media_timeout - silent))
                backoff = min(backoff * 2, BACKOFF_MAX)
        finally:
            self.stats.remove()
        if error is not None:
            log.warning("SRT pull %s ended: %s", label, error)
            self.hand_over.end(EndReason.ERROR, error, then=self.on_end)
        else:
            self.hand_over.end(EndReason.CLOSED if self._closing else EndReason.DISCONNECTED, None, then=self.on_end)

    def _resolve(self) -> tuple[str, int]:
        try:
            found = socket.getaddrinfo(self.url.host, self.url.port, type=socket.SOCK_DGRAM)
        except socket.gaierror as error:
            if error.errno == socket.EAI_AGAIN:  # a resolver that did not answer: worth another try
                return self.url.host, self.url.port
            raise
        return str(found[0][4][0]), self.url.port

    def _connect(self, address: tuple[str, int]) -> SrtSocket | str:
        """A connected socket, or the failure in words."""
        sock = SrtSocket.create()
        with self._lock:
            if self._closing:
                sock.close()
                return "closed"
            self._sock = sock
        try:
            sock.set(Opt.CONNTIMEO, self.url.connect_timeout_ms)
            if self.url.latency_ms is not None:
                sock.set(Opt.LATENCY, self.url.latency_ms)
            if self.url.streamid:
                sock.set(Opt.STREAMID, self.url.streamid)
            if self.url.passphrase:
                sock.set(Opt.PASSPHRASE, self.url.passphrase)
                if self.url.pbkeylen:
                    sock.set(Opt.PBKEYLEN, self.url.pbkeylen)
            sock.connect(*address)
        except SrtError as error:
            sock.close()
            return error.message if error.reject is None else str(error).removeprefix("srt_connect: ")
        except OSError as error:  # an address libsrt cannot take
            sock.close()
            return str(error)
        return sock


class SrtPullDoor:
    """``PullDoor`` for ``srt://`` URL ingresses (``session.manager.SessionManager.start_pull`` asks it)."""

    schemes = ("srt",)

    def __init__(self, settings: SrtPullSettings) -> None:
        self.settings = settings
        self.pulls: dict[str, SrtPull] = {}  # resource id → pull, while it runs

    def open(self, info: IngressInfo, resource_id: str) -> MediaSource:
        url = SrtUrl.parse(info.url)
        source = MediaSource(
            protocol=PROTOCOL, stream_key="", resource_id=resource_id, remote_address=str(url), flow=FlowPolicy.BLOCK
        )
        pull = SrtPull(url, source, asyncio.get_running_loop(), self.settings)
        self.pulls[resource_id] = pull
        pull.on_end = lambda: self._forget(resource_id)
        pull.start()
        return source

    def _forget(self, resource_id: str) -> None:
        self.pulls.pop(resource_id, None)
