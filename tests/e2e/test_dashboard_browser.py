"""The dashboard in a real browser against a real room: Debian's headless Chromium logs in, creates an RTMP ingress
in the form, reads the key from the page, ffmpeg pushes to it, the row turns PUBLISHING without a reload, the
preview plays the room through livekit-client served by pyingress (1280 wide at HIGH, 320 at LOW), and deleting it
from the page makes the participant leave the room."""

import asyncio
import re
import time
from collections.abc import Callable
from pathlib import Path

import numpy as np
from livekit import api

from tests.harness.livekit_peer import API_KEY, API_SECRET, LivekitPeer
from tests.harness.processes import stop
from tests.harness.publishers import TestPattern, start_ffmpeg
from tests.harness.pyingress_peer import PyingressPeer
from tests.harness.subscriber import RoomSubscriber
from tests.web.dashboard_browser import DashboardBrowser

ROOM = "dashboard-room"
IDENTITY = "dashboard-cam"


async def _participants(livekit: LivekitPeer, room: str) -> list[str]:
    async with livekit.api() as client:
        listed = await client.room.list_participants(api.ListParticipantsRequest(room=room))
    return [p.identity for p in listed.participants]


async def _wait_participants(livekit: LivekitPeer, room: str, want: Callable[[list[str]], bool]) -> list[str]:
    deadline = time.monotonic() + 30
    seen = await _participants(livekit, room)
    while not want(seen) and time.monotonic() < deadline:
        await asyncio.sleep(0.5)
        seen = await _participants(livekit, room)
    return seen


async def test_create_push_watch_and_delete_from_the_dashboard(
    pyingress_factory: Callable[..., PyingressPeer], livekit_server: LivekitPeer, tmp_path: Path
) -> None:
    peer = pyingress_factory()  # not --dev: the dashboard asks for the key and secret
    async with DashboardBrowser(peer.http_url) as browser:
        page = browser.page
        await browser.log_in(API_KEY, API_SECRET)
        ingress_id = await browser.create(input="RTMP", name="from the page", room=ROOM, identity=IDENTITY)
        key = await browser.text("#created .stream-key")
        push = await browser.text("#created .push-url")
        assert push == f"{peer.rtmp_url}/{key}" and len(key) == 12
        assert (await browser.text("#created .ffmpeg")).endswith(f"-f flv {push}")
        await browser.wait_status(ingress_id, "INACTIVE")
        await page.evaluate("() => { window.notReloaded = true; }")

        encoder = start_ffmpeg(TestPattern(duration=120), push, tmp_path / "ffmpeg.log")
        try:
            await browser.wait_status(ingress_id, "PUBLISHING", timeout=45)
            assert await page.evaluate("() => window.notReloaded === true")  # pushed to the page, no reload
            # The session's figures, pushed every 2 s: the input in the row, the rest in its details.
            row = f'tr.ingress[data-ingress-id="{ingress_id}"]'
            await browser.wait_text(f"{row} td.session", r"^1280×720 · 30 fps · H264 · [0-9.]+ [Mk]b/s")
            await page.click(f"{row} button.link")
            details = f'tr.details[data-details-of="{ingress_id}"]'
            await browser.wait_text(details, "% of a core")
            figures = await browser.text(details)
            # Nobody in the room yet: the layers are (or are about to be) paused, and say so.
            high = r"HIGH 1280×720 @ [0-9.]+ Mb/s, [0-9.]+ fps(, paused)?"
            layers = rf"Output \(h264\){high} · MEDIUM 640×360 .* · LOW 320×180 "
            assert re.search(layers, figures), figures
            assert re.search(r"Input audioaac 2 ch 48 kHz, [0-9]+ kb/s", figures), figures
            assert re.search(r"Ingest → outHIGH p50 [0-9.]+ ms / p95 [0-9.]+ ms", figures), figures
            await browser.wait_text(details, r"Input frame rate: [1-9][0-9]*\.[0-9] fps")
            # (The rate itself is whatever the shared machine lets ffmpeg push; bitrate and frame rate are drawn.)
            assert await page.locator(f"{details} canvas").count() == 2

            observer_token = livekit_server.token("observer", ROOM, can_publish=False)
            async with RoomSubscriber(livekit_server.ws_url, observer_token) as observer:
                await observer.wait_participant(IDENTITY)
                await browser.row_click(ingress_id, "preview")
                high = await browser.wait_video_width(1280)
                assert high["height"] == 720
                await asyncio.sleep(1.5)
                later = await browser.video()
                assert later["time"] > high["time"] + 0.5 and not later["paused"], (high, later)
                pixels = await browser.player_pixels()
                assert pixels.size and float(np.std(pixels.astype(np.float32))) > 20, "the player shows one colour"
                # The figures count the observer as a viewer and the preview as the dashboard's own.
                await browser.wait_text(details, r"Viewers1 \(\+1 dashboard preview\)")
                # The preview is a hidden viewer: the room's other participants see the ingress alone.
                viewers = [i for i in await _participants(livekit_server, ROOM) if i.startswith("pyingress-preview-")]
                assert len(viewers) == 1 and list(observer.room.remote_participants) == [IDENTITY]

                await page.click('#preview button.quality[data-quality="LOW"]')
                low = await browser.wait_video_width(320)
                assert low["height"] == 180
                await asyncio.sleep(1.0)
                assert (await browser.video())["time"] > low["time"]
                level = await page.evaluate("() => document.getElementById('preview-level').value")
                assert level > 0.1, f"the audio meter stays at {level}"  # the 440 Hz tone is heard

                await browser.row_click(ingress_id, "delete")
                await browser.row_click(ingress_id, "delete")  # the second click confirms
                await page.wait_for_selector(f'tr.ingress[data-ingress-id="{ingress_id}"]', state="detached")
                await observer.wait_gone(IDENTITY)  # the participant leaves the room
                assert IDENTITY not in await _wait_participants(livekit_server, ROOM, lambda seen: IDENTITY not in seen)
                await page.wait_for_function(
                    "() => /left the room|deleted/.test(document.getElementById('preview-status').textContent)"
                )
            async with api.LiveKitAPI(peer.http_url, API_KEY, API_SECRET) as client:
                remaining = await client.ingress.list_ingress(api.ListIngressRequest())
            assert ingress_id not in [i.ingress_id for i in remaining.items]
        finally:
            stop(encoder)
        assert not [line for line in browser.console if line.startswith("pageerror")], browser.console


async def test_custom_layers_and_enable_disable_from_the_form(
    pyingress_factory: Callable[..., PyingressPeer],
) -> None:
    peer = pyingress_factory()
    async with DashboardBrowser(peer.http_url) as browser:
        page = browser.page
        await browser.log_in(API_KEY, API_SECRET)
        assert not await page.is_visible("#custom-video")
        await page.select_option("#create-preset", "custom")
        assert await page.is_visible("#custom-video") and not await page.is_visible("#create-url")
        await page.select_option("#custom-codec", "VP8")
        low = '#custom-video .layer-row[data-quality="LOW"]'
        await page.fill(f"{low} .w", "320")
        await page.fill(f"{low} .h", "180")
        await page.fill(f"{low} .kbps", "200")
        ingress_id = await browser.create(input="RTMP", name="custom", room="custom-room", identity="custom-cam")
        row = f'tr.ingress[data-ingress-id="{ingress_id}"]'
        assert await browser.text(f"{row} td.input") == "RTMPcustom layers"
        async with api.LiveKitAPI(peer.http_url, API_KEY, API_SECRET) as client:
            (info,) = (await client.ingress.list_ingress(api.ListIngressRequest(ingress_id=ingress_id))).items
        layers = [(layer.width, layer.height, layer.bitrate) for layer in info.video.options.layers]
        assert layers == [(1280, 720, 2_500_000), (640, 360, 800_000), (320, 180, 200_000)]
        assert info.video.options.video_codec == api.VideoCodec.VP8

        await browser.row_click(ingress_id, "toggle")  # Disable
        await browser.wait_text(f"{row} td.state", "disabled")
        assert await browser.text(f"{row} button.toggle") == "Enable"
        async with api.LiveKitAPI(peer.http_url, API_KEY, API_SECRET) as client:
            (info,) = (await client.ingress.list_ingress(api.ListIngressRequest(ingress_id=ingress_id))).items
        assert info.HasField("enabled") and not info.enabled
        await browser.row_click(ingress_id, "toggle")  # Enable again
        await browser.wait_text(f"{row} button.toggle", "^Disable$")
        # A refusal from the API shows in the page, in LiveKit's words.
        await page.select_option("#create-preset", "default")
        await page.fill("#create-identity", "")
        await page.evaluate("() => document.getElementById('create-identity').removeAttribute('required')")
        await page.click("#create-button")
        await browser.wait_text("#create-error", "invalid ingress: no participant identity")
        assert not [line for line in browser.console if line.startswith("pageerror")], browser.console
