"""The README's dashboard screenshot, made the way the browser test drives it: a livekit-server and `pyingress serve`
on free ports, headless Chromium logged in, an RTMP ingress created in the form, ffmpeg pushing, one session's
figures open and the preview playing.

    .cache/venv/bin/python -m tests.web.screenshot docs/dashboard.png
"""

import argparse
import asyncio
import tempfile
from pathlib import Path

from tests.harness.livekit_peer import API_KEY, API_SECRET, LivekitPeer
from tests.harness.processes import stop
from tests.harness.publishers import TestPattern, start_ffmpeg
from tests.harness.pyingress_peer import PyingressPeer
from tests.web.dashboard_browser import DashboardBrowser


async def screenshot(out: Path, workdir: Path) -> None:
    livekit = LivekitPeer(workdir).start()
    peer = PyingressPeer(workdir / "pyingress", livekit.ws_url).start()
    encoder = None
    try:
        async with DashboardBrowser(peer.http_url) as browser:
            page = browser.page
            await page.set_viewport_size({"width": 1280, "height": 1400})
            await browser.log_in(API_KEY, API_SECRET)
            await browser.create(input="WHIP", name="studio-camera", room="studio", identity="studio-cam")
            ingress_id = await browser.create(input="RTMP", name="obs-main", room="studio", identity="obs-main")
            push = await browser.text("#created .push-url")
            encoder = start_ffmpeg(TestPattern(duration=600), push, workdir / "ffmpeg.log")
            await browser.wait_status(ingress_id, "PUBLISHING", timeout=45)
            await page.click(f'tr.ingress[data-ingress-id="{ingress_id}"] button.link')
            await browser.row_click(ingress_id, "preview")
            await browser.wait_video_width(1280)
            await asyncio.sleep(20)  # the charts fill, the figures settle
            await browser.wait_video_width(1280)  # (a loaded machine may have the SFU step down for a while)
            await page.screenshot(path=str(out), full_page=True)
    finally:
        stop(encoder)
        peer.stop()
        livekit.stop()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("out", type=Path)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as workdir:
        asyncio.run(screenshot(args.out.resolve(), Path(workdir)))
    print(f"wrote {args.out}")


if __name__ == "__main__":
    main()
