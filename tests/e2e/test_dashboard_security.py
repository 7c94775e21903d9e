"""The dashboard as an admin surface, against a real `pyingress serve` and livekit-server: nothing without a login,
a forged cross-site POST from a page in Chromium changes nothing, and the preview token can only watch its room."""

import asyncio
import base64
import json
from collections.abc import Callable
from typing import Any

import aiohttp
import pytest
from aiohttp import web
from livekit import api, rtc

from tests.harness.livekit_peer import API_KEY, API_SECRET, LivekitPeer
from tests.harness.ports import free_port
from tests.harness.pyingress_peer import PyingressPeer
from tests.harness.subscriber import RoomSubscriber
from tests.web.dashboard_browser import DashboardBrowser

API = "/dashboard/api"
ROOM = "secured-room"
IDENTITY = "secured-cam"


@pytest.fixture(scope="module")
def peer(pyingress_factory: Callable[..., PyingressPeer]) -> PyingressPeer:
    return pyingress_factory()  # not --dev: a login is needed


async def _logged_in(http: aiohttp.ClientSession, base: str) -> dict[str, Any]:
    body = {"api_key": API_KEY, "api_secret": API_SECRET}
    async with http.post(f"{base}{API}/login", json=body, headers={"Origin": base}) as response:
        assert response.status == 200
        described: dict[str, Any] = await response.json()
        return described


async def _ingress_ids(peer: PyingressPeer) -> set[str]:
    async with api.LiveKitAPI(peer.http_url, API_KEY, API_SECRET) as client:
        return {i.ingress_id for i in (await client.ingress.list_ingress(api.ListIngressRequest())).items}


async def test_without_a_login_every_action_and_the_preview_token_answer_401(peer: PyingressPeer) -> None:
    base = peer.http_url
    async with api.LiveKitAPI(base, API_KEY, API_SECRET) as client:
        info = await client.ingress.create_ingress(
            api.CreateIngressRequest(
                input_type=api.IngressInput.RTMP_INPUT, name="n", room_name=ROOM, participant_identity=IDENTITY
            )
        )
    paths = [
        ("GET", f"{API}/session"),
        ("GET", f"{API}/events"),
        ("POST", f"{API}/logout"),
        ("POST", f"{API}/ingresses"),
        ("POST", f"{API}/ingresses/{info.ingress_id}/update"),
        ("POST", f"{API}/ingresses/{info.ingress_id}/delete"),
        ("POST", f"{API}/ingresses/{info.ingress_id}/preview"),
    ]
    async with aiohttp.ClientSession() as http:
        for method, path in paths:
            async with http.request(method, base + path, json={"enabled": False}, headers={"Origin": base}) as response:
                assert response.status == 401, (method, path)
                assert await response.json() == {"error": "login required"}
    assert info.ingress_id in await _ingress_ids(peer)  # nothing was deleted or changed


async def test_a_forged_cross_site_post_from_a_browser_is_refused(peer: PyingressPeer) -> None:
    """The browser is logged in to the dashboard; a page of another origin (same site: 127.0.0.1, so the
    SameSite=Strict cookie does travel) tries a form POST and two fetches. None creates anything."""
    before = await _ingress_ids(peer)
    form = {"input_type": "RTMP", "name": "forged", "room_name": "x", "participant_identity": "y"}
    evil = f"""<!doctype html><meta charset="utf-8"><title>evil</title>
<iframe name="sink"></iframe>
<form id="f" method="POST" target="sink" enctype="text/plain" action="{peer.http_url}{API}/ingresses">
<input name='{json.dumps(form)[:-1]}, "pad": "' value='"}}'></form>
<script>
window.attack = async () => {{
  const target = "{peer.http_url}{API}/ingresses";
  const results = {{}};
  document.getElementById("f").submit();
  try {{
    await fetch(target, {{method: "POST", mode: "no-cors", credentials: "include",
      headers: {{"Content-Type": "text/plain"}}, body: JSON.stringify({json.dumps(form)})}});
    results.simple = "sent";
  }} catch (e) {{ results.simple = "blocked: " + e; }}
  try {{
    const r = await fetch(target, {{method: "POST", credentials: "include",
      headers: {{"Content-Type": "application/json", "X-CSRF-Token": "guess"}},
      body: JSON.stringify({json.dumps(form)})}});
    results.json = r.status;
  }} catch (e) {{ results.json = "blocked: " + e; }}
  await new Promise((resolve) => setTimeout(resolve, 1500));
  return results;
}};
</script>"""

    # Served by a real server (a Playwright route would make Playwright answer CORS preflights itself).
    async def evil_page(request: web.Request) -> web.Response:
        return web.Response(text=evil, content_type="text/html")

    site = web.Application()
    site.router.add_get("/evil.html", evil_page)
    runner = web.AppRunner(site)
    await runner.setup()
    evil_port = free_port()
    await web.TCPSite(runner, "127.0.0.1", evil_port).start()
    try:
        async with DashboardBrowser(peer.http_url) as browser:
            await browser.log_in(API_KEY, API_SECRET)
            attacker = await browser.context.new_page()
            await attacker.goto(f"http://127.0.0.1:{evil_port}/evil.html")
            results = await attacker.evaluate("() => window.attack()")
            # The JSON fetch needs a CORS preflight, which the dashboard refuses: the browser never sends it.
            assert results["json"].startswith("blocked"), results
            # The dashboard itself still works for the logged-in page.
            await browser.page.reload()
            await browser.page.wait_for_selector("#live.on")
    finally:
        await runner.cleanup()
    assert await _ingress_ids(peer) == before
    # The two requests the browser did send (form, no-cors fetch) reached the dashboard and were refused there.
    refused = f"dashboard: refused POST /dashboard/api/ingresses from 127.0.0.1 (Origin http://127.0.0.1:{evil_port})"
    refusals = [line for line in peer.log().splitlines() if refused in line]
    assert len(refusals) == 2 and all("WARNING" in line for line in refusals), refusals


def _forged_room(token: str, room: str) -> str:
    """The same token with another room in its claims and its original signature (what a thief could do)."""
    header, payload, signature = token.split(".")
    claims = json.loads(base64.urlsafe_b64decode(payload + "=" * (-len(payload) % 4)))
    claims["video"]["room"] = room
    forged = base64.urlsafe_b64encode(json.dumps(claims).encode()).rstrip(b"=").decode()
    return f"{header}.{forged}.{signature}"


async def test_the_preview_token_only_watches_its_own_room(peer: PyingressPeer, livekit_server: LivekitPeer) -> None:
    base = peer.http_url
    async with aiohttp.ClientSession(cookie_jar=aiohttp.CookieJar(unsafe=True)) as http:
        described = await _logged_in(http, base)
        headers = {"Origin": base, "X-CSRF-Token": described["csrf"]}
        form = {"input_type": "RTMP", "name": "n", "room_name": ROOM, "participant_identity": IDENTITY}
        async with http.post(f"{base}{API}/ingresses", json=form, headers=headers) as response:
            created = await response.json()
        async with http.post(f"{base}{API}/ingresses/{created['ingress_id']}/preview", json={}, headers=headers) as r:
            grant = await r.json()
    token = grant["token"]
    assert grant["ws_url"] == livekit_server.ws_url and grant["room"] == ROOM

    observer_token = livekit_server.token("observer", ROOM)
    async with RoomSubscriber(livekit_server.ws_url, observer_token) as observer:
        received: list[bytes] = []
        observer.room.on("data_received", lambda packet: received.append(packet.data))
        viewer = rtc.Room()
        await viewer.connect(grant["ws_url"], token)
        try:
            assert viewer.name == ROOM  # the room is the token's
            # It may not publish media...
            source = rtc.AudioSource(48_000, 1)
            track = rtc.LocalAudioTrack.create_audio_track("sneaky", source)
            # (livekit-server does not answer a publish it refuses: the SDK gives up after its timeout.)
            with pytest.raises(Exception, match=r"(?i)permission|not allowed|denied|timed out"):
                await asyncio.wait_for(viewer.local_participant.publish_track(track), 30)
            async with livekit_server.api() as client:
                listed = await client.room.list_participants(api.ListParticipantsRequest(room=ROOM))
            (seen,) = [p for p in listed.participants if p.identity == viewer.local_participant.identity]
            assert not seen.permission.can_publish and seen.permission.hidden and list(seen.tracks) == []
            # ... nor data, and the room's participants do not see it at all (hidden).
            await viewer.local_participant.publish_data(b"hello", reliable=True)
            await asyncio.sleep(2)
            assert received == []
            assert viewer.local_participant.identity not in observer.room.remote_participants
        finally:
            await viewer.disconnect()

    # Another room: the grant is signed; with the room changed livekit-server refuses the token outright.
    other = rtc.Room()
    with pytest.raises(Exception, match=r"(?i)401|unauthori|invalid|signature|failed"):
        await asyncio.wait_for(other.connect(grant["ws_url"], _forged_room(token, "another-room")), 15)
    # Nor does it open livekit-server's room API (listing another room's participants).
    async with (
        aiohttp.ClientSession() as http,
        http.post(
            f"{livekit_server.http_url}/twirp/livekit.RoomService/ListParticipants",
            json={"room": "another-room"},
            headers={"Authorization": f"Bearer {token}"},
        ) as response,
    ):
        assert response.status in (401, 403), await response.text()
