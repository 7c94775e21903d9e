"""End to end in livekit mode: an unmodified livekit-server v1.13.5 with Redis owns the ingresses and serves the API;
pyingress is its ingress worker over psrpc.  Driven through livekit-server's API with the `livekit-api` client,
ffmpeg pushing RTMP to the worker, a `livekit` SDK subscriber in the room.  Nothing of LiveKit is mocked.
"""

import asyncio
import contextlib
from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from typing import Any

import pytest
from livekit import api
from livekit.protocol.ingress import DeleteIngressRequest, ListIngressRequest, UpdateIngressRequest

from tests.e2e.room_session import (
    BUFFERING,
    INACTIVE,
    PUBLISHING,
    Q_HIGH,
    create_rtmp_ingress,
    push,
    record_statuses,
    stop_encoder,
    wait_status,
)
from tests.harness.livekit_cluster import LivekitCluster, list_active_ingress
from tests.harness.publishers import TestPattern
from tests.harness.subscriber import RoomSubscriber

SMALL = TestPattern(width=640, height=360, duration=60)


@pytest.fixture(scope="module")
def cluster(tmp_path_factory: pytest.TempPathFactory) -> Iterator[LivekitCluster]:
    running = LivekitCluster(tmp_path_factory.mktemp("livekit-mode"), workers=1).start()
    yield running
    running.stop()


@pytest.fixture
async def lk(cluster: LivekitCluster) -> AsyncIterator[api.LiveKitAPI]:
    async with cluster.livekit.api() as client:
        yield client


async def active_sessions(cluster: LivekitCluster) -> list[Any]:
    """Every worker's running sessions, from ListActiveIngress over the bus."""
    by_server = await list_active_ingress(cluster.redis.address)
    return [session for sessions in by_server.values() for session in sessions]


async def test_an_rtmp_ingress_created_through_livekit_server_publishes_through_the_worker(
    cluster: LivekitCluster, lk: api.LiveKitAPI, tmp_path: Path
) -> None:
    room, identity = "lk-mode-publish", "enc-publish"
    info = await create_rtmp_ingress(lk, room, identity)
    # livekit-server made the record and the URL from its ingress config: our worker's RTMP door.
    assert info.url == f"rtmp://127.0.0.1:{cluster.workers[0].rtmp_port}/live" and info.stream_key
    statuses: list[str] = []
    recorder = asyncio.create_task(record_statuses(lk, info.ingress_id, statuses))
    encoder = push(TestPattern(width=1280, height=720, duration=8), info, tmp_path / "ffmpeg.log")
    try:
        token = cluster.livekit.token("viewer", room, can_publish=False)
        async with RoomSubscriber(cluster.livekit.ws_url, token) as viewer:
            report = await viewer.wait_tracks(identity, timeout=30)
            assert report.kind == api.ParticipantInfo.Kind.INGRESS
            (video,) = report.tracks_of("video")
            assert video.simulcasted and (video.width, video.height) == (1280, 720)
            sizes = await viewer.video_sizes(identity, Q_HIGH, frames=20, settle=2.0, timeout=30)
            assert max(sizes, key=lambda size: size[0] * size[1]) == (1280, 720), sizes
        state = await wait_status(lk, info.ingress_id, PUBLISHING, timeout=30)
        assert state.resource_id.startswith("RT_") and state.room_id.startswith("RM_")
        sessions = await active_sessions(cluster)
        assert [(s.ingress_id, s.resource_id) for s in sessions] == [(info.ingress_id, state.resource_id)]
        assert await asyncio.to_thread(encoder.wait, 30) == 0
        final = await wait_status(lk, info.ingress_id, INACTIVE, timeout=30, interval=0.05)
        async with asyncio.timeout(5):
            while statuses[-1] != "ENDPOINT_INACTIVE":
                await asyncio.sleep(0.02)
    finally:
        stop_encoder(encoder)
        recorder.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await recorder
    assert statuses == ["ENDPOINT_INACTIVE", "ENDPOINT_BUFFERING", "ENDPOINT_PUBLISHING", "ENDPOINT_INACTIVE"]
    assert final.ended_at >= final.started_at > 0 and not final.error
    assert await active_sessions(cluster) == []


async def test_update_and_delete_through_livekit_server_stop_the_running_session(
    cluster: LivekitCluster, lk: api.LiveKitAPI, tmp_path: Path
) -> None:
    room, identity = "lk-mode-stop", "enc-stop"
    info = await create_rtmp_ingress(lk, room, identity)
    token = cluster.livekit.token("viewer", room, can_publish=False)
    async with RoomSubscriber(cluster.livekit.ws_url, token) as viewer:
        # UpdateIngress of a publishing ingress: livekit-server asks the worker holding it to stop (psrpc
        # IngressHandler.UpdateIngress on the ingress id), then stores the new settings.
        encoder = push(SMALL, info, tmp_path / "ffmpeg-update.log")
        try:
            await viewer.wait_tracks(identity, timeout=30)
            await wait_status(lk, info.ingress_id, PUBLISHING, timeout=30)
            updated = await lk.ingress.update_ingress(UpdateIngressRequest(ingress_id=info.ingress_id, name="renamed"))
            assert updated.name == "renamed"
            await viewer.wait_gone(identity, timeout=15)
            state = await wait_status(lk, info.ingress_id, INACTIVE, timeout=15)
            assert not state.error
            assert await asyncio.to_thread(encoder.wait, 15) is not None  # the worker hung up on the encoder
        finally:
            stop_encoder(encoder)

        # DeleteIngress of a publishing ingress: the same, and the record is gone.
        encoder = push(SMALL, info, tmp_path / "ffmpeg-delete.log")
        try:
            await viewer.wait_tracks(identity, timeout=30)
            await wait_status(lk, info.ingress_id, PUBLISHING, timeout=30)
            await lk.ingress.delete_ingress(DeleteIngressRequest(ingress_id=info.ingress_id))
            await viewer.wait_gone(identity, timeout=15)
            assert await asyncio.to_thread(encoder.wait, 15) is not None
        finally:
            stop_encoder(encoder)
    listed = await lk.ingress.list_ingress(ListIngressRequest(room_name=room))
    assert list(listed.items) == []
    assert await active_sessions(cluster) == []


async def test_an_unknown_stream_key_is_refused_by_asking_livekit_server(
    cluster: LivekitCluster, lk: api.LiveKitAPI, tmp_path: Path
) -> None:
    info = await create_rtmp_ingress(lk, "lk-mode-unknown", "enc-unknown")
    info.stream_key = "notAKeyOfLivekitServer"
    encoder = push(TestPattern(width=320, height=240, duration=5), info, tmp_path / "ffmpeg.log")
    try:
        code = await asyncio.to_thread(encoder.wait, 20)
    finally:
        stop_encoder(encoder)
    assert code != 0
    assert "ingress does not exist" in cluster.workers[0].log()
    state = await wait_status(lk, info.ingress_id, INACTIVE, timeout=5)
    assert state.status != BUFFERING and not state.resource_id
