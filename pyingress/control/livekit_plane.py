"""The livekit-mode control plane: pyingress as one of livekit-server's ingress workers over Redis (protocol.md §4).

livekit-server owns the records and serves the Ingress API; this worker:

- asks it through ``IOInfo`` (``LivekitControl``: GetIngressInfo, UpdateIngressState, CreateIngress);
- serves ``IngressInternal``: ``StartIngress`` for URL ingresses, bidding its spare CPU as affinity (−1 when it is
  full, shutting down, or has no pull door for the URL's scheme, so that another worker takes it), and
  ``ListActiveIngress`` (multi, topic "") with every running session;
- serves ``IngressHandler`` for each running session on the session's topics — ``UpdateIngress`` and
  ``DeleteIngress`` on its ingress id, ``DeleteWHIPResource`` on a WHIP session's resource id — subscribed when
  the session starts and dropped when it ends (§4.5 step 5, as the capture shows).  Update and Delete stop the
  session and answer its final state.

It serves no HTTP routes: the API is livekit-server's.
"""

import asyncio
import logging
from collections.abc import Callable
from typing import TYPE_CHECKING, Any
from urllib.parse import urlsplit

from aiohttp import web
from livekit.protocol.ingress import DeleteIngressRequest, IngressInfo, IngressInput, IngressState, UpdateIngressRequest

from pyingress.config import Config
from pyingress.control.admission import session_cost
from pyingress.control.errors import IngressError
from pyingress.control.livekit import LivekitControl
from pyingress.control.psrpc import messages
from pyingress.control.psrpc.errors import NOT_FOUND, PsrpcError
from pyingress.control.psrpc.methods import (
    DELETE_INGRESS,
    DELETE_WHIP_RESOURCE,
    LIST_ACTIVE_INGRESS,
    START_INGRESS,
    UPDATE_INGRESS,
)
from pyingress.control.psrpc.redis_bus import BusUnavailable, RedisBus
from pyingress.control.psrpc.rpc import RpcClient, RpcServer
from pyingress.control.state import SessionRegistry, StopSession

if TYPE_CHECKING:  # the plane is handed the manager; control/ does not import session/ at run time
    from pyingress.session.manager import SessionManager

log = logging.getLogger("pyingress.control")

# livekit/ingress's words when a topic's session is already gone (pkg/errors ErrIngressNotFound).
INGRESS_NOT_FOUND = PsrpcError(NOT_FOUND, "ingress not found")


class BusSessionRegistry(SessionRegistry):
    """The session registry that also tells the plane when an ingress's first session starts and its last ends,
    so that its IngressHandler topics live exactly as long as it runs here."""

    def __init__(self) -> None:
        super().__init__()
        self.on_started: Callable[[str], None] | None = None
        self.on_ended: Callable[[str], None] | None = None

    def register(self, ingress_id: str, stop: StopSession) -> Callable[[], None]:
        first = not self.is_active(ingress_id)
        unregister = super().register(ingress_id, stop)
        if first and self.on_started is not None:
            self.on_started(ingress_id)

        def ended() -> None:
            unregister()
            if not self.is_active(ingress_id) and self.on_ended is not None:
                self.on_ended(ingress_id)

        return ended


def open_livekit_control(config: Config) -> tuple[RedisBus, LivekitControl]:
    """The bus and the records client sessions admit and report through; nothing connects until ``start``."""
    bus = RedisBus.from_config(config.redis)
    return bus, LivekitControl(RpcClient(bus, "IOInfo"))


class LivekitControlPlane:
    def __init__(
        self,
        bus: RedisBus,
        control: LivekitControl,
        registry: BusSessionRegistry,
        sessions: "SessionManager",
    ) -> None:
        self.bus = bus
        self.control = control
        self.registry = registry
        self.sessions = sessions
        self.internal = RpcServer(bus, "IngressInternal")
        self.handler = RpcServer(bus, "IngressHandler")
        self._topics: dict[str, list[tuple[Any, tuple[str, ...]]]] = {}  # ingress id → registered (method, topic)
        registry.on_started = self._session_started
        registry.on_ended = self._session_ended

    @classmethod
    def around(
        cls, bus: RedisBus, control: LivekitControl, registry: BusSessionRegistry, sessions: "SessionManager"
    ) -> "LivekitControlPlane":
        return cls(bus, control, registry, sessions)

    def add_routes(self, app: web.Application) -> None:
        return None

    async def start(self) -> None:
        try:
            await self.bus.start()
        except BusUnavailable as exc:  # an OSError: `serve` says "cannot start" in one line
            raise ConnectionError(f"livekit mode: {exc.message}") from None
        self.bus.on_connected = self.control.bus_is_back
        self.control.io.start()
        self.control.start()
        self.internal.register(
            START_INGRESS, messages.StartIngressRequest, self._start_ingress, affinity=self._start_affinity
        )
        self.internal.register(LIST_ACTIVE_INGRESS, messages.ListActiveIngressRequest, self._list_active, topic=[""])
        await self.bus.wait_connected(10)
        await self.bus.settled()
        log.info(
            "livekit mode: ingress worker on redis (IOInfo client %s, IngressInternal server %s, IngressHandler "
            "server %s)",
            self.control.io.client_id,
            self.internal.server_id,
            self.handler.server_id,
        )

    async def close(self) -> None:
        # Stop taking new work first; sessions have been stopped by the session manager already.
        self.internal.deregister(START_INGRESS)
        await self.registry.stop_all()
        await self.control.close()
        await self.internal.close()
        await self.handler.close()
        self.control.io.close()
        await self.bus.close()

    # -- IngressInternal --

    def _start_affinity(self, request: Any) -> float:
        """Spare CPUs after this session (livekit-server picks the highest); −1: not here."""
        info: IngressInfo = request.info
        if not self.sessions.accepting or info.input_type != IngressInput.URL_INPUT:
            return -1.0  # draining (SIGTERM) or stopping: let another worker take it
        if urlsplit(info.url).scheme.lower() not in self.sessions.pull_doors:
            return -1.0
        admission = self.sessions.admission
        spare = admission.spare - session_cost(info, admission.capacity.costs)
        if spare < -1e-9:
            return -1.0
        # A bid must be strictly positive to be taken (psrpc keeps the highest above 0).
        return max(spare, 0.001)

    async def _start_ingress(self, request: Any) -> IngressInfo:
        info = IngressInfo()
        info.CopyFrom(request.info)
        running = self.sessions.session_of(info.ingress_id)
        if running is not None:
            # livekit-server retries StartIngress when an answer is late (§4.4): the same ingress, already ours.
            info.state.CopyFrom(running.state.snapshot())
            return info
        try:
            await self.sessions.start_pull(info)
        except IngressError as exc:
            raise PsrpcError(exc.code, exc.message) from None
        session = self.sessions.session_of(info.ingress_id)
        if session is not None:
            info.state.CopyFrom(session.state.snapshot())
        return info

    async def _list_active(self, request: Any) -> Any:
        answer = messages.ListActiveIngressResponse()
        for ingress_id in self.registry.active_ids():
            session = self.sessions.session_of(ingress_id)
            answer.ingress_ids.append(ingress_id)
            answer.ingress_sessions.add(ingress_id=ingress_id, resource_id=session.resource_id if session else "")
        return answer

    # -- IngressHandler, per session --

    def _session_started(self, ingress_id: str) -> None:
        # The manager records the session right after registering it: look it up once that has happened.
        asyncio.get_running_loop().call_soon(self._register_topics, ingress_id)

    def _register_topics(self, ingress_id: str) -> None:
        session = self.sessions.session_of(ingress_id)
        if session is None or ingress_id in self._topics or not self.registry.is_active(ingress_id):
            return
        topics: list[tuple[Any, tuple[str, ...]]] = [(UPDATE_INGRESS, (ingress_id,)), (DELETE_INGRESS, (ingress_id,))]
        self.handler.register(UPDATE_INGRESS, UpdateIngressRequest, self._stopper(ingress_id), topic=[ingress_id])
        self.handler.register(DELETE_INGRESS, DeleteIngressRequest, self._stopper(ingress_id), topic=[ingress_id])
        if session.info.input_type == IngressInput.WHIP_INPUT:
            resource = session.resource_id
            self.handler.register(
                DELETE_WHIP_RESOURCE,
                messages.DeleteWHIPResourceRequest,
                self._whip_deleter(ingress_id),
                topic=[resource],
            )
            topics.append((DELETE_WHIP_RESOURCE, (resource,)))
        self._topics[ingress_id] = topics

    def _session_ended(self, ingress_id: str) -> None:
        for method, topic in self._topics.pop(ingress_id, []):
            self.handler.deregister(method, topic)

    def _stopper(self, ingress_id: str) -> Callable[[Any], Any]:
        async def stop(request: Any) -> IngressState:
            session = self.sessions.session_of(ingress_id)
            if session is None:
                raise INGRESS_NOT_FOUND
            await session.stop("ingress updated" if isinstance(request, UpdateIngressRequest) else "ingress deleted")
            # livekit-server rewrites or deletes the ingress's records on our answer: nothing of ours may land after.
            await self.control.settled(ingress_id)
            return session.state.snapshot()

        return stop

    def _whip_deleter(self, ingress_id: str) -> Callable[[Any], Any]:
        async def delete(request: Any) -> Any:
            session = self.sessions.session_of(ingress_id)
            if session is None:
                raise INGRESS_NOT_FOUND
            await session.stop("WHIP resource deleted")
            return messages.Empty()

        return delete
