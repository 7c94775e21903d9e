"""The calling side of psrpc, sans-IO: requests out, claims and responses in, time passed in (protocol.md §4.4).

One ``ClientCore`` per service, as psrpc makes one client per generated service: it owns a client id and listens
on ``<Service>|<client id>|RES`` and ``|CLAIM``.  A request goes through these phases, each with a deadline the
shell learns from ``next_deadline()`` and hands back through ``advance(now)``:

- claiming (methods that require a claim): servers bid with ClaimRequest{affinity}.  Without affinity the first
  bid wins at once; with affinity bids are collected until 1 s after the request (psrpc's SelectionTimeout) or
  200 ms after the first bid (ShortCircuit), and the highest strictly positive affinity wins.  The winner is
  named in a ClaimResponse on the method's RCLAIM channel.  No acceptable bid: ``unavailable`` — "no response
  from servers", or "no servers available (received N responses)" when bids came but none was acceptable; an
  error response that arrived meanwhile (a malformed request) is the answer instead.
- awaiting the response until the request's timeout: ``deadline_exceeded`` "request timed out" after it.
- multi requests skip the claim and gather every server's response until the timeout.

Nothing is read from a clock or a socket here: ``receive(channel, payload, now_ns)`` and ``advance(now_ns)`` feed
it, ``data_to_send()`` and ``events()`` drain it.  Bytes that are not what a channel carries are dropped and counted.
"""

import enum
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

from pyingress.control.psrpc import channels, messages
from pyingress.control.psrpc.envelope import Publish, open_envelope, seal
from pyingress.control.psrpc.errors import (
    MalformedEnvelope,
    PsrpcError,
    no_response,
    no_servers_available,
    timed_out,
)
from pyingress.control.psrpc.methods import Method

MS = 1_000_000
DEFAULT_TIMEOUT_NS = 3000 * MS  # psrpc DefaultClientTimeout
SELECTION_TIMEOUT_NS = 1000 * MS  # DefaultAffinityTimeout
SHORT_CIRCUIT_NS = 200 * MS  # DefaultAffinityShortCircuit


@dataclass(frozen=True)
class Selection:
    """How a server is picked from the bids (psrpc SelectionOpts with its defaults)."""

    timeout_ns: int = SELECTION_TIMEOUT_NS
    short_circuit_ns: int = 0
    accept_first: bool = True
    minimum_affinity: float = 0.0
    maximum_affinity: float = 0.0

    @classmethod
    def for_method(cls, method: Method) -> "Selection":
        if method.affinity:
            return cls(short_circuit_ns=SHORT_CIRCUIT_NS, accept_first=False)
        return cls()


# -- events --


@dataclass(frozen=True)
class Replied:
    request_id: str
    server_id: str
    raw_response: bytes


@dataclass(frozen=True)
class Failed:
    request_id: str
    error: PsrpcError


@dataclass(frozen=True)
class MultiReplied:
    """One server's answer to a multi request: ``error`` or ``raw_response``."""

    request_id: str
    server_id: str
    raw_response: bytes
    error: PsrpcError | None


@dataclass(frozen=True)
class MultiDone:
    request_id: str


ClientEvent = Replied | Failed | MultiReplied | MultiDone


class Phase(enum.Enum):
    CLAIMING = "claiming"
    AWAITING = "awaiting"
    MULTI = "multi"


@dataclass
class _Pending:
    method: Method
    topic: tuple[str, ...]
    phase: Phase
    deadline_ns: int
    selection: Selection
    selection_deadline_ns: int
    short_deadline_ns: int | None = None
    best_server: str = ""
    best_affinity: float = 0.0
    claims: int = 0
    error: PsrpcError | None = None
    server_id: str = ""


@dataclass
class ClientCore:
    service: str
    client_id: str = field(default_factory=channels.new_client_id)
    dropped: int = 0  # payloads that were not what their channel carries, or for no request of ours

    def __post_init__(self) -> None:
        self._pending: dict[str, _Pending] = {}
        self._out: list[Publish] = []
        self._events: list[ClientEvent] = []

    @property
    def response_channel(self) -> str:
        return channels.response_channel(self.service, self.client_id)

    @property
    def claim_channel(self) -> str:
        return channels.claim_request_channel(self.service, self.client_id)

    @property
    def subscriptions(self) -> tuple[str, str]:
        """What the shell subscribes to once, before the first request (§4.4 step 1)."""
        return (self.response_channel, self.claim_channel)

    def pending(self) -> int:
        return len(self._pending)

    def send_request(
        self,
        method: Method,
        raw_request: bytes,
        now_ns: int,
        *,
        topic: Sequence[str] = (),
        timeout_ns: int = DEFAULT_TIMEOUT_NS,
        selection: Selection | None = None,
        metadata: dict[str, str] | None = None,
        request_id: str = "",
    ) -> str:
        """Queue ``raw_request`` (the serialized RPC request) for ``method``; returns the request id to wait on."""
        if method.service != self.service:
            raise ValueError(f"{method.name} belongs to {method.service}, not {self.service}")
        request_id = request_id or channels.new_request_id()
        request: Any = messages.Request(
            request_id=request_id,
            client_id=self.client_id,
            sent_at=now_ns,
            expiry=now_ns + timeout_ns,
            multi=method.multi,
            raw_request=raw_request,
        )
        request.metadata.update(metadata or {})
        chosen = selection or Selection.for_method(method)
        if method.multi:
            phase = Phase.MULTI
        elif method.require_claim:
            phase = Phase.CLAIMING
        else:
            phase = Phase.AWAITING
        self._pending[request_id] = _Pending(
            method=method,
            topic=tuple(topic),
            phase=phase,
            deadline_ns=now_ns + timeout_ns,
            selection=chosen,
            selection_deadline_ns=now_ns + chosen.timeout_ns if chosen.timeout_ns > 0 else now_ns + timeout_ns,
        )
        self._out.append(Publish(channels.request_channel(self.service, method.name, topic), seal(request), request_id))
        return request_id

    def cancel(self, request_id: str) -> None:
        """Forget a request (its caller went away); late bids and answers for it are dropped."""
        self._pending.pop(request_id, None)

    # -- input --

    def receive(self, channel: str, payload: bytes, now_ns: int) -> None:
        try:
            if channel == self.response_channel:
                self._on_response(open_envelope(payload, messages.Response), now_ns)
            elif channel == self.claim_channel:
                self._on_claim(open_envelope(payload, messages.ClaimRequest), now_ns)
            else:
                self.dropped += 1
        except MalformedEnvelope:
            self.dropped += 1

    def advance(self, now_ns: int) -> None:
        """Act on every deadline at or before ``now_ns``."""
        for request_id, p in list(self._pending.items()):
            if p.phase is Phase.CLAIMING:
                ends = min(p.selection_deadline_ns, p.deadline_ns)
                if p.short_deadline_ns is not None:
                    ends = min(ends, p.short_deadline_ns)
                if now_ns >= ends:
                    self._select(request_id, p)
            if p.phase is Phase.AWAITING and now_ns >= p.deadline_ns:
                self._finish(request_id, Failed(request_id, timed_out()))
            elif p.phase is Phase.MULTI and now_ns >= p.deadline_ns:
                self._finish(request_id, MultiDone(request_id))

    def next_deadline(self) -> int | None:
        """The earliest time ``advance`` has something to do, or None with nothing pending."""
        times: list[int] = []
        for p in self._pending.values():
            times.append(p.deadline_ns)
            if p.phase is Phase.CLAIMING:
                times.append(p.selection_deadline_ns)
                if p.short_deadline_ns is not None:
                    times.append(p.short_deadline_ns)
        return min(times, default=None)

    # -- output --

    def data_to_send(self) -> list[Publish]:
        out, self._out = self._out, []
        return out

    def events(self) -> list[ClientEvent]:
        events, self._events = self._events, []
        return events

    # -- internals --

    def _on_response(self, response: Any, now_ns: int) -> None:
        p = self._pending.get(response.request_id)
        if p is None:
            self.dropped += 1
            return
        error = PsrpcError(response.code or "unknown", response.error) if response.error else None
        if p.phase is Phase.MULTI:
            self._events.append(MultiReplied(response.request_id, response.server_id, response.raw_response, error))
        elif p.phase is Phase.CLAIMING:
            # Only a server that refused the request before claiming answers now (malformed request); psrpc keeps
            # its error for when selection ends without a server, and drops a success that came unclaimed.
            if error is not None:
                p.error = error
        elif error is not None:
            self._finish(response.request_id, Failed(response.request_id, error))
        else:
            self._finish(response.request_id, Replied(response.request_id, response.server_id, response.raw_response))

    def _on_claim(self, claim: Any, now_ns: int) -> None:
        p = self._pending.get(claim.request_id)
        if p is None or p.phase is not Phase.CLAIMING:
            self.dropped += 1
            return
        p.claims += 1
        s = p.selection
        affinity = float(claim.affinity)
        if s.minimum_affinity > 0 and affinity < s.minimum_affinity:
            return
        if s.accept_first or (s.maximum_affinity > 0 and affinity >= s.maximum_affinity):
            p.best_server = claim.server_id
            self._choose(claim.request_id, p)
            return
        if affinity > p.best_affinity:
            p.best_server, p.best_affinity = claim.server_id, affinity
        if s.short_circuit_ns > 0 and p.short_deadline_ns is None:
            p.short_deadline_ns = now_ns + s.short_circuit_ns

    def _select(self, request_id: str, p: _Pending) -> None:
        if p.best_server:
            self._choose(request_id, p)
        elif p.error is not None:
            self._finish(request_id, Failed(request_id, p.error))
        elif p.claims > 0:
            self._finish(request_id, Failed(request_id, no_servers_available(p.claims)))
        else:
            self._finish(request_id, Failed(request_id, no_response()))

    def _choose(self, request_id: str, p: _Pending) -> None:
        p.phase = Phase.AWAITING
        p.server_id = p.best_server
        claim: Any = messages.ClaimResponse(request_id=request_id, server_id=p.best_server)
        channel = channels.claim_response_channel(self.service, p.method.name, p.topic)
        self._out.append(Publish(channel, seal(claim), request_id))

    def _finish(self, request_id: str, event: ClientEvent) -> None:
        self._pending.pop(request_id, None)
        self._events.append(event)
