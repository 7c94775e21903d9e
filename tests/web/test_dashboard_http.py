"""The dashboard over HTTP, in a real service (no media): the page and its files, the login and its cookie, 401 for
every action without one, CSRF and cross-site refusals, actions through the Ingress API's authorisation, the live
feed, the preview token's grants, and --dev on loopback."""

import asyncio
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import aiohttp
import jwt
import pytest
from livekit.protocol.ingress import CreateIngressRequest, IngressInput, ListIngressRequest
from livekit.protocol.models import VideoCodec, VideoQuality

from tests.control.service_fixture import RunningService, running_service
from tests.harness.sse import sse_events

API = "/dashboard/api"
ACTIONS = [
    ("GET", f"{API}/events"),
    ("POST", f"{API}/logout"),
    ("POST", f"{API}/ingresses"),
    ("POST", f"{API}/ingresses/IN_abc/update"),
    ("POST", f"{API}/ingresses/IN_abc/delete"),
    ("POST", f"{API}/ingresses/IN_abc/preview"),
]
RTMP_FORM = {"input_type": "RTMP", "name": "cam", "room_name": "stage", "participant_identity": "cam-1"}


@pytest.fixture
async def service(tmp_path: Path) -> AsyncIterator[RunningService]:
    async with running_service(tmp_path) as running:
        yield running


def _client() -> aiohttp.ClientSession:
    # unsafe: keep cookies of a bare IP address (127.0.0.1), which aiohttp's jar refuses by default.
    return aiohttp.ClientSession(cookie_jar=aiohttp.CookieJar(unsafe=True))


class Page:
    """A logged-in browser-like client: the session cookie, the CSRF token, its own Origin."""

    def __init__(self, http: aiohttp.ClientSession, base: str, described: dict[str, Any]) -> None:
        self.http = http
        self.base = base
        self.described = described

    @property
    def headers(self) -> dict[str, str]:
        return {"X-CSRF-Token": self.described["csrf"], "Origin": self.base}

    async def post(self, path: str, body: dict[str, Any] | None = None) -> tuple[int, Any]:
        async with self.http.post(self.base + path, json=body or {}, headers=self.headers) as response:
            return response.status, await response.json()


async def _login(http: aiohttp.ClientSession, base: str, secret: str = "secret") -> tuple[int, Any]:
    body = {"api_key": "devkey", "api_secret": secret}
    async with http.post(f"{base}{API}/login", json=body, headers={"Origin": base}) as response:
        return response.status, await response.json()


async def _page(http: aiohttp.ClientSession, base: str) -> Page:
    status, described = await _login(http, base)
    assert status == 200, described
    return Page(http, base, described)


async def test_the_page_and_its_files(service: RunningService) -> None:
    base = service.http_url
    async with _client() as http:
        async with http.get(base + "/") as response:
            assert response.status == 200 and response.content_type == "text/html"
            html = await response.text()
            csp = response.headers["Content-Security-Policy"]
        assert "/dashboard/static/dashboard.js" in html and "<title>pyingress</title>" in html
        assert "script-src 'self'" in csp and "frame-ancestors 'none'" in csp
        assert "ws://127.0.0.1:7880" in csp  # the room server the preview joins
        for name, kind in (("dashboard.js", "text/javascript"), ("preview.js", "text/javascript")):
            async with http.get(f"{base}/dashboard/static/{name}") as response:
                assert response.status == 200 and response.content_type == kind
        async with http.get(f"{base}/dashboard/static/index.html") as response:
            assert response.status == 404  # only the listed files
        async with http.get(f"{base}/dashboard/static/..%2f..%2fdashboard.py") as response:
            assert response.status == 404
        async with http.get(f"{base}/dashboard/vendor/livekit-client.umd.js") as response:
            assert response.status == 200, "scripts/setup serve installs livekit-client into .cache/node"
            assert "LivekitClient" in await response.text()
        # The service's other routes are still there.
        async with http.get(base + "/health") as response:
            assert response.status == 200


async def test_every_action_answers_401_without_a_login(service: RunningService) -> None:
    base = service.http_url
    async with _client() as http:
        async with http.get(f"{base}{API}/session") as response:
            assert response.status == 401 and (await response.json())["error"] == "login required"
        for method, path in ACTIONS:
            async with http.request(method, base + path, json={}, headers={"Origin": base}) as response:
                assert response.status == 401, (method, path, await response.text())
        # A cookie nobody issued is no login either.
        http.cookie_jar.update_cookies({"pyingress_dashboard": "forged"}, aiohttp.client.URL(base))
        for method, path in ACTIONS:
            async with http.request(method, base + path, json={}, headers={"Origin": base}) as response:
                assert response.status == 401, (method, path)


async def test_login_sets_a_strict_http_only_cookie_and_refuses_a_wrong_secret(service: RunningService) -> None:
    base = service.http_url
    async with _client() as http:
        assert await _login(http, base, secret="wrong") == (401, {"error": "wrong API key or secret"})
        async with http.post(f"{base}{API}/login", json={"api_key": "devkey", "api_secret": "secret"}) as response:
            assert response.status == 200
            cookie = response.headers["Set-Cookie"]
            described = await response.json()
        assert "HttpOnly" in cookie and "SameSite=Strict" in cookie and "Path=/" in cookie
        assert described["api_key"] == "devkey" and not described["dev"] and len(described["csrf"]) >= 32
        async with http.get(f"{base}{API}/session") as response:
            assert response.status == 200 and (await response.json())["csrf"] == described["csrf"]
        page = Page(http, base, described)
        assert (await page.post(f"{API}/logout"))[0] == 200
        async with http.get(f"{base}{API}/session") as response:
            assert response.status == 401


async def test_cross_site_and_tokenless_requests_are_refused(service: RunningService) -> None:
    base = service.http_url
    async with _client() as http:
        page = await _page(http, base)
        create = f"{base}{API}/ingresses"
        # The cookie alone (a forged cross-site form or fetch cannot read the CSRF token): refused.
        async with http.post(create, json=RTMP_FORM, headers={"Origin": base}) as response:
            assert response.status == 403 and "CSRF" in (await response.json())["error"]
        # A cross-site page that somehow had the token: its Origin gives it away.
        evil = {"X-CSRF-Token": page.described["csrf"], "Origin": "http://evil.example"}
        async with http.post(create, json=RTMP_FORM, headers=evil) as response:
            assert response.status == 403 and (await response.json())["error"] == "cross-site request refused"
        cross = {**page.headers, "Sec-Fetch-Site": "cross-site"}
        async with http.post(create, json=RTMP_FORM, headers=cross) as response:
            assert response.status == 403
        # An HTML form (what a cross-site page can send without a preflight): not JSON, refused.
        async with http.post(create, data=RTMP_FORM, headers=page.headers) as response:
            assert response.status == 415
        # A cross-site login attempt is refused as well (login CSRF).
        body = {"api_key": "devkey", "api_secret": "secret"}
        async with http.post(f"{base}{API}/login", json=body, headers={"Origin": "http://evil.example"}) as response:
            assert response.status == 403
        async with service.client() as client:
            assert list((await client.ingress.list_ingress(ListIngressRequest())).items) == []


async def test_actions_go_through_the_ingress_api(service: RunningService) -> None:
    base = service.http_url
    async with _client() as http:
        page = await _page(http, base)
        status, created = await page.post(f"{API}/ingresses", RTMP_FORM)
        assert status == 200, created
        key = created["stream_key"]
        assert created["input"] == "RTMP" and created["status"] == "INACTIVE" and created["room"] == "stage"
        assert created["push"][0] == {"label": "RTMP", "url": f"rtmp://ingress.example.com:1935/live/{key}"}
        assert created["ffmpeg"].endswith(f"-f flv rtmp://ingress.example.com:1935/live/{key}")
        async with service.client() as client:
            (stored,) = (await client.ingress.list_ingress(ListIngressRequest())).items
        assert (stored.ingress_id, stored.stream_key, stored.participant_identity) == (
            created["ingress_id"],
            key,
            "cam-1",
        )
        # LiveKit's validation, in LiveKit's words.
        status, refused = await page.post(f"{API}/ingresses", {**RTMP_FORM, "participant_identity": ""})
        assert (status, refused) == (400, {"error": "invalid ingress: no participant identity"})
        status, refused = await page.post(f"{API}/ingresses", {**RTMP_FORM, "video_preset": "NOPE"})
        assert status == 400
        status, whip = await page.post(
            f"{API}/ingresses", {**RTMP_FORM, "input_type": "WHIP", "enable_transcoding": True}
        )
        assert status == 200 and whip["transcoding"] and whip["push"][0]["url"].endswith(f"/w/{whip['stream_key']}")
        status, preset = await page.post(f"{API}/ingresses", {**RTMP_FORM, "video_preset": "H264_1080P_30FPS_1_LAYER"})
        assert status == 200 and preset["preset"] == "H264_1080P_30FPS_1_LAYER"

        layers = [{"quality": "HIGH", "width": 960, "height": 540, "bitrate": 1_500_000}]
        custom = {"codec": "VP8", "frame_rate": 25, "layers": layers}
        status, made = await page.post(
            f"{API}/ingresses", {**RTMP_FORM, "video_preset": "custom", "video_options": custom}
        )
        assert status == 200 and made["preset"] == "custom", made
        async with service.client() as client:
            (stored,) = (await client.ingress.list_ingress(ListIngressRequest(ingress_id=made["ingress_id"]))).items
        assert stored.video.options.video_codec == VideoCodec.VP8 and stored.video.options.frame_rate == 25
        assert [(la.quality, la.width, la.height, la.bitrate) for la in stored.video.options.layers] == [
            (VideoQuality.HIGH, 960, 540, 1_500_000)
        ]
        bad = {**custom, "layers": [{**layers[0], "width": 0}]}
        form = {**RTMP_FORM, "video_preset": "custom", "video_options": bad}
        status, refused = await page.post(f"{API}/ingresses", form)
        assert status == 400 and refused["error"].startswith("invalid video parameters"), refused
        await page.post(f"{API}/ingresses/{made['ingress_id']}/delete")

        ingress = created["ingress_id"]
        status, disabled = await page.post(f"{API}/ingresses/{ingress}/update", {"enabled": False})
        assert status == 200 and disabled["enabled"] is False
        status, _ = await page.post(f"{API}/ingresses/{ingress}/delete")
        assert status == 200
        status, gone = await page.post(f"{API}/ingresses/{ingress}/delete")
        assert (status, gone) == (404, {"error": "ingress does not exist"})
        async with service.client() as client:
            remaining = {i.ingress_id for i in (await client.ingress.list_ingress(ListIngressRequest())).items}
        assert remaining == {whip["ingress_id"], preset["ingress_id"]}


async def test_the_live_feed_pushes_changes_made_anywhere(service: RunningService) -> None:
    base = service.http_url
    async with _client() as http:
        page = await _page(http, base)
        async with http.get(f"{base}{API}/events") as response:
            assert response.status == 200 and response.content_type == "text/event-stream"
            events = sse_events(response)
            name, snapshot = await anext(events)
            assert name == "snapshot" and snapshot == {"ingresses": [], "stats": []}
            # Made through Twirp by another client: the page hears of it at once.
            async with service.client() as client:
                info = await client.ingress.create_ingress(
                    CreateIngressRequest(
                        input_type=IngressInput.RTMP_INPUT, name="x", room_name="r", participant_identity="p"
                    )
                )
            name, change = await asyncio.wait_for(anext(events), 5)
            assert name == "ingress" and change["ingress"]["stream_key"] == info.stream_key
            await page.post(f"{API}/ingresses/{info.ingress_id}/delete")
            name, change = await asyncio.wait_for(anext(events), 5)
            assert (name, change) == ("ingress", {"ingress_id": info.ingress_id, "ingress": None})
            # Logged out: the stream ends at its next event.
            await page.post(f"{API}/logout")
            await page.http.post(f"{base}{API}/login", json={}, headers={"Origin": base})  # (refused: no key)
            async with service.client() as client:
                await client.ingress.create_ingress(
                    CreateIngressRequest(
                        input_type=IngressInput.RTMP_INPUT, name="y", room_name="r", participant_identity="p"
                    )
                )
            with pytest.raises(StopAsyncIteration):
                await asyncio.wait_for(anext(events), 5)


async def test_the_preview_token_subscribes_to_one_room_for_minutes(service: RunningService) -> None:
    base = service.http_url
    async with _client() as http:
        page = await _page(http, base)
        _, created = await page.post(f"{API}/ingresses", RTMP_FORM)
        status, grant = await page.post(f"{API}/ingresses/{created['ingress_id']}/preview")
        assert status == 200, grant
        assert grant["ws_url"] == "ws://127.0.0.1:7880" and grant["participant"] == "cam-1"
        claims = jwt.decode(grant["token"], "secret", algorithms=["HS256"])
        assert claims["video"] == {
            "roomJoin": True,
            "room": "stage",
            "canPublish": False,
            "canSubscribe": True,
            "canPublishData": False,
            "canUpdateOwnMetadata": False,
            "hidden": True,
        }
        assert claims["exp"] - claims["nbf"] <= 5 * 60 and claims["sub"].startswith("pyingress-preview-")
        # A page opened from another machine reaches the local dev room server on the host it came from.
        lan = {**page.headers, "Host": "192.0.2.10:8080", "Origin": "http://192.0.2.10:8080"}
        async with http.post(f"{base}{API}/ingresses/{created['ingress_id']}/preview", json={}, headers=lan) as r:
            assert (await r.json())["ws_url"] == "ws://192.0.2.10:7880"
        async with http.get(base + "/", headers={"Host": "192.0.2.10:8080"}) as r:
            csp = r.headers["Content-Security-Policy"]
            assert "connect-src 'self' ws://192.0.2.10:7880 http://192.0.2.10:7880" in csp
        status, missing = await page.post(f"{API}/ingresses/IN_nosuchthing/preview")
        assert (status, missing) == (404, {"error": "ingress does not exist"})


async def test_dev_mode_on_loopback_skips_the_form_but_not_the_csrf_check(tmp_path: Path) -> None:
    async with running_service(tmp_path, development=True) as service:
        base = service.http_url
        async with _client() as http:
            async with http.get(f"{base}{API}/session") as response:
                assert response.status == 200
                described = await response.json()
                assert described["dev"] is True and "HttpOnly" in response.headers["Set-Cookie"]
            page = Page(http, base, described)
            status, _ = await page.post(f"{API}/ingresses", RTMP_FORM)
            assert status == 200
            async with http.post(f"{base}{API}/ingresses", json=RTMP_FORM, headers={"Origin": base}) as response:
                assert response.status == 403  # the cookie alone still does nothing
        # A DNS-rebound site (its own host name resolving to 127.0.0.1) gets no free session.
        async with _client() as http:
            headers = {"Host": "evil.example:8080"}
            async with http.get(f"{base}{API}/session", headers=headers) as response:
                assert response.status == 401


async def test_a_stopping_service_ends_the_open_pages_streams_at_once(tmp_path: Path) -> None:
    async with running_service(tmp_path) as service:
        base = service.http_url
        async with _client() as http:
            await _page(http, base)
            async with http.get(f"{base}{API}/events") as response:
                events = sse_events(response)
                assert (await anext(events))[0] == "snapshot"
                started = asyncio.get_running_loop().time()
                await asyncio.wait_for(service.service.stop(), 10)  # not aiohttp's 60 s wait for open handlers
                assert asyncio.get_running_loop().time() - started < 5
                with pytest.raises((StopAsyncIteration, aiohttp.ClientPayloadError)):
                    await asyncio.wait_for(anext(events), 5)
