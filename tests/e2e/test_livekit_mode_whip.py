"""WHIP in livekit mode: CreateIngress(WHIP) through livekit-server, an aiortc WHIP publisher posts to the worker's
WHIP door (livekit-server's ``whip_base_url``), the worker asks livekit-server for the stream key and reports state;
DeleteIngress through livekit-server stops the session on the worker (IngressHandler, ingress id topic).
"""

from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import pytest
from livekit import api
from livekit.protocol.ingress import CreateIngressRequest, DeleteIngressRequest, IngressInput

from tests.e2e.room_session import INACTIVE, PUBLISHING, wait_status
from tests.harness.livekit_cluster import LivekitCluster, list_active_ingress
from tests.harness.subscriber import RoomSubscriber
from tests.harness.whip_publisher import WhipPublisher


@pytest.fixture(scope="module")
def cluster(tmp_path_factory: pytest.TempPathFactory) -> Iterator[LivekitCluster]:
    running = LivekitCluster(
        tmp_path_factory.mktemp("livekit-whip"),
        workers=1,
        worker_extra={"rtc_config": {"enable_loopback_candidate": True}, "reconnect_grace_seconds": 0},
    ).start()
    yield running
    running.stop()


@pytest.fixture(scope="module")
def clips(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("lk-whip-clips")


@pytest.fixture
async def lk(cluster: LivekitCluster) -> AsyncIterator[api.LiveKitAPI]:
    async with cluster.livekit.api() as client:
        yield client


async def _whip_ingress(lk: api.LiveKitAPI, room: str, identity: str) -> api.IngressInfo:
    request = CreateIngressRequest(
        input_type=IngressInput.WHIP_INPUT, name=room, room_name=room, participant_identity=identity
    )
    return await lk.ingress.create_ingress(request)


async def test_whip_publish_through_a_worker_and_its_own_delete(
    cluster: LivekitCluster, lk: api.LiveKitAPI, clips: Path
) -> None:
    room, identity = "lk-whip", "whip-lk"
    info = await _whip_ingress(lk, room, identity)
    assert info.url == f"http://127.0.0.1:{cluster.workers[0].whip_port}/w" and info.bypass_transcoding
    publisher = WhipPublisher(f"{info.url}/{info.stream_key}", clips, video="h264", size=(640, 360))
    try:
        response = await publisher.start()
        assert response.status == 201, response
        assert publisher.location is not None and publisher.location.startswith(f"/w/{info.stream_key}/WH_")
        token = cluster.livekit.token("viewer", room, can_publish=False)
        async with RoomSubscriber(cluster.livekit.ws_url, token) as viewer:
            report = await viewer.wait_tracks(identity, timeout=30)
            (video,) = report.tracks_of("video")
            assert video.mime_type == "video/H264" and (video.width, video.height) == (640, 360)
            state = await wait_status(lk, info.ingress_id, PUBLISHING, timeout=30)
            assert state.resource_id == publisher.location.split("/")[-1]
            sessions = [s for found in (await list_active_ingress(cluster.redis.address)).values() for s in found]
            assert [(s.ingress_id, s.resource_id) for s in sessions] == [(info.ingress_id, state.resource_id)]
            # The publisher's own DELETE on the worker ends it; livekit-server hears INACTIVE.
            assert await publisher.delete() == 200
            await wait_status(lk, info.ingress_id, INACTIVE, timeout=15)
            await viewer.wait_gone(identity, timeout=10)
    finally:
        await publisher.close()


async def test_delete_ingress_through_livekit_server_stops_a_whip_session(
    cluster: LivekitCluster, lk: api.LiveKitAPI, clips: Path
) -> None:
    room, identity = "lk-whip-delete", "whip-lk-delete"
    info = await _whip_ingress(lk, room, identity)
    publisher = WhipPublisher(f"{info.url}/{info.stream_key}", clips, video="vp8", size=(640, 360))
    try:
        assert (await publisher.start()).status == 201
        token = cluster.livekit.token("viewer", room, can_publish=False)
        async with RoomSubscriber(cluster.livekit.ws_url, token) as viewer:
            await viewer.wait_tracks(identity, timeout=30)
            await wait_status(lk, info.ingress_id, PUBLISHING, timeout=30)
            await lk.ingress.delete_ingress(DeleteIngressRequest(ingress_id=info.ingress_id))
            await viewer.wait_gone(identity, timeout=15)
        assert not any((await list_active_ingress(cluster.redis.address)).values())
    finally:
        await publisher.close()
