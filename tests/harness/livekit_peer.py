"""A real livekit-server v1.13.5 in dev mode on free ports, with Redis and ingress base URLs when given."""

from pathlib import Path

from livekit import api

from pyingress.room_server import LocalRoomServer, RoomServerOptions
from tests.harness.ports import free_port, free_udp_port

API_KEY = "devkey"
API_SECRET = "secret"


class LivekitPeer:
    def __init__(
        self,
        workdir: Path,
        redis_address: str = "",
        rtmp_base_url: str = "",
        whip_base_url: str = "",
        webhook_urls: list[str] | None = None,
    ) -> None:
        self.options = RoomServerOptions(
            port=free_port(),
            rtc_tcp_port=free_port(),
            rtc_udp_port=free_udp_port(),
            api_key=API_KEY,
            api_secret=API_SECRET,
            redis_address=redis_address,
            rtmp_base_url=rtmp_base_url,
            whip_base_url=whip_base_url,
            webhook_urls=webhook_urls or [],
            log_path=str(workdir / f"livekit-{id(self)}.log"),
        )
        self.server = LocalRoomServer(self.options)

    api_key = API_KEY
    api_secret = API_SECRET

    @property
    def http_url(self) -> str:
        return self.options.http_url

    @property
    def ws_url(self) -> str:
        return self.options.ws_url

    def start(self) -> "LivekitPeer":
        self.server.start(timeout=60)
        return self

    def stop(self) -> None:
        self.server.stop()

    def restart(self) -> None:
        self.server.stop()
        self.server.start(timeout=60)

    def token(self, identity: str, room: str, can_publish: bool = True, can_subscribe: bool = True) -> str:
        grants = api.VideoGrants(room_join=True, room=room, can_publish=can_publish, can_subscribe=can_subscribe)
        return api.AccessToken(API_KEY, API_SECRET).with_identity(identity).with_grants(grants).to_jwt()

    def api(self) -> api.LiveKitAPI:
        return api.LiveKitAPI(self.http_url, API_KEY, API_SECRET)
