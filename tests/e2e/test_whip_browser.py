"""End to end with a real browser: Debian's headless Chromium publishing its fake camera and microphone over WHIP
(a page of ours, ``fetch`` POST of the offer), a LiveKit subscriber in the room."""

import asyncio
from collections.abc import Callable

import pytest
from livekit import api, rtc

from tests.e2e.room_session import INACTIVE, PUBLISHING, Q_HIGH, Q_LOW, Q_MEDIUM, ingress_state, wait_status
from tests.e2e.test_whip_passthrough import LOOPBACK, create_whip_ingress
from tests.harness.browser import ChromiumPublisher
from tests.harness.livekit_peer import LivekitPeer
from tests.harness.pyingress_peer import PyingressPeer
from tests.harness.subscriber import RoomSubscriber


@pytest.fixture(scope="module")
def whip_peer(pyingress_factory: Callable[..., PyingressPeer]) -> PyingressPeer:
    return pyingress_factory(LOOPBACK)


async def _assert_layer(viewer: RoomSubscriber, identity: str, quality: int, size: tuple[int, int]) -> None:
    seen = await viewer.sizes_until(identity, quality, size, timeout=30)
    assert seen[-15:] == [size] * 15, f"quality {quality}: wanted {size}, saw {seen[-30:]}"


@pytest.mark.parametrize("simulcast", [False, True], ids=["plain", "simulcast"])
async def test_chromium_publishes_through_whip_passthrough(
    simulcast: bool, whip_peer: PyingressPeer, livekit_server: LivekitPeer
) -> None:
    room = identity = f"chromium-{'simulcast' if simulcast else 'plain'}"
    async with api.LiveKitAPI(whip_peer.http_url, livekit_server.api_key, livekit_server.api_secret) as client:
        info = await create_whip_ingress(client, room, identity)
        async with ChromiumPublisher() as browser:
            result = await browser.publish(f"{info.url}/{info.stream_key}", simulcast=simulcast)
            assert result["status"] == 201, (result, browser.console)
            token = livekit_server.token("viewer", room, can_publish=False)
            async with RoomSubscriber(livekit_server.ws_url, token) as viewer:
                report = await viewer.wait_tracks(identity, timeout=30)
                assert report.kind == rtc.ParticipantKind.PARTICIPANT_KIND_INGRESS
                (video,) = report.tracks_of("video")
                assert len(report.tracks_of("audio")) == 1
                await wait_status(client, info.ingress_id, PUBLISHING)
                # The browser's own bandwidth estimate decides when it sends every size; then the viewer checks.
                await browser.wait_sending({1280, 640, 320} if simulcast else {1280})
                if not simulcast:
                    sizes = await viewer.video_sizes(identity, frames=20, settle=1.0)
                    assert set(sizes) == {(1280, 720)}, f"{sizes}; browser sends {await browser.outbound()}"
                else:
                    assert video.simulcasted
                    for quality, size in ((Q_HIGH, (1280, 720)), (Q_MEDIUM, (640, 360)), (Q_LOW, (320, 180))):
                        try:
                            await _assert_layer(viewer, identity, quality, size)
                        except AssertionError as error:
                            raise AssertionError(f"{error}; browser sends {await browser.outbound()}") from None
                assert len(await viewer.audio_frames(identity, frames=10)) == 10
            assert await browser.unpublish(whip_peer.http_url) == 200
        await wait_status(client, info.ingress_id, INACTIVE, timeout=15)


async def test_chromium_simulcast_transcoded_comes_out_as_the_presets_ladder(
    whip_peer: PyingressPeer, livekit_server: LivekitPeer
) -> None:
    room = identity = "chromium-transcoded"
    async with api.LiveKitAPI(whip_peer.http_url, livekit_server.api_key, livekit_server.api_secret) as client:
        info = await create_whip_ingress(client, room, identity, enable_transcoding=True)
        async with ChromiumPublisher() as browser:
            result = await browser.publish(f"{info.url}/{info.stream_key}", simulcast=True)
            assert result["status"] == 201, (result, browser.console)
            token = livekit_server.token("viewer", room, can_publish=False)
            async with RoomSubscriber(livekit_server.ws_url, token) as viewer:
                report = await viewer.wait_tracks(identity, timeout=30)
                (video,) = report.tracks_of("video")
                assert video.simulcasted and video.mime_type == "video/H264"
                await wait_status(client, info.ingress_id, PUBLISHING)
                await _assert_layer(viewer, identity, Q_HIGH, (1280, 720))
                await _assert_layer(viewer, identity, Q_LOW, (320, 180))
            assert await browser.unpublish(whip_peer.http_url) == 200
        await wait_status(client, info.ingress_id, INACTIVE, timeout=15)


@pytest.mark.parametrize("codec", ["VP9", "AV1"])
async def test_chromium_vp9_and_av1_are_transcoded(
    codec: str, whip_peer: PyingressPeer, livekit_server: LivekitPeer
) -> None:
    """Codecs pass-through cannot forward: a transcoded ingress takes them (OBS sends AV1) and publishes H.264."""
    room = identity = f"chromium-{codec.lower()}"
    async with api.LiveKitAPI(whip_peer.http_url, livekit_server.api_key, livekit_server.api_secret) as client:
        info = await create_whip_ingress(client, room, identity, enable_transcoding=True)
        async with ChromiumPublisher() as browser:
            result = await browser.publish(f"{info.url}/{info.stream_key}", size=(640, 360), codec=f"video/{codec}")
            assert result["status"] == 201, (result, browser.console)
            assert f"{codec}/90000" in result["answer"]
            token = livekit_server.token("viewer", room, can_publish=False)
            async with RoomSubscriber(livekit_server.ws_url, token) as viewer:
                report = await viewer.wait_tracks(identity, timeout=30)
                (video,) = report.tracks_of("video")
                assert video.mime_type == "video/H264"
                await wait_status(client, info.ingress_id, PUBLISHING)
                await _assert_layer(viewer, identity, Q_HIGH, (640, 360))
            state = await wait_status(client, info.ingress_id, PUBLISHING)
            assert state.video.mime_type.lower() == f"video/{codec.lower()}"
            assert await browser.unpublish(whip_peer.http_url) == 200
        await wait_status(client, info.ingress_id, INACTIVE, timeout=15)


async def test_chromium_restarts_ice_through_patch_and_keeps_publishing(
    whip_peer: PyingressPeer, livekit_server: LivekitPeer
) -> None:
    """RFC 9725 §4.3.2 in pass-through: a PATCH with new ICE credentials, answered with ours; the browser moves to
    pyingress's new ICE agent (another port) under the same DTLS association, and the viewer keeps its pictures."""
    room = identity = "chromium-ice-restart"
    async with api.LiveKitAPI(whip_peer.http_url, livekit_server.api_key, livekit_server.api_secret) as client:
        info = await create_whip_ingress(client, room, identity)
        async with ChromiumPublisher() as browser:
            result = await browser.publish(f"{info.url}/{info.stream_key}", size=(640, 360))
            assert result["status"] == 201, (result, browser.console)
            token = livekit_server.token("viewer", room, can_publish=False)
            async with RoomSubscriber(livekit_server.ws_url, token) as viewer:
                await viewer.wait_tracks(identity, timeout=30)
                await wait_status(client, info.ingress_id, PUBLISHING)
                before = await browser.remote_port()
                restarted = await browser.restart_ice(whip_peer.http_url)
                assert restarted["status"] == 200, restarted
                assert restarted["contentType"] == "application/trickle-ice-sdpfrag"
                async with asyncio.timeout(15):
                    while (after := await browser.remote_port()) in (before, None):
                        await asyncio.sleep(0.2)
                assert after != before
                sizes = await viewer.video_sizes(identity, frames=30, settle=2.0)
                assert set(sizes) == {(640, 360)}, sizes
                state = await ingress_state(client, info.ingress_id)
                assert state.status == PUBLISHING and not state.error
            assert await browser.unpublish(whip_peer.http_url) == 200
        await wait_status(client, info.ingress_id, INACTIVE, timeout=15)
