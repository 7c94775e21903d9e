"""pyingress answers the Ingress API as livekit-server v1.13.5 does: the same requests to both, compared field by field.

Both servers run for real (livekit-server --dev with Redis; `pyingress serve` as a subprocess).  Only what must
differ is set aside: ingress ids, stream keys and the host of the push URLs.  Invalid requests must get the same
status, content type and body byte for byte, and must leave pyingress's store as it was.
"""

import json
import time
import uuid
from collections.abc import Callable
from pathlib import Path
from typing import Any

import jwt
import pytest
from google.protobuf import json_format
from livekit.protocol.ingress import CreateIngressRequest, IngressInfo, UpdateIngressRequest

from tests.e2e.ingress_api import Reply, admin_token, list_all, normalised, twirp
from tests.harness.livekit_peer import LivekitPeer
from tests.harness.pyingress_peer import PyingressPeer

EXAMPLES = Path(__file__).resolve().parents[2] / "examples"


@pytest.fixture(scope="module")
def pyingress(pyingress_factory: Callable[..., PyingressPeer]) -> PyingressPeer:
    return pyingress_factory()


def _room() -> str:
    return "parity-" + uuid.uuid4().hex[:8]


def _example(name: str, room: str) -> dict[str, Any]:
    request: dict[str, Any] = json.loads((EXAMPLES / name).read_text())
    return {**request, "room_name": room}


def _both(livekit: LivekitPeer, ours: PyingressPeer, method: str, body: Any, **kwargs: Any) -> tuple[Reply, Reply]:
    return twirp(livekit.http_url, method, body, **kwargs), twirp(ours.http_url, method, body, **kwargs)


def _assert_same(theirs: Reply, ours: Reply) -> Any:
    assert (ours.status, ours.content_type) == (theirs.status, theirs.content_type), (theirs, ours)
    if theirs.content_type == "application/json" and theirs.status == 200:
        assert normalised(ours.json()) == normalised(theirs.json())
        # The same bytes once ids, keys and hosts are set aside: field order, defaults, number formats.
        return ours.json()
    assert ours.body == theirs.body
    return None


def _valid_requests(room: str) -> list[dict[str, Any]]:
    return [
        {"input_type": "RTMP_INPUT", "name": "plain", "room_name": room, "participant_identity": "p"},
        _example("rtmp-ingress.json", room),
        _example("rtmp-preset-ingress.json", room),
        _example("rtmp-custom-options-ingress.json", room),
        _example("whip-ingress.json", room),
        _example("whip-transcoding-ingress.json", room),
        # camelCase names, enums by number, explicit optionals, metadata that needs escaping.
        {
            "inputType": 1,
            "roomName": room,
            "participantIdentity": "camel",
            "participantMetadata": '{"a":"<b>&é\u2028"}\n\t\x01',
            "enableTranscoding": True,
            "enabled": False,
            "video": {"source": 1, "options": {"frameRate": 29.97, "layers": []}},
            "audio": {"options": {}},
        },
        # Deprecated bypass_transcoding is not taken from the request; an empty room is fine for push inputs.
        {"input_type": "RTMP_INPUT", "participant_identity": "p", "bypass_transcoding": True, "video": {}},
        {
            "input_type": "WHIP_INPUT",
            "participant_identity": "p",
            "bypass_transcoding": True,
            "enable_transcoding": True,
        },
    ]


def test_create_list_update_delete_match_livekit_server(livekit_server: LivekitPeer, pyingress: PyingressPeer) -> None:
    room = _room()
    created: list[tuple[str, str]] = []  # (livekit id, pyingress id)
    for request in _valid_requests(room):
        for content_type in ("application/json", "application/protobuf"):
            if content_type == "application/json":
                theirs, ours = _both(livekit_server, pyingress, "CreateIngress", request)
                body = _assert_same(theirs, ours)
                assert body is not None
                created.append((theirs.json()["ingress_id"], body["ingress_id"]))
                continue
            message = CreateIngressRequest()
            json_format.ParseDict(request, message)
            theirs, ours = _both(
                livekit_server, pyingress, "CreateIngress", message.SerializeToString(), content_type=content_type
            )
            assert (ours.status, ours.content_type) == (theirs.status, theirs.content_type) == (200, content_type)
            a, b = IngressInfo.FromString(theirs.body), IngressInfo.FromString(ours.body)
            for info in (a, b):
                info.ingress_id, info.stream_key, info.url = "", "", info.url.split("://")[0]
            assert a == b

    # Non-finite frame rates: JSON literals are malformed, protojson strings are accepted (and echoed back).
    odd_rate = {"input_type": 0, "room_name": room + "-nan", "participant_identity": "p"}
    for rate in ("NaN", "Infinity", "-Infinity"):
        request = {**odd_rate, "video": {"options": {"frame_rate": rate}}}
        _assert_same(*_both(livekit_server, pyingress, "CreateIngress", request))

    # Listing one room: the same items, in the same order of creation.
    theirs, ours = _both(livekit_server, pyingress, "ListIngress", {"room_name": room})
    assert theirs.status == ours.status == 200
    assert sorted(map(json.dumps, normalised(ours.json()["items"]))) == sorted(
        map(json.dumps, normalised(theirs.json()["items"]))
    )
    theirs_id, ours_id = created[0]
    by_id = twirp(livekit_server.http_url, "ListIngress", {"ingress_id": theirs_id, "room_name": "x"})
    _assert_same(by_id, twirp(pyingress.http_url, "ListIngress", {"ingress_id": ours_id, "room_name": "x"}))

    # Updates: only set fields overwrite; transcoding defaults re-derived; rooms move.
    updates: list[dict[str, Any]] = [
        {"name": "renamed", "participant_name": "New", "enabled": False},
        {"room_name": room + "-moved", "video": {"preset": "H264_540P_25FPS_2_LAYERS"}, "audio": {}},
        {"enabled": True, "enable_transcoding": True, "participant_metadata": "m"},
    ]
    for index, update in enumerate(updates):
        theirs_id, ours_id = created[4 + index]  # the WHIP ingresses
        theirs = twirp(livekit_server.http_url, "UpdateIngress", {**update, "ingress_id": theirs_id})
        ours = twirp(pyingress.http_url, "UpdateIngress", {**update, "ingress_id": ours_id})
        _assert_same(theirs, ours)
    theirs, ours = _both(livekit_server, pyingress, "ListIngress", {"room_name": room + "-moved"})
    assert normalised(ours.json()) == normalised(theirs.json())

    theirs_id, ours_id = created[1]
    _assert_same(
        twirp(livekit_server.http_url, "DeleteIngress", {"ingress_id": theirs_id}),
        twirp(pyingress.http_url, "DeleteIngress", {"ingress_id": ours_id}),
    )
    _assert_same(
        twirp(livekit_server.http_url, "DeleteIngress", {"ingress_id": theirs_id}),
        twirp(pyingress.http_url, "DeleteIngress", {"ingress_id": ours_id}),
    )


def _layer(quality: str, width: int, height: int) -> dict[str, Any]:
    return {"quality": quality, "width": width, "height": height, "bitrate": 1_000_000}


def _invalid_requests(room: str) -> dict[str, tuple[str, Any, dict[str, Any]]]:
    rtmp = {"input_type": "RTMP_INPUT", "name": "bad", "room_name": room, "participant_identity": "p"}

    def video(options: dict[str, Any]) -> dict[str, Any]:
        return {**rtmp, "video": {"options": options}}

    def audio(options: dict[str, Any]) -> dict[str, Any]:
        return {**rtmp, "audio": {"options": options}}

    now = int(time.time())
    return {
        "odd layer width": ("CreateIngress", video({"layers": [_layer("HIGH", 1281, 720)]}), {}),
        "odd layer height": ("CreateIngress", video({"layers": [_layer("HIGH", 1280, 721)]}), {}),
        "zero layer width": ("CreateIngress", video({"layers": [_layer("HIGH", 0, 720)]}), {}),
        "duplicate quality": (
            "CreateIngress",
            video({"layers": [_layer("HIGH", 1280, 720), _layer("HIGH", 640, 360)]}),
            {},
        ),
        "shrinking height": (
            "CreateIngress",
            video({"layers": [_layer("HIGH", 1280, 360), _layer("LOW", 640, 720)]}),
            {},
        ),
        "shrinking width": (
            "CreateIngress",
            video({"layers": [_layer("HIGH", 640, 720), _layer("LOW", 1280, 720)]}),
            {},
        ),
        "H264_HIGH": ("CreateIngress", video({"video_codec": "H264_HIGH"}), {}),
        "H264_MAIN": ("CreateIngress", video({"video_codec": "H264_MAIN"}), {}),
        "negative frame rate": ("CreateIngress", video({"frame_rate": -1}), {}),
        "AAC audio": ("CreateIngress", audio({"audio_codec": "AAC"}), {}),
        "MP3 audio": ("CreateIngress", audio({"audio_codec": "AC_MP3"}), {}),
        "3 channels": ("CreateIngress", audio({"channels": 3}), {}),
        "transcoding disabled on RTMP": ("CreateIngress", {**rtmp, "enable_transcoding": False}, {}),
        "WHIP pass-through with video options": (
            "CreateIngress",
            {**rtmp, "input_type": "WHIP_INPUT", "video": {"preset": "H264_720P_30FPS_1_LAYER"}},
            {},
        ),
        "WHIP pass-through with audio options": (
            "CreateIngress",
            {**rtmp, "input_type": "WHIP_INPUT", "audio": {"preset": "OPUS_MONO_64KBS"}},
            {},
        ),
        "missing identity": ("CreateIngress", {**rtmp, "participant_identity": ""}, {}),
        "unknown video preset": ("CreateIngress", {**rtmp, "video": {"preset": 99}}, {}),
        "unknown audio preset": ("CreateIngress", {**rtmp, "audio": {"preset": 42}}, {}),
        "video source MICROPHONE": ("CreateIngress", {**rtmp, "video": {"source": "MICROPHONE"}}, {}),
        "audio source CAMERA": ("CreateIngress", {**rtmp, "audio": {"source": "CAMERA"}}, {}),
        "unknown input type": ("CreateIngress", {**rtmp, "input_type": 7}, {}),
        "unknown input type without a token": ("CreateIngress", {**rtmp, "input_type": 7}, {"authorization": ""}),
        "URL input without url": ("CreateIngress", {**rtmp, "input_type": "URL_INPUT"}, {}),
        "URL input with ftp://": ("CreateIngress", {**rtmp, "input_type": "URL_INPUT", "url": "ftp://h/a.mp4"}, {}),
        "URL input unparsable": ("CreateIngress", {**rtmp, "input_type": "URL_INPUT", "url": "http://[::1"}, {}),
        "URL input with a newline": (
            "CreateIngress",
            {**rtmp, "input_type": "URL_INPUT", "url": "http://h/a\nb.mp4"},
            {},
        ),
        "URL input without scheme": ("CreateIngress", {**rtmp, "input_type": "URL_INPUT", "url": "://h/a.mp4"}, {}),
        "URL input bad port": ("CreateIngress", {**rtmp, "input_type": "URL_INPUT", "url": "http://h:x/a"}, {}),
        "URL input without room": (
            "CreateIngress",
            {**rtmp, "input_type": "URL_INPUT", "url": "http://h/a.mp4", "room_name": ""},
            {},
        ),
        "URL input disabled": (
            "CreateIngress",
            {**rtmp, "input_type": "URL_INPUT", "url": "http://h/a.mp4", "enabled": False},
            {},
        ),
        "malformed JSON": ("CreateIngress", b'{"input_type": "RTMP_INPUT",', {}),
        "JSON array": ("CreateIngress", b"[]", {}),
        "JSON wrong field type": ("CreateIngress", {**rtmp, "name": 5}, {}),
        "JSON duplicate field": ("CreateIngress", b'{"name":"a","name":"b"}', {}),
        "JSON NaN literal": (
            "CreateIngress",
            b'{"participant_identity":"p","video":{"options":{"frame_rate":NaN}}}',
            {},
        ),
        "empty body": ("CreateIngress", b"", {}),
        "malformed protobuf": ("CreateIngress", b"\xff\xff\xff", {"content_type": "application/protobuf"}),
        "wrong content type": ("CreateIngress", rtmp, {"content_type": "text/plain"}),
        "no content type": ("CreateIngress", rtmp, {"content_type": None}),
        "non-POST": ("CreateIngress", rtmp, {"http_method": "GET"}),
        "PUT": ("ListIngress", {}, {"http_method": "PUT"}),
        "unknown method": ("StartIngress", rtmp, {}),
        "path with an extra segment": ("", rtmp, {"path": "/twirp/livekit.Ingress/CreateIngress/extra"}),
        "no token": ("CreateIngress", rtmp, {"authorization": ""}),
        "expired token": (
            "CreateIngress",
            rtmp,
            {"token": jwt.encode({"iss": "devkey", "exp": now - 120, "video": {"ingressAdmin": True}}, "secret")},
        ),
        "token not yet valid": (
            "CreateIngress",
            rtmp,
            {"token": jwt.encode({"iss": "devkey", "exp": now + 900, "nbf": now + 600}, "secret")},
        ),
        "token without ingressAdmin": ("CreateIngress", rtmp, {"token": admin_token(admin=False)}),
        "token without ingressAdmin, list": ("ListIngress", {}, {"token": admin_token(admin=False)}),
        "wrong secret": ("CreateIngress", rtmp, {"token": admin_token(secret="wrong")}),
        "unknown API key": ("CreateIngress", rtmp, {"token": admin_token(key="nobody")}),
        "garbage token": ("CreateIngress", rtmp, {"token": "not.a.jwt"}),
        "Basic authorization": ("CreateIngress", rtmp, {"authorization": "Basic ZGV2a2V5OnNlY3JldA=="}),
        "update of a missing ingress": ("UpdateIngress", {"ingress_id": "IN_nosuchingres"}, {}),
        "update without an id": ("UpdateIngress", {"name": "x"}, {}),
        "delete of a missing ingress": ("DeleteIngress", {"ingress_id": "IN_nosuchingres"}, {}),
        "list of a missing ingress": ("ListIngress", {"ingress_id": "IN_nosuchingres"}, {}),
    }


def test_invalid_requests_get_livekits_answer_and_change_nothing(
    livekit_server: LivekitPeer, pyingress: PyingressPeer
) -> None:
    room = _room()
    twirp(pyingress.http_url, "CreateIngress", {"input_type": 0, "room_name": room, "participant_identity": "p"})
    cases = _invalid_requests(room)
    assert len(cases) >= 25
    for name, (method, body, kwargs) in cases.items():
        before = list_all(pyingress.http_url)
        theirs, ours = _both(livekit_server, pyingress, method, body, **kwargs)
        assert theirs.status != 200, name
        assert (ours.status, ours.content_type, ours.body) == (theirs.status, theirs.content_type, theirs.body), name
        assert list_all(pyingress.http_url) == before, name


def test_invalid_updates_of_an_existing_ingress(livekit_server: LivekitPeer, pyingress: PyingressPeer) -> None:
    room = _room()
    request = {"input_type": "WHIP_INPUT", "room_name": room, "participant_identity": "p"}
    theirs_id = twirp(livekit_server.http_url, "CreateIngress", request).json()["ingress_id"]
    ours_id = twirp(pyingress.http_url, "CreateIngress", request).json()["ingress_id"]
    updates = {
        "odd width": {"enable_transcoding": True, "video": {"options": {"layers": [_layer("HIGH", 641, 360)]}}},
        "options without transcoding": {"video": {"preset": 1}},
        "transcoding off with audio options": {"enable_transcoding": False, "audio": {"options": {"channels": 1}}},
        "bad audio source": {"audio": {"source": "CAMERA"}},
        "bad codec": {"enable_transcoding": True, "video": {"options": {"video_codec": "H264_HIGH"}}},
    }
    for name, update in updates.items():
        before = list_all(pyingress.http_url)
        theirs = twirp(livekit_server.http_url, "UpdateIngress", {**update, "ingress_id": theirs_id})
        ours = twirp(pyingress.http_url, "UpdateIngress", {**update, "ingress_id": ours_id})
        assert theirs.status == 400, name
        assert (ours.status, ours.body) == (theirs.status, theirs.body), name
        assert list_all(pyingress.http_url) == before, name


def test_where_pyingress_is_stricter_than_v1_13_5(pyingress: PyingressPeer) -> None:
    """Two refusals livekit-server v1.13.5 lacks (later livekit versions have both), and URL ingresses, which
    livekit-server can only create with a worker attached."""
    room = _room()
    rtmp = {"input_type": "RTMP_INPUT", "room_name": room, "participant_identity": "p"}
    before = list_all(pyingress.http_url)
    forever = jwt.encode({"iss": "devkey", "video": {"ingressAdmin": True}}, "secret")
    reply = twirp(pyingress.http_url, "CreateIngress", rtmp, token=forever)
    assert reply == Reply(
        401,
        "text/plain; charset=utf-8",
        f"invalid token: {forever}, error: token has invalid claims: token is missing required claim: "
        "exp claim is required".encode(),
    )
    huge = twirp(pyingress.http_url, "CreateIngress", {**rtmp, "participant_metadata": "x" * (2 << 20)})
    assert huge == Reply(413, "text/plain; charset=utf-8", b"request body too large")
    assert list_all(pyingress.http_url) == before

    url = twirp(pyingress.http_url, "CreateIngress", {**rtmp, "input_type": "URL_INPUT", "url": "https://h/a.mp4"})
    assert url.status == 200 and url.json()["reusable"] is False and url.json()["stream_key"] == ""
    update = twirp(pyingress.http_url, "UpdateIngress", {"ingress_id": url.json()["ingress_id"], "name": "x"})
    assert update == Reply(
        400,
        "application/json",
        b'{"code":"invalid_argument","msg":"twirp error unknown: ingress is not reusable and cannot be modified"}',
    )
    message = UpdateIngressRequest(ingress_id=url.json()["ingress_id"])
    assert (
        twirp(
            pyingress.http_url, "UpdateIngress", message.SerializeToString(), content_type="application/protobuf"
        ).status
        == 400
    )
