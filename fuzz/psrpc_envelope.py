"""Fuzz the psrpc cores with what Redis may deliver: any bytes on any channel we listen on.

The first byte picks the channel (a client's RES or CLAIM, a server's REQ or RCLAIM, or one nobody registered);
the rest is the payload.  ``open_envelope`` may raise only MalformedEnvelope; the cores' ``receive`` never raises
(bad payloads are dropped and counted), and whatever they accept leaves them consistent: the client still times
its request out, the server's bids still expire.

Long runs:   python -m pip install atheris
             python fuzz/psrpc_envelope.py tests/control/psrpc/corpus/envelope
CI runs the same target with hypothesis (tests/control/psrpc/test_fuzz.py).
"""

import contextlib
import sys

from pyingress.control.psrpc import messages
from pyingress.control.psrpc.client_core import ClientCore
from pyingress.control.psrpc.envelope import open_envelope
from pyingress.control.psrpc.errors import MalformedEnvelope
from pyingress.control.psrpc.methods import DELETE_INGRESS, GET_INGRESS_INFO, START_INGRESS
from pyingress.control.psrpc.server_core import ClaimLost, RequestReceived, ServerCore

NOW = 1_795_798_858_400_000_000  # the capture's time: its requests are still live
SECOND = 1_000_000_000
TYPES = (messages.Request, messages.Response, messages.ClaimRequest, messages.ClaimResponse)


def check(data: bytes) -> None:
    if not data:
        return
    which, payload = data[0], data[1:]
    for kind in TYPES:
        with contextlib.suppress(MalformedEnvelope):
            open_envelope(payload, kind)

    # A client with one request in each phase, fed the payload on its channels.
    client = ClientCore("IOInfo", client_id="CLI_fuzzfuzzfuzz")
    claiming = client.send_request(GET_INGRESS_INFO, b"k", NOW, request_id="REQ_cKtzNuCRcXRF")  # as captured
    client.receive((client.response_channel, client.claim_channel, "x|y|RES")[which % 3], payload, NOW + 1)
    client.advance(NOW + 10 * SECOND)
    finished = [e.request_id for e in client.events()]
    assert finished == [claiming] and client.pending() == 0 and client.next_deadline() is None

    # Servers of a claim method and an affinity method, fed the payload on their channels.
    handler = ServerCore("IngressHandler", server_id="SRV_fuzzfuzzfuzz")
    internal = ServerCore("IngressInternal", server_id="SRV_fuzzfuzzfuzy")
    subscribed = handler.register(DELETE_INGRESS, ["IN_fuzz"]) + internal.register(START_INGRESS)
    core = handler if (which // 3) % 2 == 0 else internal
    channel = subscribed[(which // 6) % len(subscribed)]
    core.receive(channel, payload, NOW)
    for event in core.events():
        if isinstance(event, RequestReceived):
            assert event.request.expiry_ns > NOW and event.request.request_id and event.request.client_id
            if core.claim(event.request, 1.0, NOW):
                core.advance(event.request.expiry_ns)
                assert any(isinstance(e, ClaimLost) for e in core.events())
            core.respond(event.request, NOW, raw_response=b"")
    assert core.next_deadline() is None


if __name__ == "__main__":
    import atheris  # only for long runs; not a project dependency

    atheris.instrument_all()
    atheris.Setup(sys.argv, lambda data: check(bytes(data)))
    atheris.Fuzz()
