"""Choosing the host addresses aiortc's ICE agent gathers from, per peer connection.

aioice builds host candidates from every interface address *except* 127.0.0.1 (feasibility.md §7), and neither
aioice's ``Connection`` nor aiortc's ``RTCConfiguration`` takes a list of addresses.  A publisher whose room server
is on loopback (tests, the built-in dev room server) therefore needs 127.0.0.1 as its host candidate, while one
publishing to a remote server wants aioice's default.

This module is the single patch point for that: on first use it replaces ``aioice.ice.get_host_addresses`` with a
function that returns the addresses set in a context variable, and otherwise calls the original.  The variable is
set only around our own ``setLocalDescription`` (which gathers in tasks that inherit the context), so every other
aiortc user in the process keeps aioice's behaviour.
"""

import contextvars
import ipaddress
import urllib.parse
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager

import aioice.ice

LOOPBACK_ADDRESSES = ("127.0.0.1",)

_chosen: contextvars.ContextVar[tuple[str, ...] | None] = contextvars.ContextVar("pyingress_ice_hosts", default=None)
_original: Callable[[bool, bool], list[str]] | None = None


def _host_addresses(use_ipv4: bool, use_ipv6: bool) -> list[str]:
    chosen = _chosen.get()
    if chosen is not None:
        return list(chosen)
    assert _original is not None
    return _original(use_ipv4, use_ipv6)


def _install() -> None:
    global _original
    if _original is None:
        _original = aioice.ice.get_host_addresses
        aioice.ice.get_host_addresses = _host_addresses


@contextmanager
def gathering_from(addresses: Sequence[str] | None) -> Iterator[None]:
    """Within this block, ICE gathering started from this task uses ``addresses`` (None: aioice's default)."""
    if addresses is None:
        yield
        return
    _install()
    token = _chosen.set(tuple(addresses))
    try:
        yield
    finally:
        _chosen.reset(token)


def is_loopback_url(url: str) -> bool:
    """Whether the URL names a loopback host (then only loopback candidates can meet the server)."""
    host = urllib.parse.urlsplit(url).hostname or ""
    if host == "localhost" or host.endswith(".localhost"):
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False  # a name: not resolved here (no blocking DNS on the event loop); treated as remote
