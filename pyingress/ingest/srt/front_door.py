"""The SRT listener as a front door: encoders push MPEG-TS to an RTMP ingress's stream key over SRT.

livekit/ingress has no SRT listener (its issue #351, reference ingress.md §8); this one takes the same ingresses
as RTMP, so an encoder can choose RTMP or SRT for one stream key, and a session is the same either way (admitted
with ``RTMP_INPUT``: resource id, state, webhooks, reconnect grace and newest-wins come from the session).

Refusals happen **before the handshake completes**, in the listen callback (libsrt's receiver thread): the streamid
is parsed (streamid.py) and the stream key checked on the event loop — unknown, disabled, not an RTMP ingress, or
no capacity for a new session — while the callback waits at most ``CHECK_TIMEOUT``.  The encoder gets an SRT
rejection reason (SRT_REJX_NOTFOUND, _FORBIDDEN, …) and no session exists.  libsrt asks callbacks to be quick
(API-functions.md, srt_listen_callback: the receiver thread serves every socket on the port); the check is one
lookup in the control plane's records (SQLite, or livekit-server over Redis).

The check reserves nothing: the session is admitted (``admit_push``) once the handshake has completed, because
libsrt verifies the passphrase *after* the callback (access-control.md) and a wrong one must leave no session
behind.  A refusal in that short gap (the ingress disabled meanwhile, capacity taken) closes the connection.
"""

import asyncio
import logging

from aiohttp import web
from livekit.protocol.ingress import IngressInput

from pyingress.config import Config
from pyingress.control.errors import (
    IngressError,
)
from pyingress.ingest.door import PushSessions
from pyingress.ingest.flow import FlowPolicy
from pyingress.ingest.source import MediaSource
from pyingress.ingest.srt.feed import SrtFeed, close_soon
from pyingress.ingest.srt.libsrt import Caller, Reject, SrtError, reject_name
from pyingress.ingest.srt.listener import Accepted, ListenerOptions, SrtListener
from pyingress.ingest.srt.streamid import StreamIdError, parse_streamid

log = logging.getLogger("pyingress.srt")

PROTOCOL = "srt"
CHECK_TIMEOUT = 1.0  # s the listen callback waits for the stream key check (it holds libsrt's receiver thread)
STREAMID_HINT = "?streamid=#!::r=<stream key>,m=publish"

# LiveKit's refusal (its Twirp/psrpc code) → the SRT access-control rejection an encoder is sent.
_REJECTS = {
    "not_found": Reject.X_NOTFOUND,
    "permission_denied": Reject.X_FORBIDDEN,
    "invalid_argument": Reject.X_UNACCEPTABLE,
    "resource_exhausted": Reject.X_OVERLOAD,
    "unavailable": Reject.X_DOWN,
}


def reject_for(error: IngressError) -> Reject:
    return _REJECTS.get(error.code, Reject.X_ISE)


class SrtFrontDoor:
    def __init__(self, config: Config, sessions: PushSessions) -> None:
        self.config = config
        self.sessions = sessions
        self.listener = SrtListener(
            ListenerOptions(
                host=config.bind_address,
                port=config.srt_port,
                latency_ms=config.srt.latency,
                passphrase=config.srt.passphrase,
                pbkeylen=config.srt.pbkeylen,
            ),
            decide=self._decide,
            on_accept=self._accepted,
        )
        self.feeds: set[SrtFeed] = set()
        self._loop: asyncio.AbstractEventLoop | None = None
        self._admitting: set[asyncio.Task[None]] = set()
        self._closing = False

    @staticmethod
    def wanted(config: Config) -> bool:
        return config.srt_port > 0

    async def start(self) -> None:
        self._loop = asyncio.get_running_loop()
        try:
            await asyncio.to_thread(self.listener.open)
        except SrtError as error:
            raise OSError(f"srt_port {self.config.srt_port}: cannot listen for SRT: {error.message}") from None
        self.listener.start()
        log.info("SRT listening on %s:%d (UDP)", *self.listener.address)

    async def close(self) -> None:
        self._closing = True
        await asyncio.to_thread(self.listener.close)
        for task in list(self._admitting):
            task.cancel()
        feeds = list(self.feeds)
        for feed in feeds:
            feed.close("server shutting down", shutdown=True)
        await asyncio.to_thread(_join_all, feeds)

    def add_routes(self, app: web.Application) -> None:
        """SRT has its own (UDP) listener."""

    def addresses(self) -> list[tuple[str, str]]:
        return [("SRT", f"{self.config.default_srt_base_url}{STREAMID_HINT}")]

    # -- the listen callback: libsrt's receiver thread ---------------------------------------------------------

    def _decide(self, caller: Caller) -> int | None:
        peer = _peer(caller.address)
        if self._closing or self._loop is None:
            return Reject.X_DOWN
        try:
            request = parse_streamid(caller.streamid)
        except StreamIdError as bad:
            log.info("SRT publisher %s refused at the handshake: %s (%s)", peer, bad.message, reject_name(bad.reject))
            return bad.reject
        future = asyncio.run_coroutine_threadsafe(self._check(request.stream_key), self._loop)
        try:
            future.result(CHECK_TIMEOUT)
        except IngressError as refused:
            reject = reject_for(refused)
            log.info("SRT publisher %s refused at the handshake: %s (%s)", peer, refused.message, reject_name(reject))
            return reject
        except TimeoutError:
            future.cancel()
            log.warning("SRT publisher %s refused: the stream key check took over %g s", peer, CHECK_TIMEOUT)
            return Reject.X_OVERLOAD
        return None

    async def _check(self, stream_key: str) -> None:
        """Would ``admit_push`` take this publisher now?  The admission itself follows the handshake."""
        await self.sessions.check_push(stream_key, IngressInput.RTMP_INPUT)

    # -- accepted connections ----------------------------------------------------------------------------------

    def _accepted(self, accepted: Accepted) -> None:
        """The accept thread: the handshake completed; the event loop takes it from here."""
        assert self._loop is not None
        try:
            self._loop.call_soon_threadsafe(self._admit_soon, accepted)
        except RuntimeError:  # the loop is closed
            accepted.sock.close()

    def _admit_soon(self, accepted: Accepted) -> None:
        if self._closing:
            close_soon(accepted.sock)
            return
        task = asyncio.create_task(self._admit(accepted), name=f"srt-admit-{accepted.sock.id}")
        self._admitting.add(task)
        task.add_done_callback(self._admitting.discard)

    async def _admit(self, accepted: Accepted) -> None:
        peer = _peer(accepted.address)
        try:
            request = parse_streamid(accepted.streamid)
            resource_id = await self.sessions.admit_push(request.stream_key, IngressInput.RTMP_INPUT)
        except (StreamIdError, IngressError) as refused:
            log.info("SRT publisher %s refused after its handshake: %s", peer, refused)
            close_soon(accepted.sock)
            return
        except BaseException:
            close_soon(accepted.sock)
            raise
        assert self._loop is not None
        source = MediaSource(
            protocol=PROTOCOL,
            stream_key=request.stream_key,
            resource_id=resource_id,
            remote_address=peer,
            flow=FlowPolicy.BLOCK,  # SRT is reliable within its latency: push back rather than drop here
        )
        feed = SrtFeed(
            accepted.sock, source, self._loop, read_timeout=self.config.srt.read_timeout, on_end=self.feeds.discard
        )
        self.feeds.add(feed)
        feed.start()
        log.info("SRT publisher %s on %s → session %s", peer, _redacted(request.stream_key), resource_id)
        self.sessions.attach(source)


def _redacted(stream_key: str) -> str:
    return stream_key[:4] + "…" if len(stream_key) > 4 else "…"


def _join_all(feeds: list[SrtFeed]) -> None:
    for feed in feeds:
        feed.join(5)


def _peer(address: tuple[str, int]) -> str:
    return f"{address[0]}:{address[1]}"
