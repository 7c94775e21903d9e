"""End to end: how far a URL ingress's file has played, where a user looks for it — the dashboard's live session
figures (its Server-Sent Events feed, what the page renders as "Played 0:04 of 0:10 (40 %)").  IngressState has no
field for it, so the Ingress API and the CLI that reads it show none (beyond the reference)."""

import asyncio
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import aiohttp
from livekit import api

from tests.harness.livekit_peer import LivekitPeer
from tests.harness.media_server import MediaServer
from tests.harness.pull_media import make_file, url_request
from tests.harness.pyingress_peer import PyingressPeer
from tests.harness.sse import sse_events

API = "/dashboard/api"
DURATION = 10.0


async def test_the_dashboard_shows_a_file_playing_to_its_end(
    pyingress_factory: Callable[..., PyingressPeer], livekit_server: LivekitPeer, tmp_path: Path
) -> None:
    make_file(tmp_path, "clip.ts", duration=DURATION, size="640x360")
    peer = pyingress_factory()
    base = peer.http_url
    seen: list[tuple[float, dict[str, Any]]] = []  # (when, progress)
    with MediaServer(tmp_path) as media:
        async with (
            aiohttp.ClientSession(cookie_jar=aiohttp.CookieJar(unsafe=True)) as http,
            api.LiveKitAPI(base, livekit_server.api_key, livekit_server.api_secret) as client,
        ):
            login = {"api_key": livekit_server.api_key, "api_secret": livekit_server.api_secret}
            async with http.post(f"{base}{API}/login", json=login, headers={"Origin": base}) as response:
                assert response.status == 200, await response.text()
            async with http.get(f"{base}{API}/events") as response:
                events = sse_events(response)
                assert (await anext(events))[0] == "snapshot"
                info = await client.ingress.create_ingress(
                    url_request(media.file_url("clip.ts"), "url-progress", "url-progress-source")
                )
                async with asyncio.timeout(DURATION + 20):
                    async for name, data in events:
                        if name != "stats":
                            continue
                        ours = [s for s in data["sessions"] if s["ingress_id"] == info.ingress_id]
                        if not ours:
                            if seen:
                                break  # the session ended: the file was played
                            continue
                        if ours[0]["progress"] is not None:
                            seen.append((time.monotonic(), ours[0]["progress"]))
    peer.stop()
    print("progress seen:", [progress for _, progress in seen])
    assert len(seen) >= 3, seen
    assert all(abs(progress["duration_s"] - DURATION) < 0.5 for _, progress in seen), seen  # known from the start
    positions = [progress["position_s"] for _, progress in seen]
    assert positions == sorted(positions) and positions[-1] > positions[0], positions
    assert all(0 <= p <= DURATION for p in positions), positions
    # Real time: the position grows with the clock (reports every 2 s, the worker's figure once a second), and the
    # last report before the session ended is in the second half.
    (first_at, first), (last_at, last) = seen[0], seen[-1]
    grown = last["position_s"] - first["position_s"]
    assert abs(grown - (last_at - first_at)) < 2.5, (grown, last_at - first_at)
    assert last["position_s"] >= DURATION / 2, last
