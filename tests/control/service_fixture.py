"""An in-process IngressService with the standalone control plane, on a free port, for API-level tests."""

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

import yaml
from livekit import api

from pyingress.compose import build_service
from pyingress.config import parse_config
from pyingress.control.api import IngressApi
from pyingress.control.standalone import StandaloneControlPlane
from pyingress.control.state import SessionRegistry, StandaloneControl
from pyingress.service import IngressService
from tests.harness.ports import free_port


class RunningService:
    def __init__(self, service: IngressService) -> None:
        self.service = service

    @property
    def http_url(self) -> str:
        return f"http://127.0.0.1:{self.service.config.whip_port}"

    @property
    def plane(self) -> StandaloneControlPlane:
        assert isinstance(self.service.control_plane, StandaloneControlPlane)
        return self.service.control_plane

    @property
    def control(self) -> StandaloneControl:
        return self.plane.control

    @property
    def sessions(self) -> SessionRegistry:
        return self.plane.sessions

    @property
    def ingress_api(self) -> IngressApi:
        return self.plane.api

    def client(self) -> api.LiveKitAPI:
        return api.LiveKitAPI(self.http_url, "devkey", "secret")


@asynccontextmanager
async def running_service(tmp_path: Path, **extra: Any) -> AsyncIterator[RunningService]:
    whip_port = free_port()
    config: dict[str, Any] = {
        "api_key": "devkey",
        "api_secret": "secret",
        "ws_url": "ws://127.0.0.1:7880",  # never dialled by these tests; keeps serve from starting a room server
        "bind_address": "127.0.0.1",
        "whip_port": whip_port,
        "rtmp_port": free_port(),
        "srt_port": -1,  # API tests push nothing; and several services run at once
        "store_path": str(tmp_path / "ingress.sqlite3"),
        "rtmp_base_url": "rtmp://ingress.example.com:1935/live",
        **extra,
    }
    service = build_service(parse_config(yaml.safe_dump(config), env={}))
    await service.start()
    try:
        yield RunningService(service)
    finally:
        await service.stop()
