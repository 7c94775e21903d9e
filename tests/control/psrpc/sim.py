"""An in-memory Redis pub/sub for the sans-IO cores: publishes delivered in order to every subscriber of the exact
channel, SET NX queue locks, and a clock the test moves.  Servers answer with a handler and bid with an affinity."""

from collections import defaultdict
from collections.abc import Callable
from dataclasses import dataclass, field

from pyingress.control.psrpc.client_core import ClientCore, ClientEvent
from pyingress.control.psrpc.envelope import Publish, queue_lock_key
from pyingress.control.psrpc.errors import MALFORMED_REQUEST, PsrpcError
from pyingress.control.psrpc.methods import Method
from pyingress.control.psrpc.server_core import (
    ClaimLost,
    ClaimWon,
    IncomingRequest,
    RequestReceived,
    ServerCore,
    ServerEvent,
)

MS = 1_000_000

Handler = Callable[[bytes], bytes]


@dataclass
class SimServer:
    core: ServerCore
    affinity: float = 1.0
    handler: Handler = lambda raw: b"ok:" + raw
    decodable: Callable[[bytes], bool] = lambda raw: not raw.startswith(b"\xff")
    seen: list[ServerEvent] = field(default_factory=list)
    handled: list[str] = field(default_factory=list)

    def react(self, now_ns: int) -> None:
        for event in self.core.events():
            self.seen.append(event)
            if isinstance(event, RequestReceived):
                self._on_request(event.request, now_ns)
            elif isinstance(event, ClaimWon):
                self._handle(event.request, now_ns)

    def _on_request(self, request: IncomingRequest, now_ns: int) -> None:
        if not self.decodable(request.raw_request):
            self.core.respond(request, now_ns, error=PsrpcError(MALFORMED_REQUEST, "proto: cannot parse"))
        elif not request.method.require_claim:
            self._handle(request, now_ns)
        else:
            self.core.claim(request, self.affinity, now_ns)

    def _handle(self, request: IncomingRequest, now_ns: int) -> None:
        self.handled.append(request.request_id)
        self.core.respond(request, now_ns, raw_response=self.handler(request.raw_request))

    def lost(self) -> list[ClaimLost]:
        return [e for e in self.seen if isinstance(e, ClaimLost)]


@dataclass
class SimBus:
    now_ns: int = 1_700_000_000_000_000_000
    subscribers: dict[str, list[object]] = field(default_factory=lambda: defaultdict(list))
    locks: set[str] = field(default_factory=set)
    published: list[Publish] = field(default_factory=list)
    clients: list[ClientCore] = field(default_factory=list)
    servers: list[SimServer] = field(default_factory=list)
    client_events: list[ClientEvent] = field(default_factory=list)

    def add_client(self, core: ClientCore) -> ClientCore:
        self.clients.append(core)
        for channel in core.subscriptions:
            self.subscribers[channel].append(core)
        return core

    def add_server(self, server: SimServer, method: Method, topic: tuple[str, ...] = ()) -> SimServer:
        if server not in self.servers:
            self.servers.append(server)
        for channel in server.core.register(method, topic):
            self.subscribers[channel].append(server)
        return server

    def run(self) -> None:
        """Deliver until nothing is left to send."""
        while True:
            outgoing = [p for c in self.clients for p in c.data_to_send()]
            outgoing += [p for s in self.servers for p in s.core.data_to_send()]
            if not outgoing:
                break
            for publish in outgoing:
                self.published.append(publish)
                self._deliver(publish)
            self._collect()

    def advance(self, ms: float) -> None:
        """Move the clock, firing every deadline on the way in order."""
        end = self.now_ns + int(ms * MS)
        while True:
            deadlines = [d for c in self.clients if (d := c.next_deadline()) is not None]
            deadlines += [d for s in self.servers if (d := s.core.next_deadline()) is not None]
            due = [d for d in deadlines if d <= end]
            if not due:
                break
            self.now_ns = max(self.now_ns, min(due))
            for client in self.clients:
                client.advance(self.now_ns)
            for server in self.servers:
                server.core.advance(self.now_ns)
            self._collect()
            self.run()
        self.now_ns = end

    def _deliver(self, publish: Publish) -> None:
        for subscriber in list(self.subscribers.get(publish.channel, [])):
            if isinstance(subscriber, SimServer):
                core = subscriber.core
                if core.queue_lock_needed(publish.channel):
                    key = queue_lock_key(publish.payload)
                    if key in self.locks:
                        continue
                    self.locks.add(key)
                core.receive(publish.channel, publish.payload, self.now_ns)
                subscriber.react(self.now_ns)
            elif isinstance(subscriber, ClientCore):
                subscriber.receive(publish.channel, publish.payload, self.now_ns)

    def _collect(self) -> None:
        for client in self.clients:
            self.client_events.extend(client.events())
        for server in self.servers:
            server.react(self.now_ns)
