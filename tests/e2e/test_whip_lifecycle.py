"""A WHIP session's life as users see it: states over the API and signed webhooks for publish → DELETE; a publisher
that vanishes without DELETE ends by itself, never stuck; one that POSTs again within the grace window keeps the
room participant (newest wins, as RTMP)."""

import asyncio
import contextlib
import re
import time
from collections.abc import Callable
from pathlib import Path

import aiohttp
import pytest
from aiortc import RTCSessionDescription
from livekit import api

from tests.control.webhook_receiver import WebhookSink
from tests.e2e.room_session import INACTIVE, PUBLISHING, ingress_state, record_statuses, status_name, wait_status
from tests.e2e.test_whip_passthrough import LOOPBACK, create_whip_ingress
from tests.harness.livekit_peer import LivekitPeer
from tests.harness.ports import free_port
from tests.harness.pyingress_peer import PyingressPeer
from tests.harness.subscriber import RoomSubscriber
from tests.harness.udp_relay import LossyRelay, answer_candidates, rewrite_candidates
from tests.harness.whip_publisher import WhipPublisher


@pytest.fixture(scope="module")
def clips(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("whip-clips")


async def test_states_and_webhooks_follow_one_whip_publish_to_its_delete(
    pyingress_factory: Callable[..., PyingressPeer], livekit_server: LivekitPeer, clips: Path
) -> None:
    sink = await WebhookSink(free_port()).start()
    peer = pyingress_factory({**LOOPBACK, "webhook": {"api_key": "devkey", "urls": [sink.url]}})
    statuses: list[str] = []
    try:
        async with api.LiveKitAPI(peer.http_url, livekit_server.api_key, livekit_server.api_secret) as client:
            info = await create_whip_ingress(client, "whip-life", "whip-life")
            recorder = asyncio.create_task(record_statuses(client, info.ingress_id, statuses))
            publisher = WhipPublisher(f"{info.url}/{info.stream_key}", clips, video="vp8", size=(640, 360))
            try:
                await asyncio.sleep(0.2)
                assert (await publisher.start()).status == 201
                await wait_status(client, info.ingress_id, PUBLISHING, timeout=30, interval=0.05)
                await asyncio.sleep(1)
                assert await publisher.delete() == 200
                assert await publisher.delete() == 404  # the resource is gone
                state = await wait_status(client, info.ingress_id, INACTIVE, timeout=15, interval=0.05)
                async with asyncio.timeout(5):
                    while statuses[-1] != "ENDPOINT_INACTIVE":
                        await asyncio.sleep(0.02)
            finally:
                recorder.cancel()
                with contextlib.suppress(asyncio.CancelledError):
                    await recorder
                await publisher.close()
        assert statuses == ["ENDPOINT_INACTIVE", "ENDPOINT_BUFFERING", "ENDPOINT_PUBLISHING", "ENDPOINT_INACTIVE"]
        assert state.ended_at >= state.started_at > 0 and not state.error
        await sink.wait_for(2, timeout=15)
        await asyncio.sleep(0.5)
        events = [(r.event.event, status_name(r.event.ingress_info.state.status)) for r in sink.received]
        assert events == [("ingress_started", "ENDPOINT_PUBLISHING"), ("ingress_ended", "ENDPOINT_INACTIVE")]
        assert sink.refused == []
    finally:
        await sink.stop()


async def test_a_whip_publisher_that_vanishes_ends_within_fifteen_seconds(
    pyingress_factory: Callable[..., PyingressPeer], livekit_server: LivekitPeer, clips: Path
) -> None:
    """The publisher's packets stop dead (its relay closes: no DTLS goodbye, no DELETE).  After 10 s without media
    the source is gone for good (no reconnect grace on top: a publisher coming back re-POSTs before that, and
    takes over); the ingress is INACTIVE."""
    peer = pyingress_factory(LOOPBACK)
    relays: list[LossyRelay] = []
    async with api.LiveKitAPI(peer.http_url, livekit_server.api_key, livekit_server.api_secret) as client:
        info = await create_whip_ingress(client, "whip-vanish", "whip-vanish")
        publisher = WhipPublisher(f"{info.url}/{info.stream_key}", clips, video="h264", size=(640, 360))
        try:
            offer = re.sub(r"a=candidate:[^\r\n]*\r\n", "", await publisher.offer())
            response = await publisher.post(offer)
            assert response.status == 201
            target = next(c for c in answer_candidates(response.body) if c[0] == "127.0.0.1")
            relays.append(await LossyRelay(target, 0.0).start())
            assert publisher.pc is not None
            answer = rewrite_candidates(response.body, relays[0].address)
            await publisher.pc.setRemoteDescription(RTCSessionDescription(sdp=answer, type="answer"))
            await wait_status(client, info.ingress_id, PUBLISHING, timeout=30)
            relays[0].close()
            vanished = time.monotonic()
            state = await wait_status(client, info.ingress_id, INACTIVE, timeout=25, interval=0.1)
            ended_after = time.monotonic() - vanished
            print(f"vanished publisher: INACTIVE after {ended_after:.1f} s")
            assert ended_after <= 15.0 and not state.error
        finally:
            await publisher.close()
            for relay in relays:
                relay.close()


async def test_a_whip_publisher_posting_again_keeps_the_room_participant(
    pyingress_factory: Callable[..., PyingressPeer], livekit_server: LivekitPeer, clips: Path
) -> None:
    peer = pyingress_factory(LOOPBACK)
    async with api.LiveKitAPI(peer.http_url, livekit_server.api_key, livekit_server.api_secret) as client:
        info = await create_whip_ingress(client, "whip-again", "whip-again")
        first = WhipPublisher(f"{info.url}/{info.stream_key}", clips, video="h264", size=(640, 360))
        second = WhipPublisher(f"{info.url}/{info.stream_key}", clips, video="h264", size=(1280, 720))
        token = livekit_server.token("viewer", "whip-again", can_publish=False)
        try:
            assert (await first.start()).status == 201
            async with RoomSubscriber(livekit_server.ws_url, token) as viewer:
                await viewer.wait_tracks("whip-again", timeout=30)
                state = await wait_status(client, info.ingress_id, PUBLISHING)
                events = viewer.record_participants()
                await first.close()  # the encoder restarts: no DELETE, a new POST on the same key
                assert (await second.start()).status == 201
                assert second.location != first.location
                sizes = await viewer.video_sizes("whip-again", frames=15, settle=2.0)
                assert (1280, 720) in sizes, sizes  # the second publisher's pictures, on the same track
                assert events == [], events  # nobody left or joined: the same participant carries on
                again = await ingress_state(client, info.ingress_id)
                assert again.status == PUBLISHING and again.resource_id == state.resource_id
                async with aiohttp.ClientSession() as http, http.delete(first.resource_url()) as r:
                    assert r.status == 404  # the replaced publisher's resource cannot end the new one
                assert (await ingress_state(client, info.ingress_id)).status == PUBLISHING
        finally:
            await second.stop()
            await first.close()
        await wait_status(client, info.ingress_id, INACTIVE, timeout=15)
