"""The ``rtc_config`` keys of livekit/ingress, read for aiortc's ICE agent (reference ingress.md §4).

What aioice can do is honoured: ``stun_servers`` (server-reflexive candidates), ``enable_loopback_candidate``
(and ``development``, as livekit's dev mode does) adding 127.0.0.1, ``node_ip`` and ``ips.includes`` /
``ips.excludes`` choosing the host addresses, ``use_external_ip`` (needs STUN; Google's is used when none is
given, as LiveKit does).  aioice binds one UDP port per candidate, so ``udp_port`` / ``port_range_*`` (a single
muxed port) and ``tcp_port`` are accepted and not used; the banner's WHIP line says so when they are set.
"""

import ipaddress
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import aioice.ice
from aiortc import RTCIceServer

from pyingress.config import Config

DEFAULT_STUN = "stun:stun.l.google.com:19302"


@dataclass(frozen=True)
class RtcSettings:
    ice_servers: tuple[RTCIceServer, ...] = ()
    host_addresses: tuple[str, ...] | None = None  # None: aioice's choice (every interface but loopback)
    ignored: tuple[str, ...] = ()  # keys set but not used by this ICE agent


def rtc_settings(config: Config) -> RtcSettings:
    rc: dict[str, Any] = dict(config.rtc_config or {})
    stun = [str(s) for s in rc.get("stun_servers") or []]
    servers = [RTCIceServer(s if s.startswith(("stun:", "turn:")) else f"stun:{s}") for s in stun]
    if rc.get("use_external_ip") and not servers:
        servers = [RTCIceServer(DEFAULT_STUN)]
    loopback = bool(rc.get("enable_loopback_candidate") or config.development)
    ips = rc.get("ips") or {}
    node_ip = str(rc.get("node_ip") or "")
    addresses: list[str] | None = None
    if node_ip or ips.get("includes") or ips.get("excludes") or loopback:
        addresses = [node_ip] if node_ip else _filtered(_default_addresses(), ips.get("includes"), ips.get("excludes"))
        if loopback and "127.0.0.1" not in addresses:
            addresses.append("127.0.0.1")
    ignored = tuple(key for key in ("udp_port", "tcp_port", "port_range_start", "port_range_end") if rc.get(key))
    return RtcSettings(tuple(servers), tuple(addresses) if addresses is not None else None, ignored)


def _default_addresses() -> list[str]:
    return list(aioice.ice.get_host_addresses(use_ipv4=True, use_ipv6=False))


def _filtered(addresses: Sequence[str], includes: Sequence[str] | None, excludes: Sequence[str] | None) -> list[str]:
    def within(address: str, networks: Sequence[str]) -> bool:
        ip = ipaddress.ip_address(address)
        return any(ip in ipaddress.ip_network(str(n), strict=False) for n in networks)

    kept = [a for a in addresses if not includes or within(a, includes)]
    return [a for a in kept if not excludes or not within(a, excludes)]
