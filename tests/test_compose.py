"""The service is composed in one place: the parts for each mode, in start order; livekit mode without a store and
with what it needs checked before anything starts — by ``build_service`` and, for a user, by ``pyingress serve``
with one line."""

import asyncio
import socket
import subprocess
import sys
import urllib.request
from pathlib import Path
from typing import Any

import pytest
import yaml

from pyingress.compose import MediaWorkers, build_service
from pyingress.config import Config, ConfigError, parse_config
from pyingress.control.livekit import LivekitControl
from pyingress.control.livekit_plane import BusSessionRegistry, LivekitControlPlane
from pyingress.control.standalone import StandaloneControlPlane
from pyingress.ingest.pull.door import UrlPullDoor
from pyingress.ingest.rtmp.front_door import RtmpFrontDoor
from pyingress.ingest.srt.caller import SrtPullDoor
from pyingress.ingest.srt.front_door import SrtFrontDoor
from pyingress.ingest.whip.front_door import WhipFrontDoor
from pyingress.node_metrics import NodeMetrics
from pyingress.room_server import RoomConnection
from pyingress.session.manager import SessionManager
from pyingress.web.dashboard import Dashboard
from pyingress.web.progress import ProgressApi
from tests.harness.ports import free_port, free_udp_port
from tests.harness.processes import tcp_open

REPO = Path(__file__).resolve().parents[1]


def _config(tmp_path: Path, **extra: Any) -> Config:
    body = {
        "api_key": "devkey",
        "api_secret": "secret",
        "ws_url": "ws://127.0.0.1:7880",  # never dialled: no publisher in these tests
        "bind_address": "127.0.0.1",
        "store_path": str(tmp_path / "ingress.sqlite3"),
        "srt_port": free_udp_port(),
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
    assert [type(door) for door in service.front_doors] == [RtmpFrontDoor, WhipFrontDoor, SrtFrontDoor]
    # The sessions admit through the very records the API serves, and are the API's registry of running ones.
    assert sessions.control is plane.control and sessions.registry is plane.sessions
    assert sessions.room is service.room
    # URL ingresses over http(s) start at create, through one pull door (a demux worker per ingress).
    assert sorted(sessions.pull_doors) == ["http", "https", "srt"]
    assert isinstance(sessions.pull_doors["http"], UrlPullDoor)
    assert sessions.pull_doors["http"] is sessions.pull_doors["https"]
    assert isinstance(sessions.pull_doors["srt"], SrtPullDoor)  # SRT caller: a thread per ingress, no worker
    assert plane.api.url_session_starter == sessions.start_pull
    order = [type(component) for component in service._components]
    assert order == [
        RoomConnection,
        StandaloneControlPlane,
        Dashboard,  # shows the records, watches the sessions: closed after them
        ProgressApi,  # how far a file has played (the CLI's watch)
        MediaWorkers,
        SessionManager,
        NodeMetrics,
        RtmpFrontDoor,
        WhipFrontDoor,
        SrtFrontDoor,
    ]
    plane.store.close()


def test_a_door_turned_off_is_not_built(tmp_path: Path) -> None:
    service = build_service(_config(tmp_path, rtmp_port=-1, whip_port=-1, srt_port=-1))
    assert service.front_doors == [] and service.http_parts == []  # no HTTP listener, no dashboard
    assert "RTMP" not in service.banner()
    assert isinstance(service.control_plane, StandaloneControlPlane)
    service.control_plane.store.close()


async def test_the_composed_service_starts_serves_and_stops(tmp_path: Path) -> None:
    rtmp_port, whip_port, srt_port = free_port(), free_port(), free_udp_port()
    service = build_service(_config(tmp_path, rtmp_port=rtmp_port, whip_port=whip_port, srt_port=srt_port))
    await service.start()
    try:
        assert tcp_open(rtmp_port)
        assert await asyncio.to_thread(_get, f"http://127.0.0.1:{whip_port}/health") == b"Healthy"
        banner = service.banner()
        assert banner.splitlines()[1] == f"  dashboard:    http://127.0.0.1:{whip_port}/"  # where a person starts
        assert f"rtmp://127.0.0.1:{rtmp_port}/live/<stream key>" in banner
        assert f"srt://127.0.0.1:{srt_port}?streamid=#!::r=<stream key>,m=publish" in banner
        assert "./run ingress create" in banner
    finally:
        await service.stop()
    assert not tcp_open(rtmp_port) and not tcp_open(whip_port)


def _livekit_config(tmp_path: Path, **extra: Any) -> Config:
    return _config(
        tmp_path,
        mode="livekit",
        redis={"address": "127.0.0.1:6379"},
        rtmp_port=free_port(),
        whip_port=free_port(),
        **extra,
    )


def test_livekit_mode_is_composed_in_start_order_without_a_store(tmp_path: Path) -> None:
    service = build_service(_livekit_config(tmp_path))
    plane, sessions = service.control_plane, service.sessions
    assert isinstance(plane, LivekitControlPlane) and isinstance(sessions, SessionManager)
    # Sessions admit and report through livekit-server (psrpc IOInfo), and the plane stops them through the same
    # registry; URL ingresses reach the manager through StartIngress.
    assert isinstance(sessions.control, LivekitControl) and sessions.control is plane.control
    assert isinstance(sessions.registry, BusSessionRegistry) and sessions.registry is plane.registry
    assert plane.sessions is sessions and sessions.room is service.room
    assert RtmpFrontDoor in [type(door) for door in service.front_doors]
    order = [type(component) for component in service._components][:4]
    assert order == [RoomConnection, LivekitControlPlane, MediaWorkers, SessionManager]
    assert service.http_parts == []  # no dashboard: the records are livekit-server's
    assert not (tmp_path / "ingress.sqlite3").exists()  # no local records in this mode
    banner = service.banner()  # what a user reads first: the API to use is livekit-server's
    assert "bus:          redis 127.0.0.1:6379" in banner and "Ingress API" not in banner
    assert "./run ingress create --url http://127.0.0.1:7880 " in banner


def test_livekit_mode_needs_the_room_server_to_publish_into(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="ws_url: required in livekit mode"):
        build_service(_livekit_config(tmp_path, ws_url=""))


def test_serve_in_livekit_mode_without_redis_says_so_in_one_line_and_exits_1(tmp_path: Path) -> None:
    config = {
        "mode": "livekit",
        "ws_url": "ws://127.0.0.1:7880",
        "redis": {"address": f"127.0.0.1:{free_port()}"},  # nobody listens there
        "rtmp_port": free_port(),
        "whip_port": free_port(),
    }
    (tmp_path / "livekit.yaml").write_text(yaml.safe_dump(config))
    result = subprocess.run(
        [sys.executable, "-m", "pyingress", "serve", "--dev", "--config", str(tmp_path / "livekit.yaml")],
        capture_output=True,
        text=True,
        timeout=60,
        cwd=REPO,
        stdin=subprocess.DEVNULL,
    )
    assert result.returncode == 1, result.stderr
    last = result.stderr.strip().splitlines()[-1]
    assert last.startswith("pyingress: cannot start: livekit mode: redis unavailable"), result.stderr
    assert "Traceback" not in result.stderr, result.stderr


async def test_a_part_that_fails_to_start_leaves_nothing_started_behind(tmp_path: Path) -> None:
    taken = free_port()
    with socket.socket() as squatter:
        squatter.bind(("127.0.0.1", taken))
        squatter.listen()
        whip_port = free_port()
        service = build_service(_config(tmp_path, rtmp_port=taken, whip_port=whip_port, prometheus_port=free_port()))
        with pytest.raises(OSError):
            await service.start()  # the RTMP port is taken: the last part to start fails
    # Everything before it was closed again: a second service starts cleanly in the same process.
    again = build_service(_config(tmp_path, rtmp_port=free_port(), whip_port=whip_port))
    await again.start()
    await again.stop()
