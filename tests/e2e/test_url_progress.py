"""End to end: how far a URL ingress's file has played, where a user looks for it — the dashboard's live session
figures (its Server-Sent Events feed, what the page renders as "Played 0:04 of 0:10 (40 %)"), and ``pyingress
ingress watch``, which reads pyingress's own progress endpoint (IngressState has no field for it)."""

import asyncio
import re
import subprocess
import sys
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


async def test_the_cli_watch_prints_the_played_time_every_10_s_and_the_endpoint_wants_an_admin_token(
    pyingress_factory: Callable[..., PyingressPeer], livekit_server: LivekitPeer, tmp_path: Path
) -> None:
    make_file(tmp_path, "clip.ts", duration=22.0, size="320x180")
    peer = pyingress_factory()
    base = peer.http_url
    with MediaServer(tmp_path) as media:
        async with api.LiveKitAPI(base, livekit_server.api_key, livekit_server.api_secret) as client:
            info = await client.ingress.create_ingress(
                url_request(media.file_url("clip.ts"), "url-watch", "url-watch-source")
            )
            flags = ["--url", base, "--api-key", livekit_server.api_key, "--api-secret", livekit_server.api_secret]
            command = [sys.executable, "-m", "pyingress", "ingress", "watch", info.ingress_id, *flags]
            watch = subprocess.Popen(
                [*command, "--until", "COMPLETE", "--timeout", "60", "--interval", "0.5"],
                stdout=subprocess.PIPE,
                stderr=subprocess.PIPE,
                text=True,
            )
            async with aiohttp.ClientSession() as http:
                url = f"{base}/pyingress/v1/progress/{info.ingress_id}"
                async with http.get(url) as response:
                    assert response.status == 401
                viewer = livekit_server.token("someone", "url-watch")  # a room token: no ingressAdmin grant
                async with http.get(url, headers={"Authorization": f"Bearer {viewer}"}) as response:
                    assert response.status == 403
                admin = api.AccessToken(livekit_server.api_key, livekit_server.api_secret)
                admin_token = admin.with_grants(api.VideoGrants(ingress_admin=True)).to_jwt()
                async with http.get(
                    f"{base}/pyingress/v1/progress/IN_unknown", headers={"Authorization": f"Bearer {admin_token}"}
                ) as response:
                    assert response.status == 404
            out, err = await asyncio.to_thread(watch.communicate, timeout=90)
    peer.stop()
    assert watch.returncode == 0, (out, err)
    played = re.findall(r"played (\d+:\d\d) of 0:22", out)  # a line also when the input's bitrate changes
    assert list(dict.fromkeys(played)) == ["0:00", "0:10", "0:20"], out
    assert out.splitlines()[-1].split()[2] == "COMPLETE", out
