"""The embedded room server (``pyingress.room_server``): a real livekit-server started the way ``serve`` starts it."""

from pathlib import Path

from pyingress.room_server import LocalRoomServer, RoomServerOptions
from tests.harness.ports import free_port, free_udp_port

LOOPBACK = "0100007F"  # 127.0.0.1 as /proc/net/udp writes it (host byte order, little-endian here)


def _udp_addresses(port: int) -> set[str]:
    """The local addresses of every UDP socket bound to ``port`` (hex, as /proc/net/udp and udp6 write them)."""
    found = set()
    for table in ("/proc/net/udp", "/proc/net/udp6"):
        for line in Path(table).read_text().splitlines()[1:]:
            address, _, hex_port = line.split()[1].partition(":")
            if int(hex_port, 16) == port:
                found.add(address)
    return found


def test_media_is_taken_on_loopback_only(tmp_path: Path) -> None:
    """One UDP socket, on 127.0.0.1, the address the server names in its candidates: what a client sends there
    reaches the socket the session's checks leave from (with a socket per host address, the candidate could be
    another address's socket, and a client's own checks were dropped — docs/chaos.md)."""
    options = RoomServerOptions(
        port=free_port(), rtc_tcp_port=free_port(), rtc_udp_port=free_udp_port(), log_path=str(tmp_path / "lk.log")
    )
    server = LocalRoomServer(options)
    server.start()
    try:
        assert _udp_addresses(options.rtc_udp_port) == {LOOPBACK}, (tmp_path / "lk.log").read_text()[-2000:]
    finally:
        server.stop()
