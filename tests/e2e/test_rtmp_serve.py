"""RTMP front door as `pyingress serve` runs it: RTMPS from config, refusals with LiveKit's words, no stuck state."""

import asyncio
import subprocess
import time
from collections.abc import Callable
from pathlib import Path

from livekit import api
from livekit.protocol.ingress import (
    CreateIngressRequest,
    IngressInput,
    IngressState,
    ListIngressRequest,
    UpdateIngressRequest,
)

from tests.harness.livekit_peer import LivekitPeer
from tests.harness.ports import free_port
from tests.harness.prometheus import scrape
from tests.harness.publishers import TestPattern, ffmpeg_command, start_ffmpeg
from tests.harness.pyingress_peer import PyingressPeer
from tests.harness.subscriber import RoomSubscriber
from tests.harness.tls import self_signed_cert


async def _state(client: api.LiveKitAPI, ingress_id: str) -> IngressState:
    return (await client.ingress.list_ingress(ListIngressRequest(ingress_id=ingress_id))).items[0].state


async def _create(client: api.LiveKitAPI, room: str, identity: str) -> tuple[str, str, str]:
    info = await client.ingress.create_ingress(
        CreateIngressRequest(input_type=IngressInput.RTMP_INPUT, room_name=room, participant_identity=identity)
    )
    return info.ingress_id, info.url, info.stream_key


def _push_briefly(url: str, log: Path) -> subprocess.CompletedProcess[str]:
    """A short ffmpeg push; returns its outcome (a refused publish makes ffmpeg fail with the server's text)."""
    pattern = TestPattern(width=320, height=240, fps=15, duration=2, realtime=False)
    return subprocess.run(ffmpeg_command(pattern, url), capture_output=True, text=True, timeout=60)


async def test_rtmps_from_config_reaches_the_room(
    pyingress_factory: Callable[..., PyingressPeer], livekit_server: LivekitPeer, tmp_path: Path
) -> None:
    cert, key = self_signed_cert(tmp_path)
    port, metrics_port = free_port(), free_port()
    peer = pyingress_factory(
        {
            "rtmp": {"rtmps_port": port, "cert_file": str(cert), "key_file": str(key)},
            "prometheus_port": metrics_port,
        }
    )
    async with api.LiveKitAPI(peer.http_url, livekit_server.api_key, livekit_server.api_secret) as client:
        ingress_id, _, stream_key = await _create(client, "e2e-rtmps", "rtmps-encoder")
        encoder = start_ffmpeg(
            TestPattern(width=640, height=360, fps=25, duration=30),
            f"rtmps://127.0.0.1:{port}/live/{stream_key}",
            tmp_path / "ffmpeg.log",
        )
        try:
            token = livekit_server.token("viewer", "e2e-rtmps", can_publish=False)
            async with RoomSubscriber(livekit_server.ws_url, token) as viewer:
                report = await viewer.wait_tracks("rtmps-encoder", timeout=30)
                assert report.attributes["ingress.ingressID"] == ingress_id
                seen = await viewer.sizes_until("rtmps-encoder", 2, (640, 360), timeout=30)
                assert seen[-15:] == [(640, 360)] * 15
            assert (await _state(client, ingress_id)).status == IngressState.ENDPOINT_PUBLISHING
            # An operator sees the session and its layers' frames on /metrics (the pipeline reports once a second).
            frames_out = ("pyingress_pipeline_events_total", (("name", "frames_out"), ("track", "MEDIUM")))
            deadline = time.monotonic() + 10
            while True:
                metrics = await asyncio.to_thread(scrape, metrics_port)
                if metrics.get(frames_out, 0) >= 25 or time.monotonic() > deadline:
                    break
                await asyncio.sleep(0.2)
            assert metrics[("pyingress_sessions", (("input", "RTMP_INPUT"),))] == 1
            assert metrics.get(frames_out, 0) >= 25  # 640x360 is the MEDIUM layer of the default preset
        finally:
            encoder.terminate()
            encoder.wait(timeout=10)


async def test_refused_publishers_get_livekit_errors_and_leave_no_active_state(
    pyingress_factory: Callable[..., PyingressPeer], livekit_server: LivekitPeer, tmp_path: Path
) -> None:
    peer = pyingress_factory({"reconnect_grace_seconds": 0})
    async with api.LiveKitAPI(peer.http_url, livekit_server.api_key, livekit_server.api_secret) as client:
        # Unknown key: refused, nothing stored anywhere.
        unknown = _push_briefly(f"{peer.rtmp_url}/NoSuchKey1234", tmp_path / "a.log")
        assert unknown.returncode != 0

        # Disabled ingress: "session is disabled", state ERROR with that message (LiveKit's behaviour).
        ingress_id, url, stream_key = await _create(client, "e2e-refusals", "disabled-encoder")
        await client.ingress.update_ingress(UpdateIngressRequest(ingress_id=ingress_id, enabled=False))
        refused = _push_briefly(f"{url}/{stream_key}", tmp_path / "b.log")
        assert refused.returncode != 0
        state = await _state(client, ingress_id)
        assert (state.status, state.error) == (IngressState.ENDPOINT_ERROR, "session is disabled")

        # Re-enabled, the same key works, and a clean end leaves it INACTIVE — never stuck in an active state.
        await client.ingress.update_ingress(UpdateIngressRequest(ingress_id=ingress_id, enabled=True))
        assert (await _state(client, ingress_id)).status == IngressState.ENDPOINT_INACTIVE
        ok = _push_briefly(f"{url}/{stream_key}", tmp_path / "c.log")
        assert ok.returncode == 0, ok.stderr
        deadline = time.monotonic() + 30
        while (await _state(client, ingress_id)).status != IngressState.ENDPOINT_INACTIVE:
            assert time.monotonic() < deadline, await _state(client, ingress_id)
            await asyncio.sleep(0.2)
        final = await _state(client, ingress_id)
        assert final.resource_id.startswith("RT_") and final.ended_at > 0


async def test_a_full_server_refuses_with_server_capacity_exceeded(
    pyingress_factory: Callable[..., PyingressPeer], livekit_server: LivekitPeer, tmp_path: Path
) -> None:
    peer = pyingress_factory({"cpu_cost": {"rtmp_cpu_cost": 64.0}})
    async with api.LiveKitAPI(peer.http_url, livekit_server.api_key, livekit_server.api_secret) as client:
        ingress_id, url, stream_key = await _create(client, "e2e-full", "full-encoder")
        refused = _push_briefly(f"{url}/{stream_key}", tmp_path / "full.log")
        assert refused.returncode != 0
        state = await _state(client, ingress_id)
        assert (state.status, state.error) == (IngressState.ENDPOINT_ERROR, "server capacity exceeded")
