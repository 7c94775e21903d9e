"""livekit mode through every API client users have — Node's `livekit-server-sdk` and pyingress's own CLI, beside
the `livekit-api` Python client of the other files — against livekit-server with a pyingress worker, and
livekit-server's webhooks for what the worker reports, signed with livekit-server's key.

With a worker attached livekit-server creates URL ingresses too: it asks a worker (StartIngress) and answers with
the state the worker started the session in.
"""

import asyncio
import json
import os
import shutil
import subprocess
import sys
import uuid
from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from typing import Any

import pytest
from livekit.protocol.ingress import DeleteIngressRequest

from tests.control.webhook_receiver import WebhookSink
from tests.e2e.room_session import INACTIVE, PUBLISHING, create_rtmp_ingress, push, status_name, wait_status
from tests.harness.livekit_cluster import LivekitCluster
from tests.harness.ports import free_port
from tests.harness.publishers import TestPattern

REPO = Path(__file__).resolve().parents[2]
EXAMPLES = REPO / "examples"
NODE_MODULES = REPO / ".cache" / "node" / "node_modules"
NODE_SCRIPT = Path(__file__).with_name("node_ingress_client.cjs")
SINK_PORT = free_port()


@pytest.fixture(scope="module")
async def sink() -> AsyncIterator[WebhookSink]:
    receiver = await WebhookSink(SINK_PORT).start()
    yield receiver
    await receiver.stop()


@pytest.fixture(scope="module")
def cluster(tmp_path_factory: pytest.TempPathFactory, sink: WebhookSink) -> Iterator[LivekitCluster]:
    running = LivekitCluster(
        tmp_path_factory.mktemp("livekit-clients"),
        workers=1,
        worker_extra={"reconnect_grace_seconds": 0},
        webhook_urls=[sink.url],
    ).start()
    yield running
    running.stop()


def _node(url: str, room: str, *extra: str) -> dict[str, Any]:
    node = shutil.which("node")
    assert node, "node is not installed (./run test installs it)"
    assert (NODE_MODULES / "livekit-server-sdk").is_dir(), (
        "livekit-server-sdk missing: npm install --prefix .cache/node livekit-server-sdk@2.19.2"
    )
    env = {**os.environ, "NODE_PATH": str(NODE_MODULES), "LIVEKIT_API_KEY": "devkey", "LIVEKIT_API_SECRET": "secret"}
    result = subprocess.run(
        [node, str(NODE_SCRIPT), url, room, *extra], capture_output=True, text=True, timeout=60, env=env
    )
    assert result.returncode == 0, result.stderr
    output: dict[str, Any] = json.loads(result.stdout)
    return output


def _cli(*args: str) -> subprocess.CompletedProcess[str]:
    clean = {k: v for k, v in os.environ.items() if not k.startswith("LIVEKIT_")}
    return subprocess.run(
        [sys.executable, "-m", "pyingress", "ingress", *args],
        capture_output=True,
        text=True,
        timeout=60,
        env=clean,
        cwd=REPO,
    )


def test_node_sdk_creates_every_input_type_through_livekit_server(cluster: LivekitCluster) -> None:
    room = "lk-node-" + uuid.uuid4().hex[:8]
    out = _node(cluster.livekit.http_url, room, "url")
    worker = cluster.workers[0]
    assert out["rtmp"]["url"] == f"rtmp://127.0.0.1:{worker.rtmp_port}/live"
    assert out["whip"]["url"] == f"http://127.0.0.1:{worker.whip_port}/w"
    url_info = out["url"]
    # The URL ingress exists because the worker took it: BUFFERING, its resource id.
    assert url_info["state"]["status"] == "ENDPOINT_BUFFERING" and url_info["state"]["resourceId"].startswith("UR_")
    assert url_info["inputType"] == "URL_INPUT" and "streamKey" not in url_info
    assert out["urlUpdateError"] == {
        "status": 400,
        "code": "invalid_argument",
        "message": "twirp error unknown: ingress is not reusable and cannot be modified",
    }
    assert out["deleteAgainError"]["code"] == "not_found"


def test_pyingress_cli_through_livekit_server(cluster: LivekitCluster) -> None:
    flags = ["--url", cluster.livekit.http_url, "--api-key", "devkey", "--api-secret", "secret"]
    room = "lk-cli-" + uuid.uuid4().hex[:8]
    request = {**json.loads((EXAMPLES / "rtmp-ingress.json").read_text()), "room_name": room}
    request_path = cluster.workdir / f"{room}.json"
    request_path.write_text(json.dumps(request))
    created = _cli("create", str(request_path), *flags, "--json")
    assert created.returncode == 0, created.stderr
    info = json.loads(created.stdout)
    assert info["url"] == f"rtmp://127.0.0.1:{cluster.workers[0].rtmp_port}/live"
    listed = _cli("list", "--room", room, *flags)
    assert listed.returncode == 0 and info["ingress_id"] in listed.stdout, listed.stderr
    deleted = _cli("delete", info["ingress_id"], *flags, "--json")
    assert deleted.returncode == 0, deleted.stderr


async def test_livekit_server_sends_signed_webhooks_for_what_the_worker_reports(
    cluster: LivekitCluster, sink: WebhookSink, tmp_path: Path
) -> None:
    async with cluster.livekit.api() as lk:
        info = await create_rtmp_ingress(lk, "lk-webhooks", "enc-webhooks")
        encoder = push(TestPattern(width=320, height=240, duration=3), info, tmp_path / "ffmpeg.log")
        try:
            await wait_status(lk, info.ingress_id, PUBLISHING, timeout=30)
            assert await asyncio.to_thread(encoder.wait, 30) == 0
            await wait_status(lk, info.ingress_id, INACTIVE, timeout=30)
        finally:
            if encoder.poll() is None:
                encoder.kill()
        await lk.ingress.delete_ingress(DeleteIngressRequest(ingress_id=info.ingress_id))

    def ingress_events() -> list[tuple[str, str]]:
        return [
            (r.event.event, status_name(r.event.ingress_info.state.status))
            for r in sink.received
            if r.event.event.startswith("ingress_") and r.event.ingress_info.ingress_id == info.ingress_id
        ]

    async with asyncio.timeout(15):
        while ("ingress_ended", "ENDPOINT_INACTIVE") not in ingress_events():
            await asyncio.sleep(0.1)
    await asyncio.sleep(0.5)  # nothing else may follow
    # What livekit-server sends for a worker's BUFFERING → PUBLISHING → INACTIVE (as standalone pyingress does).
    assert ingress_events() == [("ingress_started", "ENDPOINT_PUBLISHING"), ("ingress_ended", "ENDPOINT_INACTIVE")]
    assert sink.refused == []  # every POST verified with livekit-api's WebhookReceiver
