"""Fuzz what the Ingress API reads from the network: any body or token → a request, or our refusal, nothing else.

The first byte picks what the rest is: a CreateIngressRequest or UpdateIngressRequest as JSON or protobuf (then run
through creation/update validation and written back as Twirp JSON), or an access token.  Allowed outcomes:
JsonDecodeError / DecodeError (malformed), IngressError (LiveKit's refusals), AuthFailure (401).

Long runs:   python -m pip install atheris
             python fuzz/ingress_api_request.py tests/control/corpus/ingress_api_request
CI runs the same property with hypothesis (tests/control/test_request_fuzz.py).
"""

import sys

from google.protobuf import json_format
from google.protobuf.message import DecodeError
from livekit.protocol.ingress import CreateIngressRequest, IngressInfo, IngressState, UpdateIngressRequest

from pyingress.control.api import apply_update, build_ingress_info
from pyingress.control.auth import AuthFailure, verify_token
from pyingress.control.errors import IngressError
from pyingress.control.protojson import JsonDecodeError, parse_request, twirp_json

KEYS = {"devkey": "secret"}


def _existing() -> IngressInfo:
    return IngressInfo(
        ingress_id="IN_fuzzfuzzfuzz",
        stream_key="fuzzfuzzfuzz",
        url="http://127.0.0.1:8080/w",
        input_type=1,
        room_name="room",
        participant_identity="p",
        reusable=True,
        enable_transcoding=False,
        bypass_transcoding=True,
        state=IngressState(),
    )


def _written_back(info: IngressInfo) -> None:
    # Whatever was accepted must serialise as livekit-server would and read back unchanged (compared as bytes:
    # a NaN frame rate, which LiveKit accepts too, is not equal to itself).
    text = twirp_json(info)
    assert twirp_json(json_format.Parse(text, IngressInfo())) == text


def check(data: bytes) -> None:
    if not data:
        return
    kind, payload = data[0] % 5, data[1:]
    try:
        if kind == 4:
            verify_token(payload.decode("utf-8", "replace"), KEYS)
            return
        request = CreateIngressRequest() if kind in (0, 2) else UpdateIngressRequest()
        if kind < 2:
            parse_request(payload, request)
        else:
            request.ParseFromString(payload)
        if isinstance(request, CreateIngressRequest):
            _written_back(build_ingress_info(request, "rtmp://127.0.0.1:1935/live"))
        else:
            info = _existing()
            apply_update(request, info)
            _written_back(info)
    except (JsonDecodeError, DecodeError, IngressError, AuthFailure):
        pass


if __name__ == "__main__":
    import atheris  # only for long runs; not a project dependency

    atheris.instrument_all()
    atheris.Setup(sys.argv, lambda data: check(bytes(data)))
    atheris.Fuzz()
