"""The service is composed in one place: the parts for each mode, in start order, and a mode not built yet refused
before anything starts — by ``build_service`` and, for a user, by ``pyingress serve`` with one line and exit 2."""

import asyncio
import subprocess
import sys
import urllib.request
from pathlib import Path
from typing import Any

import pytest
import yaml

from pyingress.compose import MediaWorkers, build_service
from pyingress.config import Config, ConfigError, parse_config
from pyingress.control.standalone import StandaloneControlPlane
from pyingress.ingest.rtmp.front_door import RtmpFrontDoor
from pyingress.room_server import RoomConnection
from pyingress.session.manager import SessionManager
from tests.harness.ports import free_port
from tests.harness.processes import tcp_open

REPO = Path(__file__).resolve().parents[1]


def _config(tmp_path: Path, **extra: Any) -> Config:
    body = {
        "api_key": "devkey",
        "api_secret": "secret",
        "ws_url": "ws://127.0.0.1:7880",  # never dialled: no publisher in these tests
        "bind_address": "127.0.0.1",
        "store_path": str(tmp_path / "ingress.sqlite3"),
        **extra,
    }
    return parse_config(yaml.safe_dump(body), env={})


def _get(url: str) -> bytes:
    with urllib.request.urlopen(url, timeout=5) as response:
        body: bytes = response.read()
        return body


def test_standalone_is_composed_in_start_order(tmp_path: Path) -> None:
    service = build_service(_config(tmp_path, rtmp_port=free_port(), whip_port=free_port()))
    plane, sessions = service.control_plane, service.sessions
    assert isinstance(service.room, RoomConnection)
    assert isinstance(plane, StandaloneControlPlane) and isinstance(sessions, SessionManager)
    assert [type(door) for door in service.front_doors] == [RtmpFrontDoor]
    # The sessions admit through the very records the API serves, and are the API's registry of running ones.
    assert sessions.control is plane.control and sessions.registry is plane.sessions
    assert sessions.room is service.room
    # No pull door yet: URL ingresses are stored and stay INACTIVE instead of failing at create.
    assert not sessions.pulls and plane.api.url_session_starter is None
    order = [type(component) for component in service._components]
    assert order == [RoomConnection, StandaloneControlPlane, MediaWorkers, SessionManager, RtmpFrontDoor]
    plane.store.close()


def test_a_door_turned_off_is_not_built(tmp_path: Path) -> None:
    service = build_service(_config(tmp_path, rtmp_port=-1))
    assert service.front_doors == []
    assert "RTMP" not in service.banner()
    assert isinstance(service.control_plane, StandaloneControlPlane)
    service.control_plane.store.close()


async def test_the_composed_service_starts_serves_and_stops(tmp_path: Path) -> None:
    rtmp_port, whip_port = free_port(), free_port()
    service = build_service(_config(tmp_path, rtmp_port=rtmp_port, whip_port=whip_port))
    await service.start()
    try:
        assert tcp_open(rtmp_port)
        assert await asyncio.to_thread(_get, f"http://127.0.0.1:{whip_port}/health") == b"Healthy"
        banner = service.banner()
        assert f"rtmp://127.0.0.1:{rtmp_port}/live/<stream key>" in banner
        assert "./run ingress create" in banner
    finally:
        await service.stop()
    assert not tcp_open(rtmp_port) and not tcp_open(whip_port)


def test_livekit_mode_is_refused_before_anything_is_made(tmp_path: Path) -> None:
    config = _config(tmp_path, mode="livekit", redis={"address": "127.0.0.1:6379"})
    with pytest.raises(ConfigError, match="mode: 'livekit' is not available yet"):
        build_service(config)
    assert not (tmp_path / "ingress.sqlite3").exists()


def test_serve_in_livekit_mode_says_so_in_one_line_and_exits_2(tmp_path: Path) -> None:
    config = {"mode": "livekit", "redis": {"address": "127.0.0.1:6379"}, "store_path": str(tmp_path / "s.sqlite3")}
    (tmp_path / "livekit.yaml").write_text(yaml.safe_dump(config))
    result = subprocess.run(
        [sys.executable, "-m", "pyingress", "serve", "--dev", "--config", str(tmp_path / "livekit.yaml")],
        capture_output=True,
        text=True,
        timeout=60,
        cwd=REPO,
        stdin=subprocess.DEVNULL,
    )
    assert result.returncode == 2, result.stderr
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and "Traceback" not in result.stderr, result.stderr
    assert "mode: 'livekit' is not available yet" in lines[0]
    assert result.stdout == ""


def test_a_door_that_cannot_be_built_leaves_no_store_open(tmp_path: Path) -> None:
    rtmp = {"rtmps_port": free_port(), "cert_file": str(tmp_path / "missing.pem"), "key_file": str(tmp_path / "k")}
    config = _config(tmp_path, rtmp=rtmp)
    with pytest.raises(ConfigError, match=r"rtmp\.cert_file: cannot load the RTMPS certificate"):
        build_service(config)
    # Closed: SQLite removes its write-ahead files when the last connection closes.
    assert not (tmp_path / "ingress.sqlite3-wal").exists()
