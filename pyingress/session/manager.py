"""Push sessions by ingress: admission, one running session per ingress, reconnects and newer publishers.

A front door (RTMP today, WHIP next) asks ``admit_push(stream_key, input_type)`` when a publisher wants in and
hands the accepted source to ``attach``.  The first publisher of an ingress starts a session (BUFFERING, a new
resource id); a publisher for an ingress whose session still runs — a reconnect within the grace window, or a
second encoder on the same key — joins that session and the newest source wins.
"""

import asyncio
import logging

from livekit.protocol.ingress import IngressInfo

from pyingress.control.admission import CpuAdmission, session_cost
from pyingress.config import Config
from pyingress.control.errors import INGRESS_DISABLED, INVALID_INGRESS_TYPE
from pyingress.control.ids import new_resource_id
from pyingress.control.state import IngressControl, SessionRegistry, admit_session
from pyingress.ingest.source import MediaSource
from pyingress.session.session import IngressSession, SessionSettings
from pyingress.session.state import SessionState

log = logging.getLogger("pyingress.sessions")


class SessionManager:
    def __init__(self, config: Config, control: IngressControl, registry: SessionRegistry, ws_url: str) -> None:
        self.config = config
        self.control = control
        self.registry = registry
        self.admission = CpuAdmission(config.cpu_cost)
        self.settings = SessionSettings(
            ws_url=ws_url,
            api_key=config.api_key,
            api_secret=config.api_secret,
            grace_seconds=config.reconnect_grace_seconds,
        )
        self._by_ingress: dict[str, IngressSession] = {}
        self._awaiting_source: dict[str, IngressSession] = {}  # resource id → session
        self._tasks: set[asyncio.Task[None]] = set()
        self.closing = False

    def session_of(self, ingress_id: str) -> IngressSession | None:
        session = self._by_ingress.get(ingress_id)
        return session if session is not None and not session.done else None

    async def admit_push(self, stream_key: str, input_type: int) -> str:
        """Admit a publisher; returns the resource id of the session its source must be attached to."""
        from pyingress.control.errors import SERVER_SHUTTING_DOWN

        if self.closing:
            raise SERVER_SHUTTING_DOWN
        info = await self.control.get_ingress_info(stream_key=stream_key)
        running = self.session_of(info.ingress_id)
        if running is not None:
            self._check_rejoin(info, input_type)
            self._awaiting_source[running.resource_id] = running
            log.info("ingress %s: publisher joins running session %s", info.ingress_id, running.resource_id)
            return running.resource_id
        resource_id = new_resource_id(input_type)
        cost = session_cost(info, self.config.cpu_cost)
        admitted = await admit_session(
            self.control,
            stream_key=stream_key,
            input_type=input_type,
            resource_id=resource_id,
            accept=lambda _: self.admission.check(cost),
        )
        self.admission.reserve(resource_id, cost)
        state = SessionState(admitted, resource_id, self.control, initial=admitted.state)
        session = IngressSession(admitted, state, self.settings)
        self._start(admitted, session)
        return resource_id

    @staticmethod
    def _check_rejoin(info: IngressInfo, input_type: int) -> None:
        if info.HasField("enabled") and not info.enabled:
            raise INGRESS_DISABLED
        if info.input_type != input_type:
            raise INVALID_INGRESS_TYPE

    def _start(self, info: IngressInfo, session: IngressSession) -> None:
        unregister = self.registry.register(info.ingress_id, session.stop)
        self._by_ingress[info.ingress_id] = session
        self._awaiting_source[session.resource_id] = session
        task = asyncio.create_task(session.run(), name=f"session-{session.resource_id}")
        self._tasks.add(task)

        def finished(done: asyncio.Task[None]) -> None:
            self._tasks.discard(done)
            unregister()
            self.admission.release(session.resource_id)
            self._awaiting_source.pop(session.resource_id, None)
            if self._by_ingress.get(info.ingress_id) is session:
                del self._by_ingress[info.ingress_id]

        task.add_done_callback(finished)

    def attach(self, source: MediaSource) -> None:
        session = self._awaiting_source.pop(source.resource_id, None)
        if session is None or session.done:
            source.close("ingress session ended")
            return
        session.attach(source)

    async def close(self) -> None:
        self.closing = True
        sessions = [s for s in self._by_ingress.values() if not s.done]
        await asyncio.gather(*(s.stop("server shutting down") for s in sessions), return_exceptions=True)
