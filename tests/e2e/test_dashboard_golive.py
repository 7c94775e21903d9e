"""Go live from the dashboard: Chromium (its fake camera and microphone) creates a WHIP ingress in the form, presses
"Go live from this browser", and watches itself through the preview — three simulcast layers passed through, so
the quality switch changes what it sees — then stops, and the ingress goes back to INACTIVE."""

from collections.abc import Callable

from livekit import rtc

from tests.harness.livekit_peer import API_KEY, API_SECRET, LivekitPeer
from tests.harness.pyingress_peer import PyingressPeer
from tests.harness.subscriber import RoomSubscriber
from tests.web.dashboard_browser import DashboardBrowser

ROOM = "golive-room"
IDENTITY = "golive-cam"


async def test_go_live_from_the_browser_and_watch_it(
    pyingress_factory: Callable[..., PyingressPeer], livekit_server: LivekitPeer
) -> None:
    peer = pyingress_factory()
    async with DashboardBrowser(peer.http_url) as browser:
        page = browser.page
        await browser.log_in(API_KEY, API_SECRET)
        ingress_id = await browser.create(input="WHIP", name="my camera", room=ROOM, identity=IDENTITY)
        assert (
            await browser.text("#created .push-url")
            == f"{peer.http_url}/w/{await browser.text('#created .stream-key')}"
        )
        await page.click("#created button.golive-start")
        await browser.wait_text("#created .golive", "publishing this browser's camera")
        await browser.wait_status(ingress_id, "PUBLISHING", timeout=30)

        async with RoomSubscriber(livekit_server.ws_url, livekit_server.token("observer", ROOM)) as observer:
            report = await observer.wait_tracks(IDENTITY, timeout=30)
            assert report.kind == rtc.ParticipantKind.PARTICIPANT_KIND_INGRESS
            (video,) = report.tracks_of("video")
            assert video.simulcasted  # the browser's three layers, passed through as one track

        await browser.row_click(ingress_id, "preview")
        # The browser's own bandwidth estimate decides when it sends its full size (the WHIP tests allow 30 s).
        await browser.wait_video_width(1280, timeout=45)
        await page.click('#preview button.quality[data-quality="LOW"]')
        await browser.wait_video_width(320, timeout=30)

        await page.click("#created button.golive-stop")
        await browser.wait_text("#created .golive", "stopped")
        await browser.wait_status(ingress_id, "INACTIVE", timeout=30)
        assert not [line for line in browser.console if line.startswith("pageerror")], browser.console
