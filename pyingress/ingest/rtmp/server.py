"""The asyncio shell around :class:`RtmpConnection`: listeners (RTMP and optionally RTMPS), limits, admission.

Each accepted TCP connection runs one task: read → ``receive_data`` → act on events → write.  The server knows
nothing about ingresses or stores: on a publish it awaits ``admit(stream_key, app)``; an
:class:`~pyingress.control.errors.IngressError` from it refuses the publish with its message, anything else
admits it, and the publish is handed out as a :class:`MediaSource` by ``accept()`` / ``async for``.
"""

import asyncio
import contextlib
import functools
import logging
import socket
import ssl
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass

from livekit.protocol.ingress import IngressInput

from pyingress.control.errors import IngressError
from pyingress.control.ids import new_resource_id
from pyingress.ingest.rtmp.chunk import DEFAULT_MAX_CHUNK_SIZE, DEFAULT_MAX_MESSAGE_SIZE
from pyingress.ingest.rtmp.connection import ConnectionState, RtmpConnection
from pyingress.ingest.rtmp.errors import RtmpProtocolError
from pyingress.ingest.rtmp.events import (
    Connected,
    MediaDescription,
    MediaPacket,
    PublishEnded,
    PublishRequested,
    StreamMetadata,
)
from pyingress.ingest.source import DEFAULT_MAX_BYTES, DEFAULT_MAX_ITEMS, EndReason, FlowPolicy, MediaSource

log = logging.getLogger(__name__)

# (stream_key, app) → the session's resource id (None: the server makes a new one); raise IngressError to refuse.
AdmitCallback = Callable[[str, str], Awaitable[str | None]]
_BAD_NAME_CODES = frozenset({"not_found", "invalid_argument"})  # unknown key / missing key → NetStream.Publish.BadName


@dataclass(frozen=True)
class RtmpLimits:
    """Per-connection limits; each default is safe for an internet-facing port."""

    handshake_timeout: float = 10.0  # accept → C2 (slow-loris handshakes are cut here)
    publish_timeout: float = 30.0  # accept → publish accepted (a connection that never publishes is closed)
    read_timeout: float = 30.0  # silence from a publishing encoder (OBS sends at least audio every ~21 ms)
    admit_timeout: float = 10.0
    max_connections: int = 1000
    max_connections_per_ip: int = 32
    max_chunk_size: int = DEFAULT_MAX_CHUNK_SIZE
    max_message_size: int = DEFAULT_MAX_MESSAGE_SIZE
    read_size: int = 64 * 1024  # bytes per socket read: with the bounded source queue this is the backpressure unit
    source_max_items: int = DEFAULT_MAX_ITEMS
    source_max_bytes: int = DEFAULT_MAX_BYTES


class RtmpServer:
    """RTMP (and RTMPS) ingest listener producing one :class:`MediaSource` per accepted publish."""

    def __init__(
        self,
        admit: AdmitCallback,
        *,
        host: str = "0.0.0.0",
        port: int | None = 1935,
        tls_port: int | None = None,
        ssl_context: ssl.SSLContext | None = None,
        limits: RtmpLimits | None = None,
    ) -> None:
        if tls_port is not None and ssl_context is None:
            raise ValueError("an RTMPS port needs an ssl_context")
        self.admit = admit
        self.host = host
        self.limits = limits or RtmpLimits()
        self._requested = {"rtmp": port, "rtmps": tls_port}
        self._ssl_context = ssl_context
        self._servers: dict[str, asyncio.Server] = {}
        self._tasks: set[asyncio.Task[None]] = set()
        self._per_ip: dict[str, int] = {}
        self._sources: asyncio.Queue[MediaSource] = asyncio.Queue()
        self.ports: dict[str, int] = {}

    async def start(self) -> None:
        for scheme, port in self._requested.items():
            if port is None:
                continue
            tls = self._ssl_context if scheme == "rtmps" else None
            server = await asyncio.start_server(
                functools.partial(self._on_connection, scheme=scheme),
                self.host,
                port,
                ssl=tls,
                ssl_handshake_timeout=self.limits.handshake_timeout if tls else None,
            )
            self._servers[scheme] = server
            self.ports[scheme] = server.sockets[0].getsockname()[1]
            log.info("RTMP listening on %s://%s:%d", scheme, self.host, self.ports[scheme])

    async def close(self) -> None:
        for server in self._servers.values():
            server.close()
        for task in list(self._tasks):
            task.cancel()
        await asyncio.gather(*self._tasks, return_exceptions=True)
        for server in self._servers.values():
            await server.wait_closed()
        self._servers.clear()

    async def __aenter__(self) -> "RtmpServer":
        await self.start()
        return self

    async def __aexit__(self, *_: object) -> None:
        await self.close()

    @property
    def connection_count(self) -> int:
        return len(self._tasks)

    async def accept(self) -> MediaSource:
        """The next accepted publish."""
        return await self._sources.get()

    def __aiter__(self) -> AsyncIterator[MediaSource]:
        return self._iterate()

    async def _iterate(self) -> AsyncIterator[MediaSource]:
        while True:
            yield await self._sources.get()

    # -- per connection ---------------------------------------------------------------------------------------

    def _on_connection(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter, scheme: str) -> None:
        peer = writer.get_extra_info("peername") or ("?", 0)
        ip = str(peer[0])
        if (
            len(self._tasks) >= self.limits.max_connections
            or self._per_ip.get(ip, 0) >= self.limits.max_connections_per_ip
        ):
            log.warning("refusing RTMP connection from %s: connection limit reached", ip)
            writer.close()
            return
        self._per_ip[ip] = self._per_ip.get(ip, 0) + 1
        served = _ServedConnection(self, reader, writer, f"{ip}:{peer[1]}", scheme)
        task = asyncio.get_running_loop().create_task(served.run())
        self._tasks.add(task)
        task.add_done_callback(lambda t: self._connection_done(t, ip))

    def _connection_done(self, task: asyncio.Task[None], ip: str) -> None:
        self._tasks.discard(task)
        left = self._per_ip.get(ip, 1) - 1
        if left > 0:
            self._per_ip[ip] = left
        else:
            self._per_ip.pop(ip, None)


class _Hangup(Exception):
    """End this connection; ``error`` None means a normal end."""

    def __init__(self, reason: EndReason, error: str | None = None) -> None:
        super().__init__(error or reason.value)
        self.reason = reason
        self.error = error


class _ServedConnection:
    def __init__(
        self, server: RtmpServer, reader: asyncio.StreamReader, writer: asyncio.StreamWriter, remote: str, scheme: str
    ) -> None:
        self.server = server
        self.limits = server.limits
        self.reader = reader
        self.writer = writer
        self.remote = remote
        self.scheme = scheme
        loop = asyncio.get_running_loop()
        self.loop = loop
        self.conn = RtmpConnection(
            epoch_ms=int(loop.time() * 1000),
            max_chunk_size=self.limits.max_chunk_size,
            max_message_size=self.limits.max_message_size,
        )
        self.started = loop.time()
        self.source: MediaSource | None = None
        self.kicked: str | None = None

    async def run(self) -> None:
        outcome = _Hangup(EndReason.DISCONNECTED)
        try:
            await self._serve()
        except _Hangup as hangup:
            outcome = hangup
        except asyncio.CancelledError:
            outcome = _Hangup(EndReason.SHUTDOWN)
            raise
        except (ConnectionError, OSError, ssl.SSLError) as error:
            outcome = _Hangup(EndReason.DISCONNECTED, None)
            log.info("RTMP %s: connection lost: %s", self.remote, error)
        except Exception:
            log.exception("RTMP %s: unexpected failure", self.remote)
            outcome = _Hangup(EndReason.ERROR, "internal error")
        finally:
            if self.kicked is not None:
                outcome = _Hangup(EndReason.CLOSED)
            if outcome.error:
                log.warning("RTMP %s closed: %s", self.remote, outcome.error)
            self._end_source(outcome.reason, outcome.error)
            with contextlib.suppress(Exception):
                self.writer.close()

    def _deadline(self) -> tuple[float, str]:
        state = self.conn.state
        if state is ConnectionState.HANDSHAKE:
            what = {"waiting for C0/C1": "C0/C1", "waiting for C2": "C2"}.get(self.conn.handshake.state.value, "")
            return self.started + self.limits.handshake_timeout, (
                f"handshake not completed within {self.limits.handshake_timeout:g} s (still waiting for {what})"
            )
        if state is ConnectionState.PUBLISHING:
            return self.loop.time() + self.limits.read_timeout, f"no data for {self.limits.read_timeout:g} s"
        return self.started + self.limits.publish_timeout, f"no publish within {self.limits.publish_timeout:g} s"

    async def _serve(self) -> None:
        # Until the publish starts, ACK every read at once: encoders (ffmpeg) write the handshake's C2 and each
        # command separately without TCP_NODELAY, so each would wait for our delayed ACK (40 ms) before leaving.
        # The kernel clears the flag by itself, hence before every read.
        sock = self.writer.get_extra_info("socket")
        while True:
            if sock is not None and self.conn.state is not ConnectionState.PUBLISHING:
                with contextlib.suppress(OSError):
                    sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_QUICKACK, 1)
            deadline, why = self._deadline()
            try:
                async with asyncio.timeout_at(deadline):
                    data = await self.reader.read(self.limits.read_size)
            except TimeoutError:
                raise _Hangup(EndReason.DISCONNECTED if self.source else EndReason.ERROR, why) from None
            if self.kicked is not None:
                return
            if not data:
                if self.conn.state is ConnectionState.HANDSHAKE:
                    raise _Hangup(
                        EndReason.ERROR, f"connection closed during the handshake ({self._handshake_progress()})"
                    )
                return
            failure: RtmpProtocolError | None = None
            in_handshake = self.conn.state is ConnectionState.HANDSHAKE
            try:
                self.conn.receive_data(data)
            except RtmpProtocolError as error:
                failure = error
            if in_handshake and self.conn.handshake.complete:
                scheme = self.conn.handshake.client_digest_scheme
                log.debug("RTMP %s handshake done (%s)", self.remote, "plain" if scheme is None else f"digest {scheme}")
            await self._handle_events()
            await self._flush()
            if failure is not None:
                raise _Hangup(EndReason.ERROR, str(failure))
            if self.conn.closed:
                return

    def _handshake_progress(self) -> str:
        return self.conn.handshake.state.value

    async def _handle_events(self) -> None:
        for event in self.conn.events():
            if isinstance(event, MediaPacket | MediaDescription) and self.source is not None:
                await self.source.put(event.packet if isinstance(event, MediaPacket) else event.description)
            elif isinstance(event, StreamMetadata) and self.source is not None:
                self.source.set_metadata(event.metadata)
            elif isinstance(event, PublishRequested):
                await self._admit(event)
            elif isinstance(event, PublishEnded):
                self._end_source(EndReason.UNPUBLISHED, None)
                # The connection waits for its next publish (or its close) from now, not from when it was opened: a
                # publish longer than publish_timeout was otherwise hung up on at once, "no publish within 30 s".
                self.started = self.loop.time()
            elif isinstance(event, Connected):
                log.debug("RTMP %s connected to app %r", self.remote, event.app)

    async def _admit(self, request: PublishRequested) -> None:
        if self.conn.closed:
            return  # the same read also broke the protocol: no admission for a connection we are closing
        try:
            async with asyncio.timeout(self.limits.admit_timeout):
                resource_id = await self.server.admit(request.stream_key, request.app)
        except IngressError as refusal:
            self.conn.reject_publish(refusal.message, bad_name=refusal.code in _BAD_NAME_CODES)
            await self._flush()
            raise _Hangup(
                EndReason.ERROR, f"publish of key {request.stream_key!r} refused: {refusal.message}"
            ) from None
        except TimeoutError:
            self.conn.reject_publish("admission timed out")
            await self._flush()
            raise _Hangup(EndReason.ERROR, "admission timed out") from None
        except Exception:
            log.exception("RTMP %s: admission of key %r failed", self.remote, request.stream_key)
            self.conn.reject_publish("internal error")
            await self._flush()
            raise _Hangup(EndReason.ERROR, "admission failed: internal error") from None
        source = MediaSource(
            protocol=self.scheme,
            stream_key=request.stream_key,
            app=request.app,
            resource_id=resource_id or new_resource_id(IngressInput.RTMP_INPUT),
            remote_address=self.remote,
            # TCP: a full source stops our reads, and the encoder feels it (nothing is dropped here).
            flow=FlowPolicy.BLOCK,
            max_items=self.limits.source_max_items,
            max_bytes=self.limits.source_max_bytes,
        )
        source.on_close(self._kick)
        self.source = source
        # Hand the source out before anything can fail: whoever admitted it must also see how it ends.
        self.server._sources.put_nowait(source)
        log.info("RTMP %s publishing key %s as %s", self.remote, request.stream_key, source.resource_id)
        try:
            self.conn.accept_publish()  # may replay media the encoder sent early, which may be malformed
        except RtmpProtocolError as error:
            await self._flush()
            raise _Hangup(EndReason.ERROR, str(error)) from None

    def _kick(self, reason: str) -> None:
        """The consumer closed the source: say why, then hang up."""
        self.kicked = reason
        self.conn.close(reason)
        with contextlib.suppress(Exception):
            self.writer.write(self.conn.data_to_send())
        self.writer.close()

    async def _flush(self) -> None:
        data = self.conn.data_to_send()
        if data and not self.writer.is_closing():
            self.writer.write(data)
            await self.writer.drain()

    def _end_source(self, reason: EndReason, error: str | None) -> None:
        if self.source is not None:
            self.source.end(reason, error)
            self.source = None
