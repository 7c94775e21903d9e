"""A real livekit-server v1.13.5 in dev mode on free ports, with Redis and ingress base URLs when given."""

from pathlib import Path

from livekit import api

from pyingress.room_server import LocalRoomServer, RoomServerOptions
from tests.harness.ports import free_port, free_udp_port
from tests.harness.processes import PEER_LOGS

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
            # The SFU's downlink estimator can hold a new viewer on the lowest layer for tens of seconds when a
            # loaded 2-core machine delays its loopback feedback (a CI run saw 30 s of 320x180 after asking for
            # 640x360). That tests the SFU's BWE under CPU starvation, not what pyingress publishes; the room
            # server `serve` starts keeps LiveKit's default.
            congestion_control=False,
        )
        PEER_LOGS.add(Path(self.options.log_path))
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
