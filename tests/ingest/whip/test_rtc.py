"""livekit/ingress's rtc_config keys as our ICE agent reads them."""

import yaml

from pyingress.config import parse_config
from pyingress.ingest.whip.rtc import RtcSettings, rtc_settings


def settings(rtc: dict[str, object], **extra: object) -> RtcSettings:
    return rtc_settings(parse_config(yaml.safe_dump({"rtc_config": rtc, **extra}), env={}))


def test_defaults_leave_aioices_choice_and_no_stun() -> None:
    s = settings({})
    assert s.host_addresses is None and s.ice_servers == () and s.ignored == ()


def test_loopback_stun_node_ip_and_ignored_keys() -> None:
    s = settings({"enable_loopback_candidate": True, "stun_servers": ["stun.example:3478"], "udp_port": 7885})
    assert "127.0.0.1" in s.host_addresses
    assert [server.urls for server in s.ice_servers] == ["stun:stun.example:3478"]
    assert s.ignored == ("udp_port",)
    assert settings({"node_ip": "10.1.2.3"}).host_addresses == ("10.1.2.3",)
    assert "127.0.0.1" in settings({}, development=True).host_addresses
    external = settings({"use_external_ip": True})
    assert [server.urls for server in external.ice_servers] == ["stun:stun.l.google.com:19302"]


def test_ips_filters_choose_the_host_addresses() -> None:
    only_loopback = settings({"ips": {"includes": ["127.0.0.0/8"]}, "enable_loopback_candidate": True})
    assert only_loopback.host_addresses == ("127.0.0.1",)
