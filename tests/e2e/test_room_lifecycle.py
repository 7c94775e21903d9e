"""End to end, a session's life as users see it: states over the API, signed webhooks, reconnects, newer publishers.

ffmpeg pushes RTMP into `pyingress serve` publishing into the deployment's livekit-server; every test runs in
standalone and in livekit mode (tests/e2e/conftest.py's ``deployment``: the Ingress API, the records and the
webhooks are pyingress's in one and livekit-server's in the other, the worker is pyingress).  The viewer counts
participant joins and leaves: a reconnect within the grace window (issue 4) or a second encoder on the same key
must not show up there at all — one participant, one sid, frames flowing again.
"""

import asyncio
import contextlib
import signal
import time
from pathlib import Path

from tests.e2e.room_session import (
    INACTIVE,
    PUBLISHING,
    Deployment,
    create_rtmp_ingress,
    ingress_state,
    push,
    record_statuses,
    room_participants,
    status_name,
    stop_encoder,
    wait_status,
)
from tests.harness.publishers import TestPattern
from tests.harness.subscriber import RoomSubscriber

SMALL = TestPattern(width=640, height=360, duration=60)  # the size does not matter here; CPU does


async def test_states_and_webhooks_follow_one_publish(deployment: Deployment, tmp_path: Path) -> None:
    # A 1 s grace window instead of 5 s: the end is the same, only sooner.  The webhooks come from the Ingress
    # service: pyingress in standalone, livekit-server in livekit mode (for the states the worker reports to it).
    # The one difference: livekit-server, the room server too, also sends room/participant/track events to the same
    # URL; ``deployment.webhooks`` keeps only its ``ingress_*`` ones there, and every event in standalone.
    await deployment.start({"reconnect_grace_seconds": 1}, webhooks=True)
    sink = deployment.webhooks
    room, identity = "lifecycle-states", "enc-states"
    statuses: list[str] = []
    async with deployment.api() as client:
        info = await create_rtmp_ingress(client, room, identity)
        recorder = asyncio.create_task(record_statuses(client, info.ingress_id, statuses))
        try:
            await asyncio.sleep(0.2)
            encoder = push(TestPattern(width=640, height=360, duration=4), info, tmp_path / "ffmpeg.log")
            try:
                await wait_status(client, info.ingress_id, PUBLISHING, timeout=30, interval=0.05)
                assert await asyncio.to_thread(encoder.wait, 30) == 0  # ffmpeg ends its stream by itself
            finally:
                stop_encoder(encoder)
            state = await wait_status(client, info.ingress_id, INACTIVE, timeout=30, interval=0.05)
            async with asyncio.timeout(5):  # until the recorder has seen it too
                while statuses[-1] != "ENDPOINT_INACTIVE":
                    await asyncio.sleep(0.02)
        finally:
            recorder.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await recorder
    assert statuses == ["ENDPOINT_INACTIVE", "ENDPOINT_BUFFERING", "ENDPOINT_PUBLISHING", "ENDPOINT_INACTIVE"]
    assert state.ended_at >= state.started_at > 0 and not state.error

    received = await sink.wait_for(2, timeout=15)
    await asyncio.sleep(0.5)  # nothing else may follow
    events = [(r.event.event, status_name(r.event.ingress_info.state.status)) for r in sink.received]
    assert events == [("ingress_started", "ENDPOINT_PUBLISHING"), ("ingress_ended", "ENDPOINT_INACTIVE")]
    assert {r.event.ingress_info.ingress_id for r in received} == {info.ingress_id}
    assert received[0].event.ingress_info.state.resource_id == state.resource_id
    assert sink.refused == []  # every POST verified with livekit-api's WebhookReceiver


async def test_reconnect_within_grace_keeps_one_participant_and_grace_expiry_ends_it(
    deployment: Deployment, tmp_path: Path
) -> None:
    peer = await deployment.start()  # the default grace window: 5 s
    grace = peer.config.get("reconnect_grace_seconds", 5.0)
    room, identity = "lifecycle-reconnect", "enc-reconnect"
    statuses: list[str] = []
    async with deployment.api() as client:
        info = await create_rtmp_ingress(client, room, identity)
        async with RoomSubscriber(deployment.livekit.ws_url, deployment.livekit.token("viewer", room)) as viewer:
            seen = viewer.record_participants()
            first = push(SMALL, info, tmp_path / "ffmpeg-1.log")
            second = None
            recorder = None
            try:
                tracks = {t.sid for t in (await viewer.wait_tracks(identity, timeout=30)).tracks}
                sid = viewer.room.remote_participants[identity].sid
                await viewer.first_video_frame(identity)
                before = await wait_status(client, info.ingress_id, PUBLISHING)
                recorder = asyncio.create_task(record_statuses(client, info.ingress_id, statuses))

                first.send_signal(signal.SIGKILL)  # an encoder crash: no unpublish, the TCP connection just drops
                first.wait()
                await asyncio.sleep(1.5)
                second = push(SMALL, info, tmp_path / "ffmpeg-2.log")
                # Frames flow again: the viewer's stream keeps decoding well after the reconnect.
                sizes = await viewer.video_sizes(identity, frames=30, settle=2.0, timeout=30)
                assert sum(sizes.values()) == 30
                participant = viewer.room.remote_participants[identity]
                assert participant.sid == sid
                assert {t.sid for t in viewer.report(participant).tracks} == tracks  # the same tracks, not new ones
                assert seen == [("connected", identity, sid)]
                in_room = [p.sid for p in await room_participants(deployment.livekit, room) if p.identity == identity]
                assert in_room == [sid]
                state = await ingress_state(client, info.ingress_id)
                assert state.status == PUBLISHING and state.resource_id.startswith("RT_")
                assert state.resource_id == before.resource_id  # the same session all along
                assert "ENDPOINT_INACTIVE" not in statuses  # the API never saw it end in between

                # No publisher for longer than the grace window: the participant leaves, the ingress is INACTIVE.
                second.send_signal(signal.SIGKILL)
                second.wait()
                killed = time.monotonic()
                await viewer.wait_gone(identity, timeout=grace + 15)
                gone_after = time.monotonic() - killed
                assert grace - 0.5 <= gone_after <= grace + 10, gone_after
                assert seen == [("connected", identity, sid), ("disconnected", identity, sid)]
                ended = await wait_status(client, info.ingress_id, INACTIVE, timeout=10)
                assert ended.resource_id == state.resource_id and not ended.error
            finally:
                if recorder is not None:
                    recorder.cancel()
                    with contextlib.suppress(asyncio.CancelledError):
                        await recorder
                for encoder in (first, second):
                    if encoder is not None:
                        stop_encoder(encoder)


async def test_newest_publisher_on_the_same_key_wins(deployment: Deployment, tmp_path: Path) -> None:
    await deployment.start()
    room, identity = "lifecycle-newest", "enc-newest"
    async with deployment.api() as client:
        info = await create_rtmp_ingress(client, room, identity)
        async with RoomSubscriber(deployment.livekit.ws_url, deployment.livekit.token("viewer", room)) as viewer:
            seen = viewer.record_participants()
            older = push(SMALL, info, tmp_path / "ffmpeg-older.log")
            newer = None
            try:
                await viewer.wait_tracks(identity, timeout=30)
                sid = viewer.room.remote_participants[identity].sid
                await viewer.first_video_frame(identity)
                resource_id = (await wait_status(client, info.ingress_id, PUBLISHING)).resource_id

                newer = push(SMALL, info, tmp_path / "ffmpeg-newer.log")
                # The older encoder is disconnected by the server and gives up; the newer one keeps pushing.
                assert await asyncio.to_thread(older.wait, 15) != 0
                sizes = await viewer.video_sizes(identity, frames=30, settle=1.0, timeout=30)
                assert sum(sizes.values()) == 30
                assert newer.poll() is None
                assert seen == [("connected", identity, sid)]
                assert viewer.room.remote_participants[identity].sid == sid
                state = await ingress_state(client, info.ingress_id)
                assert (state.status, state.resource_id) == (PUBLISHING, resource_id)
            finally:
                for encoder in (older, newer):
                    if encoder is not None:
                        stop_encoder(encoder)
