"""The Twirp transport on the wire: content types, routing errors, body limits, auth before routing, CORS."""

import datetime
import json
from collections.abc import AsyncIterator
from pathlib import Path

import aiohttp
import pytest
from livekit import api
from livekit.protocol.ingress import CreateIngressRequest, IngressInfo, ListIngressResponse

from tests.control.service_fixture import RunningService, running_service

RTMP = {"input_type": "RTMP_INPUT", "room_name": "r", "participant_identity": "p"}


def _token(admin: bool = True) -> str:
    grants = api.VideoGrants(ingress_admin=admin)
    return api.AccessToken("devkey", "secret").with_grants(grants).with_ttl(datetime.timedelta(minutes=5)).to_jwt()


NOT_ADMIN = object()  # stands for a valid token without the ingressAdmin grant


@pytest.fixture
async def running(tmp_path: Path) -> AsyncIterator[RunningService]:
    async with running_service(tmp_path) as service:
        yield service


async def _post(
    running: RunningService,
    body: bytes | dict[str, object],
    method: str = "CreateIngress",
    content_type: str = "application/json",
    token: str | None = "admin",
    http_method: str = "POST",
    path: str | None = None,
) -> tuple[int, str, bytes]:
    headers = {"Content-Type": content_type}
    if token:
        headers["Authorization"] = "Bearer " + (_token() if token == "admin" else token)
    data = body if isinstance(body, bytes) else json.dumps(body).encode()
    url = running.http_url + (path or f"/twirp/livekit.Ingress/{method}")
    async with aiohttp.ClientSession() as session, session.request(http_method, url, data=data, headers=headers) as r:
        return r.status, r.headers.get("Content-Type", ""), await r.read()


async def test_json_and_protobuf_requests_get_responses_in_kind(running: RunningService) -> None:
    status, content_type, body = await _post(running, {**RTMP, "roomName": "camel", "participantIdentity": "c"})
    assert (status, content_type) == (200, "application/json")
    created = json.loads(body)
    assert created["room_name"] == "camel" and created["input_type"] == "RTMP_INPUT"
    assert created["state"]["started_at"] == "0" and created["audio"] is None and "enabled" not in created

    request = CreateIngressRequest(input_type=1, room_name="r", participant_identity="p")
    status, content_type, body = await _post(running, request.SerializeToString(), content_type="application/protobuf")
    assert (status, content_type) == (200, "application/protobuf")
    assert IngressInfo.FromString(body).input_type == 1

    status, _, body = await _post(running, {}, method="ListIngress", content_type="application/json; charset=utf-8")
    assert status == 200 and len(json.loads(body)["items"]) == 2
    status, _, body = await _post(running, b"", method="ListIngress", content_type="application/protobuf")
    assert status == 200 and len(ListIngressResponse.FromString(body).items) == 2


@pytest.mark.parametrize(
    ("kwargs", "status", "expected"),
    [
        (
            {"http_method": "GET"},
            404,
            '{"code":"bad_route","msg":"unsupported method \\"GET\\" (only POST is allowed)",'
            '"meta":{"twirp_invalid_route":"GET /twirp/livekit.Ingress/CreateIngress"}}',
        ),
        (
            {"method": "StartIngress"},
            404,
            '{"code":"bad_route","msg":"no handler for path \\"/twirp/livekit.Ingress/StartIngress\\"",'
            '"meta":{"twirp_invalid_route":"POST /twirp/livekit.Ingress/StartIngress"}}',
        ),
        (
            {"path": "/twirp/v2/livekit.Ingress/CreateIngress"},
            404,
            '{"code":"bad_route","msg":"invalid path prefix \\"/twirp/v2\\", expected \\"/twirp\\", on path '
            '\\"/twirp/v2/livekit.Ingress/CreateIngress\\"","meta":{"twirp_invalid_route":'
            '"POST /twirp/v2/livekit.Ingress/CreateIngress"}}',
        ),
        (
            {"content_type": "text/plain"},
            404,
            '{"code":"bad_route","msg":"unexpected Content-Type: \\"text/plain\\"",'
            '"meta":{"twirp_invalid_route":"POST /twirp/livekit.Ingress/CreateIngress"}}',
        ),
        ({"body": b"{oops"}, 400, '{"code":"malformed","msg":"the json request could not be decoded"}'),
        (
            {"body": b"\xff\xff", "content_type": "application/protobuf"},
            400,
            '{"code":"malformed","msg":"the protobuf request could not be decoded"}',
        ),
        ({"token": None}, 401, '{"code":"unauthenticated","msg":"permissions denied"}'),
        ({"token": NOT_ADMIN}, 401, '{"code":"unauthenticated","msg":"permissions denied"}'),
    ],
)
async def test_twirp_errors_byte_for_byte(
    running: RunningService, kwargs: dict[str, object], status: int, expected: str
) -> None:
    body = kwargs.pop("body", RTMP)
    if kwargs.get("token") is NOT_ADMIN:
        # Minted now, not when the test was collected: the suite may reach it after the token's 5 minutes.
        kwargs["token"] = _token(admin=False)
    got_status, content_type, got = await _post(running, body, **kwargs)  # type: ignore[arg-type]
    assert (got_status, content_type, got.decode()) == (status, "application/json", expected)


async def test_a_bad_token_is_refused_before_routing_in_plain_text(running: RunningService) -> None:
    status, content_type, body = await _post(running, RTMP, http_method="GET", token="abc.def")
    assert (status, content_type, body) == (401, "text/plain; charset=utf-8", b"invalid authorization token")


async def test_body_size_limit(running: RunningService) -> None:
    huge = json.dumps({**RTMP, "participant_metadata": "x" * (2 << 20)}).encode()
    status, content_type, body = await _post(running, huge)
    assert (status, content_type, body) == (413, "text/plain; charset=utf-8", b"request body too large")

    async def chunks() -> AsyncIterator[bytes]:
        for _ in range(40):
            yield b" " * 65536

    url = running.http_url + "/twirp/livekit.Ingress/CreateIngress"
    headers = {"Content-Type": "application/json", "Authorization": "Bearer " + _token()}
    async with aiohttp.ClientSession() as session, session.post(url, data=chunks(), headers=headers) as response:
        assert response.status == 400  # no declared length: refused while reading, as Go's MaxBytesReader does
        assert json.loads(await response.read())["code"] == "malformed"


async def test_browser_preflight_is_answered(running: RunningService) -> None:
    url = running.http_url + "/twirp/livekit.Ingress/ListIngress"
    headers = {
        "Origin": "https://app.example.com",
        "Access-Control-Request-Method": "POST",
        "Access-Control-Request-Headers": "authorization,content-type",
    }
    async with aiohttp.ClientSession() as session, session.options(url, headers=headers) as response:
        assert response.status == 204
        assert response.headers["Access-Control-Allow-Origin"] == "https://app.example.com"
        assert response.headers["Access-Control-Allow-Headers"] == "authorization,content-type"
