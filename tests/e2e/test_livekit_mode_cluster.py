"""livekit mode scaled out: one livekit-server v1.13.5, one Redis, two pyingress workers.

- RTMP pushes to either worker reach their rooms; Update/Delete through livekit-server reach whichever worker holds
  the session (psrpc IngressHandler topics), and ListActiveIngress lists each worker's own sessions.
- URL ingresses (livekit-server's StartIngress) land on the worker with the most spare CPU; with one worker full
  on the other; with both full livekit-server answers its error; with one SIGKILLed, on the survivor.

Workers are made "full" by a real session: each reserves ``rtmp_cpu_cost`` CPUs per RTMP session, set here so that
one RTMP session leaves less than a URL session's ``url_cpu_cost`` free.
"""

import asyncio
import os
import re
import time
from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from typing import Any

import pytest
from livekit import api
from livekit.protocol.ingress import DeleteIngressRequest, UpdateIngressRequest

from tests.e2e.room_session import INACTIVE, PUBLISHING, create_rtmp_ingress, stop_encoder, wait_status
from tests.harness.livekit_cluster import LivekitCluster, list_active_ingress
from tests.harness.media_server import MediaServer
from tests.harness.publishers import TestPattern, start_ffmpeg
from tests.harness.pull_media import make_file, url_request
from tests.harness.subscriber import RoomSubscriber

SMALL = TestPattern(width=640, height=360, duration=120)
MIN_IDLE = 0.3
CAPACITY = len(os.sched_getaffinity(0)) * (1 - MIN_IDLE / 2)  # what a worker lets sessions reserve (admission.py)
URL_COST = 0.5
# One RTMP session leaves URL_COST / 2 free: not enough for a URL session.
RTMP_COST = CAPACITY - URL_COST / 2


@pytest.fixture(scope="module")
def cluster(tmp_path_factory: pytest.TempPathFactory) -> Iterator[LivekitCluster]:
    costs = {"rtmp_cpu_cost": RTMP_COST, "url_cpu_cost": URL_COST, "min_idle_ratio": MIN_IDLE}
    running = LivekitCluster(
        tmp_path_factory.mktemp("livekit-cluster"),
        workers=2,
        worker_extra={"cpu_cost": costs, "reconnect_grace_seconds": 0},
    ).start()
    yield running
    running.stop()


@pytest.fixture(scope="module")
def media(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[MediaServer, str]]:
    directory = tmp_path_factory.mktemp("cluster-media")
    make_file(directory, "clip720.mp4", duration=30, size="640x360")
    with MediaServer(directory) as server:
        yield server, server.file_url("clip720.mp4")


@pytest.fixture
async def lk(cluster: LivekitCluster) -> AsyncIterator[api.LiveKitAPI]:
    async with cluster.livekit.api() as client:
        yield client


def server_ids(cluster: LivekitCluster) -> list[str]:
    """Each worker's IngressInternal server id, from the line it logs at start."""
    ids = []
    for worker in cluster.workers:
        found = re.search(r"IngressInternal server (SRV_\w+)", worker.log())
        assert found, worker.log()[-2000:]
        ids.append(found[1])
    return ids


async def holders(cluster: LivekitCluster) -> dict[str, int]:
    """ingress id → index of the worker running it, from ListActiveIngress over the bus."""
    by_server = await list_active_ingress(cluster.redis.address)
    ids = server_ids(cluster)
    return {s.ingress_id: ids.index(server) for server, sessions in by_server.items() for s in sessions}


def push_to(cluster: LivekitCluster, worker: int, info: Any, log: Path) -> Any:
    return start_ffmpeg(SMALL, cluster.rtmp_url(worker, info.stream_key), log)


async def test_pushes_to_either_worker_and_update_delete_reach_the_holder(
    cluster: LivekitCluster, lk: api.LiveKitAPI, tmp_path: Path
) -> None:
    first = await create_rtmp_ingress(lk, "lk-cluster-a", "enc-a")
    second = await create_rtmp_ingress(lk, "lk-cluster-b", "enc-b")
    encoders = [push_to(cluster, 0, first, tmp_path / "a.log"), push_to(cluster, 1, second, tmp_path / "b.log")]
    try:
        for info, room, identity in ((first, "lk-cluster-a", "enc-a"), (second, "lk-cluster-b", "enc-b")):
            token = cluster.livekit.token("viewer", room, can_publish=False)
            async with RoomSubscriber(cluster.livekit.ws_url, token) as viewer:
                await viewer.video_sizes(identity, frames=5, timeout=30)
            await wait_status(lk, info.ingress_id, PUBLISHING, timeout=30)
        assert await holders(cluster) == {first.ingress_id: 0, second.ingress_id: 1}

        # Delete reaches worker 1, Update reaches worker 0: each stops its own session only.
        await lk.ingress.delete_ingress(DeleteIngressRequest(ingress_id=second.ingress_id))
        assert await asyncio.to_thread(encoders[1].wait, 15) is not None
        assert await holders(cluster) == {first.ingress_id: 0}
        await lk.ingress.update_ingress(UpdateIngressRequest(ingress_id=first.ingress_id, name="renamed"))
        assert await asyncio.to_thread(encoders[0].wait, 15) is not None
        await wait_status(lk, first.ingress_id, INACTIVE, timeout=15)
        assert await holders(cluster) == {}
    finally:
        for encoder in encoders:
            stop_encoder(encoder)


async def _url_ingress(lk: api.LiveKitAPI, url: str, name: str) -> Any:
    return await lk.ingress.create_ingress(url_request(url, name, f"url-{name}"))


async def _delete(lk: api.LiveKitAPI, *infos: Any) -> None:
    for info in infos:
        await lk.ingress.delete_ingress(DeleteIngressRequest(ingress_id=info.ingress_id))


async def test_url_ingresses_land_where_cpu_is_spare(
    cluster: LivekitCluster, lk: api.LiveKitAPI, media: tuple[MediaServer, str], tmp_path: Path
) -> None:
    _, url = media
    # Worker 0 busy with an RTMP session: too little left for a URL session, so it does not bid.
    busy = await create_rtmp_ingress(lk, "lk-cluster-busy", "enc-busy")
    encoder = push_to(cluster, 0, busy, tmp_path / "busy.log")
    try:
        await wait_status(lk, busy.ingress_id, PUBLISHING, timeout=30)
        started = time.perf_counter()
        info = await _url_ingress(lk, url, "lk-url-one")
        answer_s = time.perf_counter() - started
        # livekit-server hands back what the worker answered StartIngress with: the session's state.
        assert info.state.status in (1, 2) and info.state.resource_id.startswith("UR_"), info.state
        assert (await holders(cluster))[info.ingress_id] == 1
        assert answer_s < 1.5  # the claim window (200 ms after the first bid) plus the start

        # Worker 1 now holds a URL session: it has room for another one (its spare CPU), worker 0 still none.
        again = await _url_ingress(lk, url, "lk-url-two")
        assert (await holders(cluster))[again.ingress_id] == 1

        # Both full: worker 1 gets an RTMP session too.  Nobody bids; livekit-server answers its error.
        await _delete(lk, info, again)
        other = await create_rtmp_ingress(lk, "lk-cluster-busy2", "enc-busy2")
        encoder2 = push_to(cluster, 1, other, tmp_path / "busy2.log")
        try:
            await wait_status(lk, other.ingress_id, PUBLISHING, timeout=30)
            with pytest.raises(api.TwirpError) as refused:
                await _url_ingress(lk, url, "lk-url-none")
            assert refused.value.code == "unavailable" and "no response from servers" in refused.value.message
        finally:
            stop_encoder(encoder2)
    finally:
        stop_encoder(encoder)


async def test_a_killed_worker_leaves_new_work_to_the_other(
    cluster: LivekitCluster, lk: api.LiveKitAPI, media: tuple[MediaServer, str], tmp_path: Path
) -> None:
    _, url = media
    await asyncio.to_thread(cluster.workers[0].kill)
    try:
        for index in range(3):
            info = await _url_ingress(lk, url, f"lk-url-survivor{index}")
            assert info.state.resource_id.startswith("UR_")
            assert (await holders(cluster)).get(info.ingress_id) == 1
            await _delete(lk, info)
        pushed = await create_rtmp_ingress(lk, "lk-cluster-survivor", "enc-survivor")
        encoder = push_to(cluster, 1, pushed, tmp_path / "survivor.log")
        try:
            await wait_status(lk, pushed.ingress_id, PUBLISHING, timeout=30)
        finally:
            stop_encoder(encoder)
    finally:
        await asyncio.to_thread(cluster.workers[0].start)
