"""End to end through a UDP relay of ours that drops 5 % of datagrams both ways (no netem here): SRT's
retransmission keeps the picture whole — no session error, frames keep arriving at the source's rate, nothing
dropped as too late — and libsrt's loss and retransmissions show on /metrics per session."""

import asyncio
import urllib.request
from collections.abc import Callable
from pathlib import Path

from livekit import api
from prometheus_client.parser import text_string_to_metric_families

from tests.e2e.room_session import PUBLISHING, create_rtmp_ingress, ingress_state, stop_encoder, wait_status
from tests.harness.livekit_peer import LivekitPeer
from tests.harness.ports import free_port, free_udp_port
from tests.harness.publishers import TestPattern
from tests.harness.pyingress_peer import PyingressPeer
from tests.harness.srt_publishers import access_streamid, start_ffmpeg_srt
from tests.harness.srt_relay import SrtLossRelay
from tests.harness.subscriber import RoomSubscriber


def _srt_samples(port: int, resource_id: str) -> dict[str, float]:
    with urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=5) as response:
        text = response.read().decode()
    found = {}
    for family in text_string_to_metric_families(text):
        for sample in family.samples:
            if sample.name.startswith("pyingress_srt_") and sample.labels.get("resource_id") == resource_id:
                found[sample.name + (":" + sample.labels["kind"] if "kind" in sample.labels else "")] = sample.value
    return found


async def test_five_percent_loss_both_ways_keeps_the_picture_whole(
    pyingress_factory: Callable[..., PyingressPeer], livekit_server: LivekitPeer, tmp_path: Path
) -> None:
    srt_port, metrics_port = free_udp_port(), free_port()
    peer = pyingress_factory({"srt_port": srt_port, "prometheus_port": metrics_port})
    relay = await SrtLossRelay(("127.0.0.1", srt_port), loss=0.05).start()
    async with api.LiveKitAPI(peer.http_url, livekit_server.api_key, livekit_server.api_secret) as client:
        info = await create_rtmp_ingress(client, "e2e-srt-loss", "lossy")
        encoder = start_ffmpeg_srt(
            TestPattern(width=1280, height=720, fps=30, duration=40, gop=60, video_bitrate="3M"),
            relay.address[1],
            access_streamid(info.stream_key),
            tmp_path / "ffmpeg.log",
            latency_ms=400,  # room for a few retransmission rounds; the relay shares the test's event loop
        )
        try:
            token = livekit_server.token("viewer", "e2e-srt-loss", can_publish=False)
            async with RoomSubscriber(livekit_server.ws_url, token) as viewer:
                await viewer.wait_tracks("lossy", timeout=30)
                state = await wait_status(client, info.ingress_id, PUBLISHING)
                # Decoded frames keep arriving, now and later (the rate itself is the CPU's business on a shared
                # machine: the too-late drops below say whether SRT delivered everything in time).
                for _ in range(3):
                    sizes = await viewer.video_sizes("lossy", frames=60, settle=1.0, timeout=30)
                    assert sum(sizes.values()) == 60, sizes
                    await asyncio.sleep(3)
                samples = _srt_samples(metrics_port, state.resource_id)
                assert encoder.poll() is None
                state = await ingress_state(client, info.ingress_id)
                assert state.status == PUBLISHING and not state.error
        finally:
            stop_encoder(encoder)
            relay.close()
    # The relay dropped ~5 % each way; libsrt saw the gaps, got them resent, and had to give up on none.
    up, down = relay.dropped["up:data"], sum(n for key, n in relay.dropped.items() if key.startswith("down:"))
    assert up > 100 and down > 10, relay.dropped
    received = samples["pyingress_srt_packets_total:received"]
    assert received > 2000, samples
    assert samples["pyingress_srt_packets_total:lost"] > 0.02 * received, samples
    assert samples["pyingress_srt_packets_total:retransmitted"] > 0.02 * received, samples
    assert samples.get("pyingress_srt_packets_total:dropped", 0) == 0, samples
    assert samples["pyingress_srt_rtt_ms"] >= 0 and samples["pyingress_srt_receive_buffer_ms"] > 0, samples
