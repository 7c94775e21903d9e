"""Our envelope, messages, channel names and lock keys against what livekit-server and livekit/ingress really sent
(the capture in corpus/capture-ingress.txt): every payload opens as its channel's type, seals back byte for byte,
and every queue lock is the base64 SHA-256 of a payload published just before."""

from typing import Any

import pytest
from livekit.protocol.ingress import IngressInfo, IngressInput, IngressState

from pyingress.control.psrpc import channels, messages
from pyingress.control.psrpc.envelope import open_envelope, queue_lock_key, seal
from pyingress.control.psrpc.errors import MalformedEnvelope
from tests.control.psrpc.capture import commands, publishes

SUFFIX_TYPE = {
    "REQ": messages.Request,
    "RES": messages.Response,
    "CLAIM": messages.ClaimRequest,
    "RCLAIM": messages.ClaimResponse,
}

# The RPC request type each request channel carries (the topic segment, when there is one, is an ingress id).
REQUEST_TYPE = {
    ("IOInfo", "GetIngressInfo"): messages.GetIngressInfoRequest,
    ("IOInfo", "UpdateIngressState"): messages.UpdateIngressStateRequest,
    ("IOInfo", "CreateIngress"): IngressInfo,
    ("IngressInternal", "StartIngress"): messages.StartIngressRequest,
    ("IngressHandler", "UpdateIngress"): None,  # livekit.UpdateIngressRequest, checked below
}


def test_every_captured_payload_opens_as_its_channel_type_and_seals_back_byte_for_byte() -> None:
    seen = set()
    for channel, payload in publishes():
        kind = SUFFIX_TYPE[channel.rsplit("|", 1)[1]]
        message: Any = open_envelope(payload, kind)
        assert seal(message) == payload, channel
        seen.add(kind.DESCRIPTOR.full_name)
    assert seen == {"internal.Request", "internal.Response", "internal.ClaimRequest", "internal.ClaimResponse"}


def test_a_payload_opened_as_another_type_is_refused() -> None:
    channel, payload = publishes()[0]
    assert channel.endswith("|REQ")
    with pytest.raises(MalformedEnvelope, match=r"expected type\.googleapis\.com/internal\.Response"):
        open_envelope(payload, messages.Response)
    with pytest.raises(MalformedEnvelope):
        open_envelope(b"\xff\xff", messages.Request)


def test_requests_carry_the_rpc_messages_with_our_field_numbers() -> None:
    found: dict[str, Any] = {}
    for channel, payload in publishes():
        service, method, *rest = channel.split("|")
        if rest[-1] != "REQ" or (service, method) not in REQUEST_TYPE:
            continue
        request: Any = open_envelope(payload, messages.Request)
        kind = REQUEST_TYPE[(service, method)]
        if kind is not None:
            message: Any = kind.FromString(request.raw_request)
            assert message.SerializeToString() == request.raw_request
            found.setdefault(method, message)
    assert found["GetIngressInfo"].stream_key == "mZGaybQpAayQ"
    state_update = found["UpdateIngressState"]
    assert state_update.ingress_id == "IN_qBGRef8wSLcF"
    assert state_update.state.status == IngressState.ENDPOINT_BUFFERING
    assert state_update.state.resource_id.startswith("RT_")
    start = found["StartIngress"]
    assert start.info.input_type == IngressInput.URL_INPUT and start.info.url == "http://127.0.0.1:1/x.mp4"
    assert found["CreateIngress"].state.resource_id.startswith("UR_")


def test_responses_carry_the_rpc_answers() -> None:
    answers = [open_envelope(p, messages.Response) for c, p in publishes() if c.endswith("|RES")]
    info = messages.GetIngressInfoResponse.FromString(answers[0].raw_response).info
    assert info.ingress_id == "IN_qBGRef8wSLcF" and info.stream_key == "mZGaybQpAayQ"
    # UpdateIngressState and CreateIngress answer google.protobuf.Empty: no bytes at all.
    assert answers[1].raw_response == b"" and answers[1].error == ""


def test_every_queue_lock_is_the_sha256_of_a_payload_published_just_before() -> None:
    recent: list[bytes] = []
    locks = 0
    for command in commands():
        if command.name == "publish":
            recent = [*recent[-5:], command.args[2]]
        elif command.name == "set":
            key, _value, ex, seconds, nx = command.args[1:]
            assert (ex, seconds, nx) == (b"ex", b"5", b"nx")
            assert key.decode() in {queue_lock_key(p) for p in recent}
            locks += 1
    assert locks >= 10


def test_the_captured_channel_names_are_ours() -> None:
    names = {c for c, _ in publishes()}
    for command in commands():
        if command.name in ("subscribe", "unsubscribe"):
            names.update(arg.decode() for arg in command.args[1:])
    built = {
        channels.request_channel("IOInfo", "GetIngressInfo"),
        channels.claim_response_channel("IOInfo", "GetIngressInfo"),
        channels.response_channel("IOInfo", "CLI_Ohq66jJ8LhAm"),
        channels.claim_request_channel("IOInfo", "CLI_Ohq66jJ8LhAm"),
        channels.request_channel("IngressHandler", "UpdateIngress", ["IN_qBGRef8wSLcF"]),
        channels.claim_response_channel("IngressHandler", "DeleteIngress", ["IN_qBGRef8wSLcF"]),
        channels.request_channel("IngressInternal", "StartIngress"),
        channels.request_channel("IngressInternal", "ListActiveIngress", [""]),
    }
    assert built <= names, built - names
