"""psrpc clients and servers on a ``RedisBus``: the asyncio shell around ``client_core`` / ``server_core``.

The shell does only what the cores cannot: read the clock (wall-clock ns, which psrpc compares across hosts for
expiry), publish what the cores queue, take the queue lock, run timers at the cores' deadlines, decode and encode
the typed RPC messages, and run handlers as tasks.  Every protocol decision is in the cores.
"""

import asyncio
import contextlib
import logging
import time
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass
from typing import Any, Generic, TypeVar

from google.protobuf.message import DecodeError, Message

from pyingress.control.psrpc.client_core import (
    DEFAULT_TIMEOUT_NS,
    ClientCore,
    Failed,
    MultiDone,
    MultiReplied,
    Replied,
)
from pyingress.control.psrpc.envelope import Publish, queue_lock_key
from pyingress.control.psrpc.errors import MALFORMED_REQUEST, MALFORMED_RESULT, UNKNOWN, PsrpcError
from pyingress.control.psrpc.methods import Method
from pyingress.control.psrpc.redis_bus import BusUnavailable, RedisBus
from pyingress.control.psrpc.server_core import ClaimLost, ClaimWon, IncomingRequest, RequestReceived, ServerCore

log = logging.getLogger("pyingress.psrpc")

Req = TypeVar("Req", bound=Message)
Res = TypeVar("Res", bound=Message)


def wall_ns() -> int:
    return time.time_ns()


class _Timer:
    """One loop timer at the earliest deadline a core reports."""

    def __init__(self, fire: Callable[[], None]) -> None:
        self._fire = fire
        self._handle: asyncio.TimerHandle | None = None
        self._at: int | None = None

    def set(self, deadline_ns: int | None) -> None:
        if deadline_ns == self._at:
            return
        if self._handle is not None:
            self._handle.cancel()
            self._handle = None
        self._at = deadline_ns
        if deadline_ns is not None:
            delay = max(0.0, (deadline_ns - wall_ns()) / 1e9)
            self._handle = asyncio.get_running_loop().call_later(delay, self._run)

    def _run(self) -> None:
        self._handle, self._at = None, None
        self._fire()

    def cancel(self) -> None:
        self.set(None)


class _Sender:
    """Publishes what a core queued, in order, from one task at a time."""

    def __init__(self, bus: RedisBus, on_failure: Callable[[Publish, BusUnavailable], None]) -> None:
        self._bus = bus
        self._queue: list[Publish] = []
        self._task: asyncio.Task[None] | None = None
        self._on_failure = on_failure

    def send(self, publishes: list[Publish]) -> None:
        if not publishes:
            return
        self._queue.extend(publishes)
        if self._task is None or self._task.done():
            self._task = asyncio.create_task(self._drain(), name="psrpc-publish")

    async def flush(self) -> None:
        while self._task is not None and not self._task.done():
            await asyncio.shield(self._task)

    async def _drain(self) -> None:
        while self._queue:
            publish = self._queue.pop(0)
            try:
                await self._bus.publish(publish.channel, publish.payload)
            except BusUnavailable as exc:
                self._on_failure(publish, exc)


@dataclass
class MultiAnswer(Generic[Res]):
    server_id: str
    result: Res | None
    error: PsrpcError | None


class RpcClient:
    """Calls one psrpc service (one client id), like a generated psrpc client."""

    def __init__(self, bus: RedisBus, service: str) -> None:
        self.bus = bus
        self.core = ClientCore(service)
        self._waiting: dict[str, asyncio.Future[Any]] = {}
        self._multi: dict[str, list[Any]] = {}
        self._timer = _Timer(self._on_timer)
        self._sender = _Sender(bus, self._publish_failed)

    @property
    def client_id(self) -> str:
        return self.core.client_id

    def start(self) -> None:
        for channel in self.core.subscriptions:
            self.bus.subscribe(channel, self._on_message)

    def close(self) -> None:
        for channel in self.core.subscriptions:
            self.bus.unsubscribe(channel)
        self._timer.cancel()
        for future in self._waiting.values():
            if not future.done():
                future.set_exception(PsrpcError("canceled", "client closed"))

    async def call(
        self,
        method: Method,
        request: Message,
        response_type: type[Res],
        *,
        topic: Sequence[str] = (),
        timeout_s: float = DEFAULT_TIMEOUT_NS / 1e9,
    ) -> Res:
        """One request → one response; raises PsrpcError with psrpc's code (BusUnavailable when Redis is away)."""
        if not self.bus.connected:
            raise BusUnavailable("not connected")
        future: asyncio.Future[Any] = asyncio.get_running_loop().create_future()
        request_id = self.core.send_request(
            method, request.SerializeToString(), wall_ns(), topic=topic, timeout_ns=int(timeout_s * 1e9)
        )
        self._waiting[request_id] = future
        try:
            self._pump()
            raw: bytes = await future
        finally:
            self._waiting.pop(request_id, None)
            self.core.cancel(request_id)
        try:
            return response_type.FromString(raw)
        except (DecodeError, ValueError) as exc:
            raise PsrpcError(MALFORMED_RESULT, str(exc)) from None

    async def call_multi(
        self,
        method: Method,
        request: Message,
        response_type: type[Res],
        *,
        topic: Sequence[str] = (),
        timeout_s: float = DEFAULT_TIMEOUT_NS / 1e9,
    ) -> list[MultiAnswer[Res]]:
        """Every server's answer gathered until ``timeout_s`` (a multi method such as ListActiveIngress)."""
        if not self.bus.connected:
            raise BusUnavailable("not connected")
        future: asyncio.Future[Any] = asyncio.get_running_loop().create_future()
        request_id = self.core.send_request(
            method, request.SerializeToString(), wall_ns(), topic=topic, timeout_ns=int(timeout_s * 1e9)
        )
        self._waiting[request_id] = future
        self._multi[request_id] = []
        try:
            self._pump()
            await future
            answers: list[MultiAnswer[Res]] = []
            for reply in self._multi[request_id]:
                if reply.error is not None:
                    answers.append(MultiAnswer(reply.server_id, None, reply.error))
                    continue
                try:
                    answers.append(MultiAnswer(reply.server_id, response_type.FromString(reply.raw_response), None))
                except (DecodeError, ValueError) as exc:
                    answers.append(MultiAnswer(reply.server_id, None, PsrpcError(MALFORMED_RESULT, str(exc))))
            return answers
        finally:
            self._waiting.pop(request_id, None)
            self._multi.pop(request_id, None)
            self.core.cancel(request_id)

    # -- driving the core --

    def _on_message(self, channel: str, payload: bytes) -> None:
        self.core.receive(channel, payload, wall_ns())
        self._pump()

    def _on_timer(self) -> None:
        self.core.advance(wall_ns())
        self._pump()

    def _pump(self) -> None:
        self._sender.send(self.core.data_to_send())
        for event in self.core.events():
            future = self._waiting.get(event.request_id)
            if isinstance(event, MultiReplied):
                if event.request_id in self._multi:
                    self._multi[event.request_id].append(event)
                continue
            if future is None or future.done():
                continue
            if isinstance(event, Replied):
                future.set_result(event.raw_response)
            elif isinstance(event, Failed):
                future.set_exception(event.error)
            elif isinstance(event, MultiDone):
                future.set_result(b"")
        self._timer.set(self.core.next_deadline())

    def _publish_failed(self, publish: Publish, exc: BusUnavailable) -> None:
        # The request (or our choice of server) never reached Redis: that call cannot complete.
        future = self._waiting.get(publish.request_id)
        if future is not None and not future.done():
            future.set_exception(exc)


RequestHandler = Callable[[Any], Awaitable[Message]]
AffinityFunction = Callable[[Any], float]


@dataclass
class _Registration:
    request_type: type[Message]
    handler: RequestHandler
    affinity: AffinityFunction | None


class RpcServer:
    """Serves one psrpc service (one server id), like a generated psrpc server; handlers are registered per
    (method, topic) and may come and go while it runs (IngressHandler topics live as long as their session)."""

    def __init__(self, bus: RedisBus, service: str) -> None:
        self.bus = bus
        self.core = ServerCore(service)
        self._registrations: dict[tuple[Method, tuple[str, ...]], _Registration] = {}
        self._decoded: dict[str, Any] = {}  # request id → decoded request, while its claim is pending
        self._timer = _Timer(self._on_timer)
        self._sender = _Sender(bus, self._publish_failed)
        self._tasks: set[asyncio.Task[None]] = set()

    @property
    def server_id(self) -> str:
        return self.core.server_id

    def register(
        self,
        method: Method,
        request_type: type[Req],
        handler: Callable[[Req], Awaitable[Message]],
        *,
        topic: Sequence[str] = (),
        affinity: Callable[[Req], float] | None = None,
    ) -> None:
        self._registrations[(method, tuple(topic))] = _Registration(request_type, handler, affinity)
        for channel in self.core.register(method, topic):
            self.bus.subscribe(channel, self._on_message)

    def deregister(self, method: Method, topic: Sequence[str] = ()) -> None:
        self._registrations.pop((method, tuple(topic)), None)
        for channel in self.core.deregister(method, topic):
            self.bus.unsubscribe(channel)

    async def close(self) -> None:
        for method, topic in list(self._registrations):
            self.deregister(method, topic)
        self._timer.cancel()
        for task in list(self._tasks):
            task.cancel()
        await asyncio.gather(*self._tasks, return_exceptions=True)
        with contextlib.suppress(Exception):
            await self._sender.flush()

    # -- driving the core --

    def _on_message(self, channel: str, payload: bytes) -> None:
        if self.core.queue_lock_needed(channel):
            self._spawn(self._locked_receive(channel, payload))
        else:
            self.core.receive(channel, payload, wall_ns())
            self._pump()

    async def _locked_receive(self, channel: str, payload: bytes) -> None:
        try:
            if not await self.bus.try_lock(queue_lock_key(payload)):
                return  # another server instance took this request
        except BusUnavailable:
            return
        self.core.receive(channel, payload, wall_ns())
        self._pump()

    def _on_timer(self) -> None:
        self.core.advance(wall_ns())
        self._pump()

    def _pump(self) -> None:
        for event in self.core.events():
            if isinstance(event, RequestReceived):
                self._on_request(event.request)
            elif isinstance(event, ClaimWon):
                decoded = self._decoded.pop(event.request.request_id, None)
                if decoded is not None:
                    self._spawn(self._handle(event.request, decoded))
            elif isinstance(event, ClaimLost):
                self._decoded.pop(event.request.request_id, None)
        self._sender.send(self.core.data_to_send())
        self._timer.set(self.core.next_deadline())

    def _on_request(self, request: IncomingRequest) -> None:
        registration = self._registrations.get((request.method, request.topic))
        if registration is None:
            return
        now = wall_ns()
        try:
            decoded = registration.request_type.FromString(request.raw_request)
        except (DecodeError, ValueError) as exc:
            self.core.respond(request, now, error=PsrpcError(MALFORMED_REQUEST, str(exc)))
            return
        if not request.method.require_claim:
            self._spawn(self._handle(request, decoded))
            return
        affinity = 1.0
        if registration.affinity is not None:
            try:
                affinity = registration.affinity(decoded)
            except Exception:
                log.exception("affinity of %s failed", request.method.name)
                affinity = -1.0
        if self.core.claim(request, affinity, now):
            self._decoded[request.request_id] = decoded

    async def _handle(self, request: IncomingRequest, decoded: Any) -> None:
        registration = self._registrations.get((request.method, request.topic))
        error: PsrpcError | None = None
        raw = b""
        if registration is None:
            error = PsrpcError("unimplemented", "method is not implemented")
        else:
            try:
                raw = (await registration.handler(decoded)).SerializeToString()
            except PsrpcError as exc:
                error = exc
            except Exception as exc:  # psrpc answers any other error as "unknown" with its text
                log.exception("psrpc %s.%s failed", request.method.service, request.method.name)
                error = PsrpcError(UNKNOWN, str(exc) or type(exc).__name__)
        self.core.respond(request, wall_ns(), raw_response=raw, error=error)
        self._pump()

    def _spawn(self, coro: Awaitable[None]) -> None:
        task: asyncio.Task[None] = asyncio.ensure_future(coro)
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    def _publish_failed(self, publish: Publish, exc: BusUnavailable) -> None:
        log.warning("psrpc %s: could not publish on %s: %s", self.core.service, publish.channel, exc.message)
