"""LiveKit's metrics by LiveKit's names and labels, scraped from `pyingress serve` mid-stream (reference ingress.md
§7): what a Grafana board or the helm chart's autoscaling built for livekit/ingress reads."""

import asyncio
import subprocess
import urllib.request
from collections.abc import Callable
from pathlib import Path

from livekit import api

from tests.e2e.room_session import PUBLISHING, Q_MEDIUM, create_rtmp_ingress, push, stop_encoder, wait_status
from tests.harness.livekit_peer import LivekitPeer
from tests.harness.ports import free_port
from tests.harness.publishers import TestPattern, ffmpeg_command
from tests.harness.pyingress_peer import PyingressPeer
from tests.harness.subscriber import RoomSubscriber

Sample = tuple[str, dict[str, str], float]


def _scrape(port: int) -> tuple[str, list[Sample]]:
    from prometheus_client.parser import text_string_to_metric_families

    with urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=5) as response:
        text = response.read().decode()
    samples = [(s.name, dict(s.labels), s.value) for f in text_string_to_metric_families(text) for s in f.samples]
    return text, samples


def _value(samples: list[Sample], name: str, **labels: str) -> float:
    found = [v for n, lab, v in samples if n == name and all(lab.get(k) == w for k, w in labels.items())]
    assert len(found) == 1, (name, labels, [(n, lab) for n, lab, _ in samples if n == name])
    return found[0]


async def test_livekit_metrics_mid_stream(
    pyingress_factory: Callable[..., PyingressPeer], livekit_server: LivekitPeer, tmp_path: Path
) -> None:
    metrics_port = free_port()
    peer = pyingress_factory({"prometheus_port": metrics_port, "node_id": "NE_metricsnode1"})
    room, identity = "metrics-room", "enc-metrics"
    node = {"node_id": "NE_metricsnode1"}
    async with api.LiveKitAPI(peer.http_url, livekit_server.api_key, livekit_server.api_secret) as client:
        info = await create_rtmp_ingress(client, room, identity)
        pattern = TestPattern(width=320, height=240, fps=15, duration=2, realtime=False)
        refused = await asyncio.to_thread(
            subprocess.run, ffmpeg_command(pattern, f"{peer.rtmp_url}/NoSuchKey1234"), capture_output=True, timeout=60
        )
        assert refused.returncode != 0
        async with RoomSubscriber(livekit_server.ws_url, livekit_server.token("viewer", room)) as viewer:
            encoder = push(TestPattern(width=640, height=360, duration=30), info, tmp_path / "ffmpeg.log")
            try:
                await wait_status(client, info.ingress_id, PUBLISHING)
                # A layer nobody watches is paused (dynacast): watch the best one this 360p source has (the
                # 720p preset never upscales: MEDIUM 640x360 and LOW), and the lower one stays on too.
                await viewer.video_sizes(identity, Q_MEDIUM, frames=20, settle=0.5)
                await asyncio.sleep(1.0)
                text, samples = await asyncio.to_thread(_scrape, metrics_port)
            finally:
                stop_encoder(encoder)
    # Types as the reference: gauges, a histogram, and the publish counter under its exact Go name.
    assert "# TYPE livekit_node_cpu_load gauge" in text and "# TYPE livekit_ingress_requests gauge" in text
    assert "# TYPE livekit_ingress_packet_latency_seconds histogram" in text
    assert 0.0 < _value(samples, "livekit_node_cpu_load", node_type="INGRESS", **node) <= 1.0
    assert _value(samples, "livekit_ingress_available", **node) in (0.0, 1.0)
    assert _value(samples, "livekit_ingress_requests", type="rtmp", transcoding="true", **node) == 1
    assert _value(samples, "livekit_ingress_requests", type="whip", transcoding="false", **node) == 0
    assert _value(samples, "livekit_ingress_publish_status", type="rtmp", status="success", **node) == 1
    assert _value(samples, "livekit_ingress_publish_status", type="rtmp", status="4xx", **node) == 1  # unknown key
    for track in ("audio", "MEDIUM", "LOW"):
        count = _value(samples, "livekit_ingress_packet_latency_seconds_count", track=track, ingress_type="RTMP_INPUT")
        assert count > 10, track
        # LiveKit's buckets: 5 ms doubling, the last finite one at 10.24 s.
        assert (
            _value(
                samples,
                "livekit_ingress_packet_latency_seconds_bucket",
                track=track,
                ingress_type="RTMP_INPUT",
                le="10.24",
            )
            == count
        )
