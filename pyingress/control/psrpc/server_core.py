"""The serving side of psrpc, sans-IO: requests and claim answers in, bids and responses out (protocol.md §4.4).

One ``ServerCore`` per service, with its own server id, as psrpc makes one server per generated service.  The
shell registers (method, topic) pairs and subscribes to the channels ``register`` returns: the request channel,
and the RCLAIM channel for methods that require a claim.  For each payload it first takes the queue lock when
``queue_lock_needed(channel)`` says so (psrpc takes it before decoding, on the raw payload), then calls
``receive``; the events say what happened:

- ``RequestReceived``: a live request (expired ones are dropped, as psrpc does).  The shell decodes
  ``raw_request`` — undecodable: ``respond(..., error=malformed_request)`` at once — and then either handles it
  (no claim needed) or bids with ``claim(request, affinity, now)``; a negative affinity means "not me", silently.
- ``ClaimWon``: the client picked us: run the handler and ``respond``.
- ``ClaimLost``: the client picked another server, or did not answer before the request expired.
"""

from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

from pyingress.control.psrpc import channels, messages
from pyingress.control.psrpc.envelope import Publish, open_envelope, seal
from pyingress.control.psrpc.errors import MalformedEnvelope, PsrpcError
from pyingress.control.psrpc.methods import Method


@dataclass(frozen=True)
class IncomingRequest:
    method: Method
    topic: tuple[str, ...]
    request_id: str
    client_id: str
    sent_at_ns: int
    expiry_ns: int
    raw_request: bytes
    metadata: dict[str, str]


@dataclass(frozen=True)
class RequestReceived:
    request: IncomingRequest


@dataclass(frozen=True)
class ClaimWon:
    request: IncomingRequest


@dataclass(frozen=True)
class ClaimLost:
    request: IncomingRequest
    expired: bool  # True: no ClaimResponse came before the request's expiry


ServerEvent = RequestReceived | ClaimWon | ClaimLost


@dataclass
class ServerCore:
    service: str
    server_id: str = field(default_factory=channels.new_server_id)
    dropped: int = 0  # payloads that were not what their channel carries, expired, or for no claim of ours

    def __post_init__(self) -> None:
        self._requests: dict[str, tuple[Method, tuple[str, ...]]] = {}  # REQ channel → (method, topic)
        self._claim_channels: dict[str, tuple[Method, tuple[str, ...]]] = {}  # RCLAIM channel → (method, topic)
        self._claims: dict[str, IncomingRequest] = {}  # request id → the request we bid for
        self._out: list[Publish] = []
        self._events: list[ServerEvent] = []

    # -- registration --

    def register(self, method: Method, topic: Sequence[str] = ()) -> list[str]:
        """Serve ``method`` on ``topic``; returns the channels to subscribe to."""
        if method.service != self.service:
            raise ValueError(f"{method.name} belongs to {method.service}, not {self.service}")
        key = (method, tuple(topic))
        request = channels.request_channel(self.service, method.name, topic)
        self._requests[request] = key
        subscribe = [request]
        if method.require_claim:
            claim = channels.claim_response_channel(self.service, method.name, topic)
            self._claim_channels[claim] = key
            subscribe.append(claim)
        return subscribe

    def deregister(self, method: Method, topic: Sequence[str] = ()) -> list[str]:
        """Stop serving ``method`` on ``topic``; returns the channels to unsubscribe from."""
        request = channels.request_channel(self.service, method.name, topic)
        claim = channels.claim_response_channel(self.service, method.name, topic)
        gone = [c for c in (request, claim) if self._requests.pop(c, None) or self._claim_channels.pop(c, None)]
        key = (method, tuple(topic))
        for request_id, pending in list(self._claims.items()):
            if (pending.method, pending.topic) == key:
                del self._claims[request_id]
        return gone

    def channels(self) -> list[str]:
        return [*self._requests, *self._claim_channels]

    def queue_lock_needed(self, channel: str) -> bool:
        key = self._requests.get(channel)
        return key is not None and key[0].queue

    # -- input --

    def receive(self, channel: str, payload: bytes, now_ns: int) -> None:
        try:
            if channel in self._requests:
                method, topic = self._requests[channel]
                self._on_request(method, topic, open_envelope(payload, messages.Request), now_ns)
            elif channel in self._claim_channels:
                self._on_claim_response(open_envelope(payload, messages.ClaimResponse))
            else:
                self.dropped += 1
        except MalformedEnvelope:
            self.dropped += 1

    def claim(self, request: IncomingRequest, affinity: float, now_ns: int) -> bool:
        """Bid for ``request``; False (and nothing sent) when ``affinity`` is negative or it already expired."""
        if affinity < 0 or now_ns >= request.expiry_ns:
            return False
        self._claims[request.request_id] = request
        bid: Any = messages.ClaimRequest(request_id=request.request_id, server_id=self.server_id, affinity=affinity)
        self._out.append(Publish(channels.claim_request_channel(self.service, request.client_id), seal(bid)))
        return True

    def respond(
        self,
        request: IncomingRequest,
        now_ns: int,
        raw_response: bytes = b"",
        error: PsrpcError | None = None,
    ) -> None:
        response: Any = messages.Response(request_id=request.request_id, server_id=self.server_id, sent_at=now_ns)
        if error is not None:
            response.error = error.message or error.code
            response.code = error.code or "unknown"
        else:
            response.raw_response = raw_response
        self._out.append(Publish(channels.response_channel(self.service, request.client_id), seal(response)))

    def advance(self, now_ns: int) -> None:
        """Give up the bids whose requests expired without the client's choice (psrpc waits until expiry)."""
        for request_id, request in list(self._claims.items()):
            if now_ns >= request.expiry_ns:
                del self._claims[request_id]
                self._events.append(ClaimLost(request, expired=True))

    def next_deadline(self) -> int | None:
        return min((r.expiry_ns for r in self._claims.values()), default=None)

    # -- output --

    def data_to_send(self) -> list[Publish]:
        out, self._out = self._out, []
        return out

    def events(self) -> list[ServerEvent]:
        events, self._events = self._events, []
        return events

    # -- internals --

    def _on_request(self, method: Method, topic: tuple[str, ...], request: Any, now_ns: int) -> None:
        if now_ns >= request.expiry or not request.request_id or not request.client_id:
            self.dropped += 1
            return
        incoming = IncomingRequest(
            method=method,
            topic=topic,
            request_id=request.request_id,
            client_id=request.client_id,
            sent_at_ns=request.sent_at,
            expiry_ns=request.expiry,
            raw_request=request.raw_request,
            metadata=dict(request.metadata),
        )
        self._events.append(RequestReceived(incoming))

    def _on_claim_response(self, answer: Any) -> None:
        request = self._claims.pop(answer.request_id, None)
        if request is None:
            self.dropped += 1  # a choice between other servers, or for a bid we already gave up
            return
        if answer.server_id == self.server_id:
            self._events.append(ClaimWon(request))
        else:
            self._events.append(ClaimLost(request, expired=False))
