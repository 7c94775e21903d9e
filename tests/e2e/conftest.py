"""The room tests' two deployments: a test taking ``deployment`` runs once per mode, the same body for both.

standalone: `pyingress serve` (tests/conftest.py's ``pyingress_factory``) publishing into the session's
livekit-server.  livekit: per test module, a Redis and an unmodified livekit-server v1.13.5 with its ``ingress:``
base URLs and its webhooks going to a sink (tests/harness/livekit_cluster.py); per test, a `pyingress serve` worker
in ``mode: livekit`` with the test's config on the port those URLs name.
"""

from collections.abc import AsyncIterator, Callable, Iterator
from pathlib import Path
from typing import Any, cast

import pytest

from tests.control.webhook_receiver import WebhookSink
from tests.e2e.room_session import Deployment, Mode
from tests.harness.livekit_cluster import LivekitCluster
from tests.harness.livekit_peer import LivekitPeer
from tests.harness.ports import free_port
from tests.harness.pyingress_peer import PyingressPeer


@pytest.fixture(scope="module")
async def livekit_mode_sink() -> AsyncIterator[WebhookSink]:
    """Where livekit-server in livekit mode sends every webhook, for the whole module (it is configured at start)."""
    sink = await WebhookSink(free_port()).start()
    yield sink
    await sink.stop()


@pytest.fixture(scope="module")
def livekit_mode_cluster(
    tmp_path_factory: pytest.TempPathFactory, livekit_mode_sink: WebhookSink
) -> Iterator[LivekitCluster]:
    """Redis and livekit-server for livekit mode; each test starts its own worker (``deployment``)."""
    cluster = LivekitCluster(tmp_path_factory.mktemp("livekit-mode-rooms"), webhook_urls=[livekit_mode_sink.url])
    cluster.start(workers=False)
    yield cluster
    cluster.stop()


@pytest.fixture
async def standalone_sinks() -> AsyncIterator[list[WebhookSink]]:
    """The webhook sinks a standalone test started, stopped after it."""
    sinks: list[WebhookSink] = []
    yield sinks
    for sink in sinks:
        await sink.stop()


@pytest.fixture(params=["standalone", "livekit"])
def mode(request: pytest.FixtureRequest) -> Mode:
    return cast(Mode, request.param)


def _standalone(request: pytest.FixtureRequest, sinks: list[WebhookSink]) -> Deployment:
    async def webhook_sink() -> WebhookSink:
        sink = await WebhookSink(free_port()).start()
        sinks.append(sink)
        return sink

    livekit: LivekitPeer = request.getfixturevalue("livekit_server")
    start_worker: Callable[[dict[str, Any]], PyingressPeer] = request.getfixturevalue("pyingress_factory")
    return Deployment("standalone", livekit, start_worker, webhook_sink)


def _livekit_mode(request: pytest.FixtureRequest, workdir: Path) -> Deployment:
    cluster: LivekitCluster = request.getfixturevalue("livekit_mode_cluster")
    sink: WebhookSink = request.getfixturevalue("livekit_mode_sink")

    def start_worker(config: dict[str, Any]) -> PyingressPeer:
        return cluster.replace_worker(0, workdir, config).start()

    async def webhook_sink() -> WebhookSink:
        return sink

    return Deployment("livekit", cluster.livekit, start_worker, webhook_sink)


@pytest.fixture
def deployment(
    mode: Mode, request: pytest.FixtureRequest, tmp_path: Path, standalone_sinks: list[WebhookSink]
) -> Iterator[Deployment]:
    """pyingress in ``mode`` for this test; ``await deployment.start(config, webhooks=...)`` starts its worker."""
    deployed = (
        _standalone(request, standalone_sinks) if mode == "standalone" else _livekit_mode(request, tmp_path / "worker")
    )
    yield deployed
    deployed.stop()
