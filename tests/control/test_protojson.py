"""JSON as livekit-server writes it: Twirp responses, webhook bodies, Go's string quoting."""

import json

import pytest
from google.protobuf import json_format
from hypothesis import given, settings
from hypothesis import strategies as st
from livekit.protocol.ingress import (
    CreateIngressRequest,
    IngressInfo,
    IngressState,
    ListIngressResponse,
)
from livekit.protocol.models import VideoLayer

from pyingress.control.protojson import (
    JsonDecodeError,
    _go_float,
    go_json_string,
    go_quote,
    parse_request,
    to_json,
    twirp_json,
    webhook_json,
)

# Captured from livekit-server v1.13.5: CreateIngress (JSON) of a WHIP ingress with the seed's custom options.
LIVEKIT_WHIP_CUSTOM = (
    '{"ingress_id":"IN_b45DS8qUn8p2","name":"","stream_key":"VxExnwtRMekG","url":"http://127.0.0.1:8080/w",'
    '"input_type":"WHIP_INPUT","bypass_transcoding":false,"enable_transcoding":true,"audio":{"name":"a",'
    '"source":"MICROPHONE","options":{"audio_codec":"OPUS","bitrate":64000,"disable_dtx":false,"channels":1}},'
    '"video":{"name":"v","source":"CAMERA","options":{"video_codec":"H264_BASELINE","frame_rate":30,"layers":'
    '[{"quality":"HIGH","width":1920,"height":1080,"bitrate":4500000,"ssrc":0,"spatial_layer":0,"rid":"",'
    '"repair_ssrc":0}]}},"room_name":"r2","participant_identity":"p","participant_name":"","participant_metadata":"",'
    '"reusable":true,"state":{"status":"ENDPOINT_INACTIVE","error":"","video":null,"audio":null,"room_id":"",'
    '"started_at":"0","ended_at":"0","updated_at":"0","resource_id":"","tracks":[]},"enabled":false}'
)


def _whip_custom() -> IngressInfo:
    info = IngressInfo(
        ingress_id="IN_b45DS8qUn8p2",
        stream_key="VxExnwtRMekG",
        url="http://127.0.0.1:8080/w",
        input_type=1,
        enable_transcoding=True,
        room_name="r2",
        participant_identity="p",
        reusable=True,
        state=IngressState(),
        enabled=False,
    )
    info.audio.name, info.audio.source = "a", 2
    info.audio.options.audio_codec, info.audio.options.bitrate, info.audio.options.channels = 1, 64000, 1
    info.video.name, info.video.source = "v", 1
    info.video.options.video_codec, info.video.options.frame_rate = 1, 30
    info.video.options.layers.append(VideoLayer(quality=2, width=1920, height=1080, bitrate=4500000))
    return info


def test_twirp_response_is_byte_identical_to_livekit_server() -> None:
    assert twirp_json(_whip_custom()).decode() == LIVEKIT_WHIP_CUSTOM


def test_list_response_emits_null_page_token_and_items_in_declaration_order() -> None:
    body = twirp_json(ListIngressResponse()).decode()
    assert body == '{"next_page_token":null,"items":[]}'


def test_webhook_json_is_camel_case_with_defaults_omitted() -> None:
    info = IngressInfo(ingress_id="IN_x", input_type=0, state=IngressState(status=0, started_at=17))
    assert webhook_json(info).decode() == '{"ingressId":"IN_x","state":{"startedAt":"17"}}'


@pytest.mark.parametrize(
    ("value", "text"),
    [
        (30.0, "30"),
        (29.97, "29.97"),
        (0.0, "0"),
        (-0.5, "-0.5"),
        (1e21, "1e+21"),
        (1.5e-7, "1.5e-7"),
        (1e16, "10000000000000000"),
        (float("nan"), '"NaN"'),
        (float("-inf"), '"-Infinity"'),
    ],
)
def test_doubles_print_like_go(value: float, text: str) -> None:
    assert _go_float(value) == text


def test_go_string_quoting() -> None:
    assert go_quote('text/plain; a="b"') == '"text/plain; a=\\"b\\""'
    assert go_quote("tab\there\x01") == '"tab\\there\\x01"'
    assert go_json_string('a<b>&"c"\n') == '"a\\u003cb\\u003e\\u0026\\"c\\"\\n"'


def test_request_parsing_matches_the_go_server() -> None:
    request = CreateIngressRequest()
    # The first JSON value is used, trailing bytes ignored; camelCase and enum numbers accepted.
    parse_request(b' {"inputType":1,"roomName":"r","video":{"preset":"NO_SUCH_PRESET"}} trailing', request)
    assert request.input_type == 1 and request.room_name == "r"
    # An unknown enum name is discarded (Go protojson DiscardUnknown): the video options exist, the preset not.
    assert request.HasField("video") and request.video.WhichOneof("encoding_options") is None
    for bad in (b"", b"{", b"[]", b"null", b'{"name":5}', b'{"name":"a","name":"b"}', b"\xff"):
        with pytest.raises(JsonDecodeError):
            parse_request(bad, CreateIngressRequest())


_text = st.text(max_size=12)
_infos = st.builds(
    IngressInfo,
    ingress_id=_text,
    name=_text,
    stream_key=_text,
    url=_text,
    input_type=st.integers(0, 5),
    room_name=_text,
    participant_identity=_text,
    participant_metadata=_text,
    reusable=st.booleans(),
    enable_transcoding=st.none() | st.booleans(),
    state=st.builds(
        IngressState,
        status=st.integers(0, 4),
        error=_text,
        started_at=st.integers(0, 2**63 - 1),
        updated_at=st.integers(0, 2**63 - 1),
    ),
)


@settings(max_examples=300, deadline=None)
@given(_infos, st.booleans(), st.booleans())
def test_every_encoding_reads_back_as_the_same_message(info: IngressInfo, proto_names: bool, emit: bool) -> None:
    text = to_json(info, proto_names=proto_names, emit_unpopulated=emit)
    json.loads(text)  # valid JSON
    assert json_format.Parse(text, IngressInfo()) == info
