"""Every psrpc flow through the sans-IO cores on an in-memory bus with a test-driven clock (protocol.md §4.4):
claim without affinity (first bid wins), claim with affinity (highest after the short circuit), queue lock, no
server, no acceptable bid, expiry on both sides, a malformed request, multi, and garbage on every channel."""

from typing import Any

from pyingress.control.psrpc import messages
from pyingress.control.psrpc.client_core import ClientCore, Failed, MultiDone, MultiReplied, Replied, Selection
from pyingress.control.psrpc.envelope import open_envelope, seal
from pyingress.control.psrpc.errors import PsrpcError
from pyingress.control.psrpc.methods import (
    DELETE_INGRESS,
    GET_INGRESS_INFO,
    LIST_ACTIVE_INGRESS,
    START_INGRESS,
    Method,
)
from pyingress.control.psrpc.server_core import ClaimLost, ClaimWon, RequestReceived, ServerCore
from tests.control.psrpc.sim import SimBus, SimServer

NO_QUEUE = Method("IOInfo", "GetIngressInfo", queue=False)  # same flags as GET_INGRESS_INFO but no lock


def _bus_with(method: Method, *affinities: float, topic: tuple[str, ...] = ()) -> tuple[SimBus, ClientCore]:
    bus = SimBus()
    client = bus.add_client(ClientCore(method.service))
    for affinity in affinities:
        bus.add_server(SimServer(ServerCore(method.service), affinity=affinity), method, topic)
    return bus, client


def _only(events: list[Any], kind: type) -> Any:
    assert len(events) == 1 and isinstance(events[0], kind), events
    return events[0]


def test_without_affinity_the_first_bid_wins_at_once() -> None:
    bus, client = _bus_with(NO_QUEUE, 1.0, 1.0)
    request_id = client.send_request(NO_QUEUE, b"key", bus.now_ns)
    bus.run()
    replied = _only(bus.client_events, Replied)
    assert replied.request_id == request_id and replied.raw_response == b"ok:key"
    first, second = bus.servers
    assert replied.server_id == first.core.server_id and first.handled == [request_id]
    # The other bid lost: the choice on RCLAIM named someone else.
    assert second.handled == [] and second.lost()[0].expired is False
    channels = [p.channel for p in bus.published]
    assert channels == [
        "IOInfo|GetIngressInfo|REQ",
        f"IOInfo|{client.client_id}|CLAIM",
        f"IOInfo|{client.client_id}|CLAIM",
        "IOInfo|GetIngressInfo|RCLAIM",
        f"IOInfo|{client.client_id}|RES",
    ]
    assert client.pending() == 0 and client.next_deadline() is None


def test_a_queue_method_is_taken_by_the_one_server_that_wins_the_lock() -> None:
    bus, client = _bus_with(GET_INGRESS_INFO, 1.0, 1.0, 1.0)
    client.send_request(GET_INGRESS_INFO, b"key", bus.now_ns)
    bus.run()
    _only(bus.client_events, Replied)
    bids = [p for p in bus.published if p.channel.endswith("|CLAIM")]
    assert len(bids) == 1 and len(bus.locks) == 1
    assert [len(s.seen) for s in bus.servers] == [2, 0, 0]  # RequestReceived, ClaimWon


def test_with_affinity_the_highest_bid_wins_200_ms_after_the_first() -> None:
    bus, client = _bus_with(START_INGRESS, 0.5, 2.0, -1.0, 1.5)
    request_id = client.send_request(START_INGRESS, b"info", bus.now_ns)
    bus.run()
    assert bus.client_events == [] and client.next_deadline() == bus.now_ns + 200 * 1_000_000
    bus.advance(199)
    assert bus.client_events == []
    bus.advance(1)
    replied = _only(bus.client_events, Replied)
    claims = client.claim_channel
    low, high, negative, middle = bus.servers
    assert replied.server_id == high.core.server_id and high.handled == [request_id]
    assert not negative.lost() and [type(e) for e in negative.seen] == [RequestReceived]  # never bid
    assert low.lost() and middle.lost() and not low.handled and not middle.handled
    bids: list[Any] = [open_envelope(p.payload, messages.ClaimRequest) for p in bus.published if p.channel == claims]
    assert sorted(b.affinity for b in bids) == [0.5, 1.5, 2.0]


def test_with_affinity_only_negative_bidders_is_no_response_after_one_second() -> None:
    bus, client = _bus_with(START_INGRESS, -1.0, -1.0)
    client.send_request(START_INGRESS, b"info", bus.now_ns)
    bus.run()
    bus.advance(999)
    assert bus.client_events == []
    bus.advance(1)
    failed = _only(bus.client_events, Failed)
    assert (failed.error.code, failed.error.message) == ("unavailable", "no response from servers")


def test_bids_of_zero_affinity_are_not_acceptable() -> None:
    bus, client = _bus_with(START_INGRESS, 0.0, 0.0)
    client.send_request(START_INGRESS, b"info", bus.now_ns)
    bus.run()
    bus.advance(1000)
    failed = _only(bus.client_events, Failed)
    assert failed.error.message == "no servers available (received 2 responses)"


def test_minimum_and_maximum_affinity() -> None:
    bus, client = _bus_with(START_INGRESS, 0.4, 0.9, 3.0)
    client.send_request(START_INGRESS, b"x", bus.now_ns, selection=Selection(accept_first=False, maximum_affinity=3))
    bus.run()
    # The third bid reaches the maximum: taken at once, without waiting.
    assert _only(bus.client_events, Replied).server_id == bus.servers[2].core.server_id
    bus, client = _bus_with(START_INGRESS, 0.4, 0.6)
    client.send_request(START_INGRESS, b"x", bus.now_ns, selection=Selection(minimum_affinity=0.5))
    bus.run()
    assert _only(bus.client_events, Replied).server_id == bus.servers[1].core.server_id


def test_nobody_listening_is_unavailable_after_the_selection_timeout() -> None:
    bus, client = _bus_with(GET_INGRESS_INFO)
    client.send_request(GET_INGRESS_INFO, b"key", bus.now_ns)
    bus.run()
    bus.advance(1000)
    assert _only(bus.client_events, Failed).error.code == "unavailable"


def test_a_claimed_request_without_an_answer_times_out_and_a_late_answer_is_dropped() -> None:
    bus, client = _bus_with(GET_INGRESS_INFO, 1.0)
    server = bus.servers[0]
    server.handler = lambda raw: b""
    server.react = lambda now_ns: server.seen.extend(server.core.events())  # type: ignore[method-assign]
    request_id = client.send_request(GET_INGRESS_INFO, b"key", bus.now_ns, timeout_ns=500 * 1_000_000)
    bus.run()
    (received,) = [e for e in server.seen if isinstance(e, RequestReceived)]
    server.core.claim(received.request, 1.0, bus.now_ns)
    bus.run()
    assert any(isinstance(e, ClaimWon) for e in server.seen) and bus.client_events == []
    bus.advance(500)
    failed = _only(bus.client_events, Failed)
    assert (failed.request_id, failed.error.code, failed.error.message) == (
        request_id,
        "deadline_exceeded",
        "request timed out",
    )
    server.core.respond(received.request, bus.now_ns, raw_response=b"late")
    bus.run()
    assert len(bus.client_events) == 1 and client.dropped == 1


def test_a_server_drops_an_expired_request_and_gives_up_a_bid_at_expiry() -> None:
    bus = SimBus()
    server = SimServer(ServerCore("IOInfo"))
    bus.add_server(server, GET_INGRESS_INFO)
    request: Any = messages.Request(
        request_id="REQ_a", client_id="CLI_a", sent_at=bus.now_ns, expiry=bus.now_ns, raw_request=b"k"
    )
    server.core.receive("IOInfo|GetIngressInfo|REQ", seal(request), bus.now_ns)
    assert server.core.events() == [] and server.core.dropped == 1
    request.expiry = bus.now_ns + 300 * 1_000_000
    server.core.receive("IOInfo|GetIngressInfo|REQ", seal(request), bus.now_ns)
    (received,) = server.core.events()
    assert isinstance(received, RequestReceived)
    assert server.core.claim(received.request, 1.0, bus.now_ns)
    assert server.core.next_deadline() == request.expiry
    server.core.advance(request.expiry - 1)
    assert server.core.events() == []
    server.core.advance(request.expiry)
    (lost,) = server.core.events()
    assert isinstance(lost, ClaimLost) and lost.expired
    assert not server.core.claim(received.request, 1.0, request.expiry)  # too late to bid


def test_a_malformed_request_is_answered_at_once_and_reported_when_selection_ends() -> None:
    bus, client = _bus_with(GET_INGRESS_INFO, 1.0)
    client.send_request(GET_INGRESS_INFO, b"\xff\xff", bus.now_ns)
    bus.run()
    assert bus.client_events == [] and not any(p.channel.endswith("|CLAIM") for p in bus.published)
    bus.advance(1000)
    failed = _only(bus.client_events, Failed)
    assert (failed.error.code, failed.error.message) == ("malformed_request", "proto: cannot parse")


def test_an_error_answer_after_the_claim_fails_the_request_with_the_servers_code() -> None:
    bus, client = _bus_with(DELETE_INGRESS, 1.0, topic=("IN_x",))
    server = bus.servers[0]

    def refuse(raw: bytes) -> bytes:
        raise AssertionError("not called")

    server.handler = refuse
    server.react = lambda now_ns: [  # type: ignore[method-assign]
        server.core.claim(e.request, 1.0, now_ns)
        if isinstance(e, RequestReceived)
        else server.core.respond(e.request, now_ns, error=_not_found())
        for e in server.core.events()
        if isinstance(e, RequestReceived | ClaimWon)
    ]
    client.send_request(DELETE_INGRESS, b"", bus.now_ns, topic=["IN_x"])
    bus.run()
    failed = _only(bus.client_events, Failed)
    assert (failed.error.code, failed.error.message) == ("not_found", "ingress does not exist")
    assert any(p.channel == "IngressHandler|DeleteIngress|IN_x|RCLAIM" for p in bus.published)


def _not_found() -> PsrpcError:
    return PsrpcError("not_found", "ingress does not exist")


def test_multi_gathers_every_server_until_the_timeout() -> None:
    bus, client = _bus_with(LIST_ACTIVE_INGRESS, 1.0, 1.0, topic=("",))
    request_id = client.send_request(LIST_ACTIVE_INGRESS, b"", bus.now_ns, topic=[""])
    bus.run()
    replies = [e for e in bus.client_events if isinstance(e, MultiReplied)]
    assert {r.server_id for r in replies} == {s.core.server_id for s in bus.servers}
    assert all(r.error is None and r.raw_response == b"ok:" and r.request_id == request_id for r in replies)
    request: Any = open_envelope(bus.published[0].payload, messages.Request)
    assert request.multi and bus.published[0].channel == "IngressInternal|ListActiveIngress|REQ"
    assert not bus.locks  # not a queue method
    bus.advance(3000)
    assert isinstance(bus.client_events[-1], MultiDone) and client.pending() == 0


def test_late_bids_and_answers_for_other_requests_are_dropped() -> None:
    bus, client = _bus_with(NO_QUEUE, 1.0)
    client.send_request(NO_QUEUE, b"key", bus.now_ns)
    bus.run()
    claim: Any = messages.ClaimRequest(request_id="REQ_unknown", server_id="SRV_x", affinity=1)
    client.receive(client.claim_channel, seal(claim), bus.now_ns)
    response: Any = messages.Response(request_id="REQ_unknown", server_id="SRV_x")
    client.receive(client.response_channel, seal(response), bus.now_ns)
    assert client.dropped == 2 and len(bus.client_events) == 1


def test_garbage_on_every_channel_is_dropped_and_counted() -> None:
    bus, client = _bus_with(DELETE_INGRESS, 1.0, topic=("IN_x",))
    server = bus.servers[0].core
    junk = [b"", b"\x00", b"\n\x03abc", seal(messages.ClaimResponse(request_id="a")), b"\xff" * 10]
    for payload in junk:
        client.receive(client.response_channel, payload, bus.now_ns)
        client.receive(client.claim_channel, payload, bus.now_ns)
        client.receive("Other|channel", payload, bus.now_ns)
        for channel in server.channels():
            server.receive(channel, payload, bus.now_ns)
    assert client.events() == [] and server.events() == []
    assert client.dropped == 3 * len(junk)
    assert server.dropped == 2 * len(junk)


def test_deregistering_a_topic_forgets_its_channels_and_bids() -> None:
    core = ServerCore("IngressHandler")
    subscribe = core.register(DELETE_INGRESS, ["IN_x"])
    assert subscribe == ["IngressHandler|DeleteIngress|IN_x|REQ", "IngressHandler|DeleteIngress|IN_x|RCLAIM"]
    assert core.queue_lock_needed(subscribe[0]) and not core.queue_lock_needed(subscribe[1])
    now = 10**18
    request: Any = messages.Request(request_id="REQ_a", client_id="CLI_a", expiry=now + 10**9)
    core.receive(subscribe[0], seal(request), now)
    (received,) = core.events()
    assert isinstance(received, RequestReceived) and received.request.topic == ("IN_x",)
    core.claim(received.request, 1.0, now)
    assert core.deregister(DELETE_INGRESS, ["IN_x"]) == subscribe
    assert core.channels() == [] and core.next_deadline() is None
