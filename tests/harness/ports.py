"""Free loopback ports for peers started by tests."""

import socket

_handed_out: set[int] = set()


def free_port(kind: int = socket.SOCK_STREAM) -> int:
    """A port free for TCP (or UDP) on 127.0.0.1, never the same one twice in a test run."""
    while True:
        with socket.socket(socket.AF_INET, kind) as sock:
            sock.bind(("127.0.0.1", 0))
            port = int(sock.getsockname()[1])
        if port not in _handed_out:
            _handed_out.add(port)
            return port


def free_udp_port() -> int:
    return free_port(socket.SOCK_DGRAM)
