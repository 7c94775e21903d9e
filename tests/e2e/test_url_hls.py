"""End to end: HLS over HTTP — a VOD playlist plays to its end (COMPLETE); a live stream that ffmpeg writes while the
test runs is followed at its live edge, rides out a segment deleted before it is fetched, and ends in ERROR (not a
hang) when its producer dies."""

import asyncio
import signal
import time
from collections.abc import Callable
from pathlib import Path

from livekit import api

from tests.e2e.room_session import ERROR, PUBLISHING, ingress_state, wait_status
from tests.harness.livekit_peer import LivekitPeer
from tests.harness.media_server import MediaServer
from tests.harness.pull_media import make_file, make_hls_vod, playlist_segments, start_live_hls, url_request
from tests.harness.pyingress_peer import PyingressPeer
from tests.harness.subscriber import RoomSubscriber

COMPLETE = 4
STALL = 4.0


async def test_a_vod_playlist_plays_to_its_end(
    pyingress_factory: Callable[..., PyingressPeer], livekit_server: LivekitPeer, tmp_path: Path
) -> None:
    clip = make_file(tmp_path, "clip720.mp4", duration=6, size="640x360")
    playlist = make_hls_vod(tmp_path, clip)
    peer = pyingress_factory()
    room, identity = "url-hls-vod", "hls-vod"
    with MediaServer(tmp_path) as http:
        async with (
            api.LiveKitAPI(peer.http_url, livekit_server.api_key, livekit_server.api_secret) as client,
            RoomSubscriber(livekit_server.ws_url, livekit_server.token("viewer", room)) as viewer,
        ):
            url = http.file_url(str(playlist.relative_to(tmp_path)))
            info = await client.ingress.create_ingress(url_request(url, room, identity))
            report = await viewer.wait_tracks(identity, timeout=20)
            (video,) = report.tracks_of("video")
            assert (video.width, video.height) == (640, 360) and report.tracks_of("audio")
            sizes = await viewer.video_sizes(identity, frames=30, settle=0.5)
            assert sum(sizes.values()) == 30
            state = await wait_status(client, info.ingress_id, COMPLETE, timeout=20)
            assert not state.error
            await viewer.wait_gone(identity, timeout=5)


async def test_a_live_stream_is_followed_rides_out_a_lost_segment_and_errors_when_its_producer_dies(
    pyingress_factory: Callable[..., PyingressPeer], livekit_server: LivekitPeer, tmp_path: Path
) -> None:
    live = tmp_path / "live"
    producer = start_live_hls(live, tmp_path / "ffmpeg-hls.log")
    peer = pyingress_factory({"url_pull": {"live_stall_timeout": STALL}})
    room, identity = "url-hls-live", "hls-live"
    try:
        async with asyncio.timeout(20):
            while len(playlist_segments(live / "index.m3u8")) < 2:
                await asyncio.sleep(0.1)
        with MediaServer(tmp_path) as http:
            async with (
                api.LiveKitAPI(peer.http_url, livekit_server.api_key, livekit_server.api_secret) as client,
                RoomSubscriber(livekit_server.ws_url, livekit_server.token("viewer", room)) as viewer,
            ):
                info = await client.ingress.create_ingress(
                    url_request(http.file_url("live/index.m3u8"), room, identity)
                )
                await viewer.first_video_frame(identity, timeout=20)
                await wait_status(client, info.ingress_id, PUBLISHING, timeout=10)

                # The next segment but one disappears the moment ffmpeg finishes it, before the playlist names it.
                newest = max(
                    int(name.removeprefix("index").removesuffix(".ts"))
                    for name in playlist_segments(live / "index.m3u8")
                )
                lost = live / f"index{newest + 2}.ts"
                async with asyncio.timeout(10):
                    while not lost.exists():
                        await asyncio.sleep(0.005)
                lost.unlink()
                # The stream plays on past the hole: another 3 s of frames, the session still PUBLISHING.
                sizes = await viewer.video_sizes(identity, frames=90, settle=1.0, timeout=15)
                assert sum(sizes.values()) == 90
                assert (await ingress_state(client, info.ingress_id)).status == PUBLISHING
                assert f"skipping HLS segment {http.file_url(f'live/{lost.name}')}" in peer.log()

                producer.send_signal(signal.SIGKILL)  # the producer dies: no end marker, the playlist stops changing
                producer.wait()
                died = time.monotonic()
                state = await wait_status(client, info.ingress_id, ERROR, timeout=STALL + 15)
                assert "has not changed for" in state.error and "the stream has stopped" in state.error, state.error
                assert time.monotonic() - died <= STALL + 10
                await viewer.wait_gone(identity, timeout=5)
    finally:
        if producer.poll() is None:
            producer.kill()
            producer.wait()
