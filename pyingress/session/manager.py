"""Sessions by ingress: admission, one running session per ingress, reconnects and newer publishers, pulls.

A push door (RTMP, SRT, WHIP) asks ``admit_push(stream_key, input_type)`` when a publisher wants in and hands the
accepted source to ``attach``.  The first publisher of an ingress starts a session (BUFFERING, a new resource id);
a publisher for an ingress whose session still runs — a reconnect within the grace window, or a second encoder on
the same key — joins that session and the newest source wins (``slot.SourceSlot``).  Admissions of one ingress
take turns, so two publishers arriving together on one key start one session, not two.

A URL ingress starts with ``start_pull(info)``: called by the standalone API when the ingress is created, and by
psrpc ``StartIngress`` in livekit mode.  The pull door registered for the URL's scheme opens its source.
"""

import asyncio
import collections
import logging
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Protocol
from urllib.parse import urlsplit

from livekit.protocol.ingress import IngressInfo, IngressInput

from pyingress.config import Config
from pyingress.control.admission import Admission, session_cost
from pyingress.control.errors import INGRESS_DISABLED, INVALID_INGRESS_TYPE, SERVER_SHUTTING_DOWN, IngressError
from pyingress.control.ids import new_resource_id
from pyingress.control.state import IngressControl, SessionRegistry
from pyingress.ingest.source import MediaSource
from pyingress.media.pipeline import open_pipeline
from pyingress.session.session import IngressSession, PipelineFactory, SessionSettings
from pyingress.session.state import SessionState

log = logging.getLogger("pyingress.sessions")


class RoomTarget(Protocol):
    """Where sessions publish: known once the service has started (a local room server may be started first)."""

    @property
    def ws_url(self) -> str: ...


class PullDoor(Protocol):
    """A front door that fetches media itself (files and HLS over HTTP, SRT caller) for one URL ingress."""

    def open(self, info: IngressInfo, resource_id: str) -> MediaSource:
        """Start fetching ``info.url``; the source ends when the media does (raise IngressError to refuse)."""
        ...


@dataclass
class _Turn:
    lock: asyncio.Lock = field(default_factory=asyncio.Lock)
    users: int = 0


class SessionManager:
    def __init__(
        self,
        config: Config,
        control: IngressControl,
        registry: SessionRegistry,
        admission: Admission,
        room: RoomTarget,
        pull_doors: Mapping[str, PullDoor] | None = None,
        pipeline_factory: PipelineFactory = open_pipeline,
    ) -> None:
        self.config = config
        self.control = control
        self.registry = registry
        self.admission = admission
        self.room = room
        self.pull_doors = dict(pull_doors or {})  # URL scheme → door
        self._pipeline_factory = pipeline_factory
        self._settings: SessionSettings | None = None
        self._by_ingress: dict[str, IngressSession] = {}
        self._by_resource: dict[str, IngressSession] = {}  # resource id → running session
        self._admitting: dict[str, _Turn] = {}  # stream key → its admissions take turns
        self._tasks: set[asyncio.Task[None]] = set()
        self.closing = False
        self.draining = False  # SIGTERM: nothing new, running sessions go on until they end
        self.publish_outcomes: collections.Counter[tuple[int, str]] = collections.Counter()  # (input, status)

    async def start(self) -> None:
        self._settings = SessionSettings(
            ws_url=self.room.ws_url,
            api_key=self.config.api_key,
            api_secret=self.config.api_secret,
            grace_seconds=self.config.reconnect_grace_seconds,
        )

    @property
    def settings(self) -> SessionSettings:
        if self._settings is None:
            raise RuntimeError("SessionManager.start() has not run")
        return self._settings

    @property
    def pulls(self) -> bool:
        """Whether any pull door is here: without one, URL ingresses are stored but not started."""
        return bool(self.pull_doors)

    def session_of(self, ingress_id: str) -> IngressSession | None:
        session = self._by_ingress.get(ingress_id)
        return session if session is not None and session.running else None

    @property
    def accepting(self) -> bool:
        return not (self.closing or self.draining)

    async def admit_push(self, stream_key: str, input_type: int) -> str:
        """Admit a publisher; returns the resource id of the session its source must be attached to."""
        try:
            resource_id = await self._take_turn(stream_key, input_type)
        except IngressError as exc:
            self._count_publish(input_type, "4xx" if exc.http_status < 500 else "5xx")
            raise
        except Exception:
            self._count_publish(input_type, "internal")
            raise
        self._count_publish(input_type, "success")
        return resource_id

    async def check_push(self, stream_key: str, input_type: int) -> None:
        """Would ``admit_push`` take this publisher now?  Raises its IngressError if not; stores and reserves
        nothing.  For doors that must answer before their handshake completes (SRT's listen callback)."""
        if not self.accepting:
            raise SERVER_SHUTTING_DOWN
        info = await self.control.get_ingress_info(stream_key=stream_key)
        self._check_rejoin(info, input_type)
        if self.session_of(info.ingress_id) is None:  # a running session is joined (newest wins): no new cost
            self.admission.capacity.check(session_cost(info, self.admission.capacity.costs))

    def _count_publish(self, input_type: int, status: str) -> None:
        """LiveKit's publish status: success, 4xx, 5xx or internal per input type (metrics.py)."""
        self.publish_outcomes[(input_type, status)] += 1

    def running_sessions(self) -> list[IngressSession]:
        return [session for session in self._by_resource.values() if not session.done]

    async def _take_turn(self, stream_key: str, input_type: int) -> str:
        if not self.accepting:
            raise SERVER_SHUTTING_DOWN
        # One lock per key while anyone holds or waits for it (a released lock looks free before its next waiter
        # has woken, so "locked()" cannot tell when to forget it; the count can).
        turn = self._admitting.setdefault(stream_key, _Turn())
        turn.users += 1
        try:
            async with turn.lock:
                return await self._admit_push(stream_key, input_type)
        finally:
            turn.users -= 1
            if turn.users == 0:
                del self._admitting[stream_key]

    async def _admit_push(self, stream_key: str, input_type: int) -> str:
        info = await self.control.get_ingress_info(stream_key=stream_key)
        running = self.session_of(info.ingress_id)
        if running is not None:
            self._check_rejoin(info, input_type)
            log.info("ingress %s: publisher joins running session %s", info.ingress_id, running.resource_id)
            return running.resource_id
        resource_id = new_resource_id(input_type)
        admitted = await self.admission.admit_push(stream_key, input_type, resource_id, info)
        state = SessionState(admitted, resource_id, self.control, initial=admitted.state)
        if not self.accepting:  # began while we waited: admitted into a service that is stopping
            self.admission.release(resource_id)
            await state.end()
            raise SERVER_SHUTTING_DOWN
        self._start(admitted, state)
        return resource_id

    async def start_pull(self, info: IngressInfo) -> None:
        """Start a URL ingress's session now (BUFFERING stored before this returns); IngressError refuses it."""
        if not self.accepting:
            raise SERVER_SHUTTING_DOWN
        if info.input_type != IngressInput.URL_INPUT:
            raise INVALID_INGRESS_TYPE
        door = self.pull_doors.get(urlsplit(info.url).scheme.lower())
        if door is None:
            raise IngressError("invalid_argument", f"no pull door for {urlsplit(info.url).scheme or 'this'} URLs")
        resource_id = new_resource_id(IngressInput.URL_INPUT)
        self.admission.admit_pull(info, resource_id)
        try:
            await self.control.create_ingress(info)
            if not self.accepting:
                raise SERVER_SHUTTING_DOWN
            source = door.open(info, resource_id)
        except BaseException:
            self.admission.release(resource_id)
            raise
        session = self._start(info, SessionState(info, resource_id, self.control))
        session.attach(source)
        try:
            await session.state.report()  # BUFFERING, before the caller answers
        except IngressError:
            await session.stop("ingress session could not be started")
            raise

    @staticmethod
    def _check_rejoin(info: IngressInfo, input_type: int) -> None:
        if info.HasField("enabled") and not info.enabled:
            raise INGRESS_DISABLED
        if info.input_type != input_type:
            raise INVALID_INGRESS_TYPE

    def _start(self, info: IngressInfo, state: SessionState) -> IngressSession:
        session = IngressSession(info, state, self.settings, self._pipeline_factory)
        unregister = self.registry.register(info.ingress_id, session.stop)
        self._by_ingress[info.ingress_id] = session
        self._by_resource[session.resource_id] = session
        task = asyncio.create_task(session.run(), name=f"session-{session.resource_id}")
        self._tasks.add(task)

        def finished(done: asyncio.Task[None]) -> None:
            self._tasks.discard(done)
            unregister()
            self.admission.release(session.resource_id)
            del self._by_resource[session.resource_id]
            if self._by_ingress.get(info.ingress_id) is session:
                del self._by_ingress[info.ingress_id]

        task.add_done_callback(finished)
        return session

    def admitted_info(self, resource_id: str) -> IngressInfo | None:
        """The ingress of the running session ``resource_id`` (None when there is none).

        A door that must shape its answer to the ingress (WHIP: pass-through or transcoded codecs) asks between
        ``admit_push`` and ``attach``."""
        session = self._by_resource.get(resource_id)
        return session.info if session is not None and not session.done else None

    def attach(self, source: MediaSource) -> None:
        # Looked up, not taken: two publishers admitted to one session before either attached both get there,
        # and the slot lets the newer win.
        session = self._by_resource.get(source.resource_id)
        if session is None:
            source.close("ingress session ended")
            return
        session.attach(source)

    @property
    def running(self) -> int:
        return len(self._tasks)

    async def drain(self, timeout: float | None = None) -> bool:
        """Refuse every new publisher and pull (``server shutting down``) and wait until the running sessions have
        ended by themselves, at most ``timeout`` seconds; True when none is left."""
        self.draining = True
        if self._tasks:
            log.info("draining: waiting for %d running session(s) to end", len(self._tasks))
            await asyncio.wait(set(self._tasks), timeout=timeout)
        return not self._tasks

    async def close(self) -> None:
        self.closing = True
        sessions = [s for s in self._by_ingress.values() if not s.done]
        await asyncio.gather(*(s.stop("server shutting down") for s in sessions), return_exceptions=True)
