"""Session-wide real peers: Redis, livekit-server (dev mode, with that Redis), and pyingress as a subprocess.

Nothing here is mocked or skipped: a missing peer fails the test run with the command that installs it.
"""

from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.harness.livekit_peer import LivekitPeer
from tests.harness.ports import free_port
from tests.harness.processes import log_offsets, log_sections
from tests.harness.pyingress_peer import PyingressPeer
from tests.harness.redis_peer import RedisPeer

# The base URLs livekit-server puts into IngressInfo.url; pyingress instances started by tests use their own.
RTMP_BASE_PORT = free_port()
WHIP_BASE_PORT = free_port()


_LOG_OFFSETS = pytest.StashKey[dict[Path, int]]()


@pytest.hookimpl(tryfirst=True)
def pytest_runtest_setup(item: pytest.Item) -> None:
    item.stash[_LOG_OFFSETS] = log_offsets()


@pytest.hookimpl(wrapper=True)
def pytest_runtest_makereport(item: pytest.Item, call: pytest.CallInfo[None]) -> Any:
    """A failing test's report carries what the peers (livekit-server, pyingress, ffmpeg, Redis) logged meanwhile:
    a CI failure has to be explainable from its output alone."""
    report = yield
    if report.failed and report.when in ("setup", "call"):
        for title, text in log_sections(item.stash.get(_LOG_OFFSETS, {})):
            report.sections.append((title, text))
    return report


@pytest.fixture(scope="session")
def peers_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("peers")


@pytest.fixture(scope="session")
def redis_server(peers_dir: Path) -> Iterator[RedisPeer]:
    peer = RedisPeer(peers_dir).start()
    yield peer
    peer.stop()


@pytest.fixture(scope="session")
def livekit_server(peers_dir: Path, redis_server: RedisPeer) -> Iterator[LivekitPeer]:
    peer = LivekitPeer(
        peers_dir,
        redis_address=redis_server.address,
        rtmp_base_url=f"rtmp://127.0.0.1:{RTMP_BASE_PORT}/live",
        whip_base_url=f"http://127.0.0.1:{WHIP_BASE_PORT}/w",
    ).start()
    yield peer
    peer.stop()


@pytest.fixture(scope="module")
def pyingress_factory(
    tmp_path_factory: pytest.TempPathFactory, livekit_server: LivekitPeer
) -> Iterator[Callable[..., PyingressPeer]]:
    """Start a `pyingress serve` subprocess publishing into the livekit_server fixture; stopped at the end of the
    module (not of the session: the suite's forty-odd services, each with its zygote, would otherwise all idle on
    until the end, ≈ 140 MB each and a share of two cores)."""
    started: list[PyingressPeer] = []

    def start(config_yaml_extra: dict[str, Any] | None = None) -> PyingressPeer:
        peer = PyingressPeer(tmp_path_factory.mktemp("pyingress"), livekit_server.ws_url, config_yaml_extra)
        started.append(peer.start())
        return peer

    yield start
    for peer in started:
        peer.stop()
