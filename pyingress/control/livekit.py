"""``IngressControl`` in livekit mode: livekit-server owns the records, asked over psrpc ``IOInfo``.

- ``get_ingress_info`` → ``IOInfo.GetIngressInfo``: livekit-server's answer, or its refusal with its own code and
  words ("ingress does not exist").  While livekit-server cannot be asked (Redis away, nobody claims the request)
  a publisher is refused with ``unavailable`` and a sentence that says so.
- ``update_state`` → ``IOInfo.UpdateIngressState``.  livekit-server's refusals come back as IngressError (the
  "older version" guard, ingress.md §3).  When the bus cannot deliver, the state is kept in an outbox instead —
  newest per ingress, older ones dropped — and delivered as soon as the bus is back; the session carries on.
  A request on the bus is handled by livekit-server even when our caller has stopped waiting for it, so each one
  runs to its answer whatever happens to the caller, and an ingress's final state goes only after the ones still
  under way.  ``settled`` waits for them: the IngressHandler answers DeleteIngress only then, because
  livekit-server deletes the records next and an update of ours landing in the middle of that crashed
  livekit-server v1.13.5 (ioservice_ingress.go UpdateIngressState reads the state it has just lost).
- ``create_ingress`` → ``IOInfo.CreateIngress`` for URL ingresses (livekit-server stores them only when the worker
  says so, §4.5).  Like livekit/ingress, an ``unavailable`` answer is not fatal.
"""

import asyncio
import contextlib
import logging
from dataclasses import dataclass
from typing import Any

from livekit.protocol.ingress import IngressInfo, IngressState

from pyingress.control.errors import IngressError
from pyingress.control.psrpc import messages
from pyingress.control.psrpc.errors import PsrpcError
from pyingress.control.psrpc.methods import CREATE_INGRESS, GET_INGRESS_INFO, UPDATE_INGRESS_STATE
from pyingress.control.psrpc.redis_bus import BusUnavailable
from pyingress.control.psrpc.rpc import RpcClient

log = logging.getLogger("pyingress.control")

_ENDED = (IngressState.ENDPOINT_INACTIVE, IngressState.ENDPOINT_COMPLETE, IngressState.ENDPOINT_ERROR)

# How often queued state updates are tried again while the bus is up but livekit-server does not answer.
OUTBOX_RETRY_S = 1.0


def unreachable(exc: PsrpcError) -> IngressError:
    return IngressError("unavailable", f"livekit-server cannot be reached over redis: {exc.message}")


def as_ingress_error(exc: PsrpcError) -> IngressError:
    """livekit-server's refusal in our error type; a bus or timeout failure says that livekit-server is away."""
    if isinstance(exc, BusUnavailable) or exc.transient:
        return unreachable(exc)
    return IngressError(exc.code, exc.message)


@dataclass
class _Queued:
    state: IngressState
    attempts: int = 0


class LivekitControl:
    def __init__(self, io: RpcClient, timeout_s: float = 3.0) -> None:
        self.io = io
        self.timeout_s = timeout_s
        self._outbox: dict[str, _Queued] = {}  # ingress id → the newest state not yet delivered
        self._delivered: dict[str, tuple[int, int]] = {}  # ingress id → (started_at, updated_at) last delivered
        self._wake = asyncio.Event()
        self._flusher: asyncio.Task[None] | None = None
        self._under_way: dict[str, set[asyncio.Task[None]]] = {}  # ingress id → its requests not yet answered
        self.delivered_late = 0  # states delivered from the outbox (a metric for tests and logs)

    # -- IngressControl --

    async def get_ingress_info(self, *, stream_key: str = "", ingress_id: str = "") -> IngressInfo:
        request = messages.GetIngressInfoRequest(ingress_id=ingress_id, stream_key=stream_key)
        try:
            answer: Any = await self.io.call(
                GET_INGRESS_INFO, request, messages.GetIngressInfoResponse, timeout_s=self.timeout_s
            )
        except PsrpcError as exc:
            raise as_ingress_error(exc) from None
        info = IngressInfo()
        info.CopyFrom(answer.info)
        if not info.HasField("state"):
            info.state.SetInParent()
        return info

    async def update_state(self, ingress_id: str, state: IngressState) -> None:
        snapshot = IngressState()
        snapshot.CopyFrom(state)
        if ingress_id in self._outbox:
            self._enqueue(ingress_id, snapshot)  # keep order: a newer state must not overtake a queued older one
            return
        if snapshot.status in _ENDED:
            await self.settled(ingress_id)  # the end lands last: no "updated" after "ended" in livekit-server
        try:
            await self._deliver(ingress_id, snapshot)
        except PsrpcError as exc:
            if isinstance(exc, BusUnavailable) or exc.transient:
                log.warning("state of %s queued until livekit-server can be reached: %s", ingress_id, exc.message)
                self._enqueue(ingress_id, snapshot)
                return
            raise IngressError(exc.code, exc.message) from None

    async def create_ingress(self, info: IngressInfo) -> None:
        try:
            await self.io.call(CREATE_INGRESS, info, messages.Empty, timeout_s=self.timeout_s)
        except PsrpcError as exc:
            if exc.code == "unavailable":
                # livekit/ingress carries on too: the state updates that follow store what matters.
                log.warning("CreateIngress for %s not answered: %s", info.ingress_id, exc.message)
                return
            raise as_ingress_error(exc) from None

    async def settled(self, ingress_id: str) -> None:
        """Until every state request of ``ingress_id`` sent so far has its answer (or its timeout)."""
        under_way = self._under_way.get(ingress_id)
        if under_way:
            await asyncio.wait(set(under_way))

    # -- the outbox --

    def queued(self) -> dict[str, IngressState]:
        return {ingress_id: q.state for ingress_id, q in self._outbox.items()}

    def bus_is_back(self) -> None:
        """Called when the bus reconnects: try the outbox now."""
        self._wake.set()

    def start(self) -> None:
        self._flusher = asyncio.create_task(self._flush_forever(), name="livekit-state-outbox")

    async def close(self, flush_timeout_s: float = 2.0) -> None:
        """Deliver what is queued if the bus lets us within ``flush_timeout_s``, then stop."""
        if self._outbox:
            with contextlib.suppress(TimeoutError):
                async with asyncio.timeout(flush_timeout_s):
                    while self._outbox:
                        self._wake.set()
                        await asyncio.sleep(0.05)
        if self._outbox:
            log.warning("%d ingress states not delivered to livekit-server: %s", len(self._outbox), list(self._outbox))
        under_way = {call for calls in self._under_way.values() for call in calls}
        if under_way:
            await asyncio.wait(under_way, timeout=flush_timeout_s)
        if self._flusher is not None:
            self._flusher.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._flusher

    def _enqueue(self, ingress_id: str, state: IngressState) -> None:
        queued = self._outbox.get(ingress_id)
        if queued is not None and _version(queued.state) > _version(state):
            return
        if self._delivered.get(ingress_id, (0, 0)) >= _version(state):
            return  # something newer already reached livekit-server
        self._outbox[ingress_id] = _Queued(state)
        self._wake.set()

    async def _deliver(self, ingress_id: str, state: IngressState) -> None:
        """Send and wait for the answer; the request runs on to its answer if our caller is cancelled."""
        request = messages.UpdateIngressStateRequest(ingress_id=ingress_id, state=state)
        call = asyncio.ensure_future(self._call(ingress_id, request, state))
        under_way = self._under_way.setdefault(ingress_id, set())
        under_way.add(call)
        call.add_done_callback(lambda done: self._answered(ingress_id, done))
        await asyncio.shield(call)

    def _answered(self, ingress_id: str, call: "asyncio.Task[None]") -> None:
        under_way = self._under_way.get(ingress_id)
        if under_way is not None:
            under_way.discard(call)
            if not under_way:
                del self._under_way[ingress_id]
        if not call.cancelled():
            call.exception()  # retrieved here too: nobody may be waiting for it any more

    async def _call(self, ingress_id: str, request: Any, state: IngressState) -> None:
        await self.io.call(UPDATE_INGRESS_STATE, request, messages.Empty, timeout_s=self.timeout_s)
        self._delivered[ingress_id] = max(self._delivered.get(ingress_id, (0, 0)), _version(state))
        if state.status in _ENDED:
            self._delivered.pop(ingress_id, None)  # the session is over; forget it

    async def _flush_forever(self) -> None:
        while True:
            await self._wake.wait()
            self._wake.clear()
            while self._outbox:
                if not self.io.bus.connected:
                    break  # bus_is_back() wakes us
                ingress_id, queued = next(iter(self._outbox.items()))
                try:
                    await self._deliver(ingress_id, queued.state)
                except PsrpcError as exc:
                    if isinstance(exc, BusUnavailable) or exc.transient:
                        queued.attempts += 1
                        await asyncio.sleep(OUTBOX_RETRY_S)
                        continue
                    log.warning("queued state of %s refused by livekit-server: %s", ingress_id, exc.message)
                # Delivered or refused for good; a newer one may have replaced it meanwhile.
                if self._outbox.get(ingress_id) is queued:
                    del self._outbox[ingress_id]
                    self.delivered_late += 1
                    log.info("queued state of %s delivered to livekit-server", ingress_id)


def _version(state: IngressState) -> tuple[int, int]:
    return (state.started_at, state.updated_at)
