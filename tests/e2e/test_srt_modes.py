"""An SRT push in both deployments (tests/e2e/conftest.py's ``deployment``): standalone, and pyingress as
livekit-server's ingress worker, where the stream key is checked over psrpc in the listen callback.  States and
webhooks are those of any push; an unknown key is refused at the handshake in both."""

import asyncio
import contextlib
from pathlib import Path

from tests.e2e.room_session import (
    INACTIVE,
    PUBLISHING,
    Deployment,
    create_rtmp_ingress,
    record_statuses,
    status_name,
    stop_encoder,
    wait_status,
)
from tests.harness.ports import free_udp_port
from tests.harness.publishers import TestPattern
from tests.harness.srt_publishers import access_streamid, start_ffmpeg_srt
from tests.harness.subscriber import RoomSubscriber


async def test_an_srt_push_has_the_states_and_webhooks_of_any_push(deployment: Deployment, tmp_path: Path) -> None:
    port = free_udp_port()
    worker = await deployment.start({"srt_port": port, "reconnect_grace_seconds": 1}, webhooks=True)
    room, identity = "srt-modes", "srt-enc"
    statuses: list[str] = []
    async with deployment.api() as client:
        refused = start_ffmpeg_srt(TestPattern(width=320, height=240, duration=3), port, "nope", tmp_path / "no.log")
        assert await asyncio.to_thread(refused.wait, 30) != 0
        assert "REJECT reported" in (tmp_path / "no.log").read_text()

        info = await create_rtmp_ingress(client, room, identity)
        recorder = asyncio.create_task(record_statuses(client, info.ingress_id, statuses))
        try:
            await asyncio.sleep(0.2)
            async with RoomSubscriber(deployment.livekit.ws_url, deployment.livekit.token("viewer", room)) as viewer:
                encoder = start_ffmpeg_srt(
                    TestPattern(width=640, height=360, duration=6),
                    port,
                    access_streamid(info.stream_key),
                    tmp_path / "ffmpeg.log",
                )
                try:
                    await viewer.first_video_frame(identity, timeout=30)
                    state = await wait_status(client, info.ingress_id, PUBLISHING, timeout=30, interval=0.05)
                    assert state.resource_id.startswith("RT_")
                    await asyncio.to_thread(encoder.wait, 30)
                finally:
                    stop_encoder(encoder)
            state = await wait_status(client, info.ingress_id, INACTIVE, timeout=30, interval=0.05)
            async with asyncio.timeout(5):
                while statuses[-1] != "ENDPOINT_INACTIVE":
                    await asyncio.sleep(0.02)
        finally:
            recorder.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await recorder
    assert statuses == ["ENDPOINT_INACTIVE", "ENDPOINT_BUFFERING", "ENDPOINT_PUBLISHING", "ENDPOINT_INACTIVE"]
    assert not state.error
    received = await deployment.webhooks.wait_for(2, timeout=15)
    events = [(r.event.event, status_name(r.event.ingress_info.state.status)) for r in received]
    assert events == [("ingress_started", "ENDPOINT_PUBLISHING"), ("ingress_ended", "ENDPOINT_INACTIVE")]
    assert "refused at the handshake: ingress does not exist (SRT_REJX_NOTFOUND)" in worker.log()
