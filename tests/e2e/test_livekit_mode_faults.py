"""livekit mode when the bus fails: Redis restarted under a running session.

The room's media does not travel over Redis, so the session keeps publishing while Redis is away; a new publisher
is refused in words while livekit-server cannot be asked; the state the session reaches meanwhile (it ends) waits
in the worker's outbox and reaches livekit-server once Redis is back.  Redis keeps its data across the restart
(SAVE before it stops), as a production Redis with persistence does: livekit-server's records must survive.
"""

import asyncio
import time
from collections.abc import AsyncIterator, Iterator

import pytest
import redis
from livekit import api, rtc
from livekit.protocol.ingress import ListIngressRequest

from tests.e2e.room_session import INACTIVE, PUBLISHING, create_rtmp_ingress, push, stop_encoder, wait_status
from tests.harness.livekit_cluster import LivekitCluster
from tests.harness.publishers import TestPattern
from tests.harness.subscriber import RoomSubscriber

SMALL = TestPattern(width=640, height=360, duration=120)


@pytest.fixture(scope="module")
def cluster(tmp_path_factory: pytest.TempPathFactory) -> Iterator[LivekitCluster]:
    running = LivekitCluster(
        tmp_path_factory.mktemp("livekit-faults"), workers=1, worker_extra={"reconnect_grace_seconds": 1}
    ).start()
    yield running
    running.stop()


@pytest.fixture
async def lk(cluster: LivekitCluster) -> AsyncIterator[api.LiveKitAPI]:
    async with cluster.livekit.api() as client:
        yield client


async def _frames_for(viewer: RoomSubscriber, identity: str, seconds: float) -> int:
    participant = await viewer.wait_participant(identity)
    (pub,) = [p for p in participant.track_publications.values() if p.kind == rtc.TrackKind.KIND_VIDEO]
    assert pub.track is not None
    stream = rtc.VideoStream(pub.track)
    count = 0
    try:
        async with asyncio.timeout(seconds):
            async for _ in stream:
                count += 1
    except TimeoutError:
        pass
    finally:
        await stream.aclose()
    return count


async def _livekit_server_answers(lk: api.LiveKitAPI, timeout: float = 15) -> None:
    """livekit-server's own Redis client refuses for a while after Redis is back (go-redis keeps its last dial
    error for a second or so before dialling again): wait until its API answers."""
    deadline = time.monotonic() + timeout
    while True:
        try:
            await lk.ingress.list_ingress(ListIngressRequest())
            return
        except api.TwirpError:
            if time.monotonic() > deadline:
                raise
            await asyncio.sleep(0.2)


async def test_redis_restarted_mid_stream(cluster: LivekitCluster, lk: api.LiveKitAPI, tmp_path: object) -> None:
    room, identity = "lk-faults-redis", "enc-redis"
    info = await create_rtmp_ingress(lk, room, identity)
    other = await create_rtmp_ingress(lk, "lk-faults-other", "enc-other")
    log_dir = cluster.workdir
    encoder = push(SMALL, info, log_dir / "ffmpeg-redis.log")
    token = cluster.livekit.token("viewer", room, can_publish=False)
    try:
        async with RoomSubscriber(cluster.livekit.ws_url, token) as viewer:
            await viewer.video_sizes(identity, frames=5, timeout=30)  # subscribed, frames flowing
            await wait_status(lk, info.ingress_id, PUBLISHING, timeout=30)

            # Redis goes away (its data saved, as a persistent Redis keeps it).
            redis.Redis(port=cluster.redis.port).save()
            await asyncio.to_thread(cluster.redis.stop)
            down_at = time.monotonic()
            frames = await _frames_for(viewer, identity, 3.0)
            assert frames >= 30, f"{frames} frames in 3 s while Redis was away"

            # A new publisher cannot be checked with livekit-server: refused, in words.
            refused = push(TestPattern(width=320, height=240, duration=5), other, log_dir / "ffmpeg-refused.log")
            try:
                assert await asyncio.to_thread(refused.wait, 20) != 0
            finally:
                stop_encoder(refused)
            assert "livekit-server cannot be reached over redis" in cluster.workers[0].log()

            # The publisher stops while Redis is still away: INACTIVE waits in the worker's outbox.
            stop_encoder(encoder)
            await viewer.wait_gone(identity, timeout=15)
            assert time.monotonic() - down_at < 15

            await asyncio.to_thread(cluster.redis.start)
            await _livekit_server_answers(lk)
            state = await wait_status(lk, info.ingress_id, INACTIVE, timeout=20, interval=0.1)
            assert not state.error and state.ended_at > state.started_at
            assert f"queued state of {info.ingress_id} delivered" in cluster.workers[0].log()

        # And the worker serves new publishes again.
        encoder = push(TestPattern(width=320, height=240, duration=3), info, log_dir / "ffmpeg-after.log")
        await wait_status(lk, info.ingress_id, PUBLISHING, timeout=30)
    finally:
        stop_encoder(encoder)
