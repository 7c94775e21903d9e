"""A UDP relay of ours that loses packets on purpose (this machine has no netem), between a WebRTC publisher and
pyingress, on loopback — or, with a ``Bottleneck``, a slow link from pyingress's room publisher to livekit-server.

The relay listens on one port; the publisher is told that port instead of pyingress's (its candidate in the
answer is rewritten, ``rewrite_candidates``).  What the publisher sends goes on to pyingress from a second socket,
what pyingress answers goes back to the publisher.  As behind a NAT, each address sending to the front gets a back
socket of its own: a publisher with several interface addresses checks from each of its host candidates, and
what answers one must reach that one.  And as a NAT's mapping does, a back socket sends to the address the target
last sent to it from (the configured target until then): livekit-server may advertise one address (its
``node_ip``) for a socket bound to another of the host's addresses, and what is sent to the advertised address
reaches a socket that knows nothing of the session (docs/chaos.md).  Only SRTP/SRTCP is dropped (first byte
128-191): ICE checks and the DTLS handshake pass, so a run measures media under loss, not a connection that might
not come up.  RTCP from pyingress is counted by type on the way back — its header is in the clear in SRTCP — so a
test can see the NACKs and PLIs it sent.
"""

import asyncio
import functools
import random
import re
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import cast

_RTCP_NAMES = {
    (205, 1): "nack",
    (205, 15): "transport-cc",
    (206, 1): "pli",
    (206, 4): "fir",
    (206, 15): "remb",
    (201, 0): "rr",
}


@dataclass
class RelayCounters:
    forwarded: int = 0
    dropped: int = 0
    feedback: Counter[str] = field(default_factory=Counter)
    queue_dropped: int = 0  # dropped at the bottleneck's full queue
    max_wait: float = 0.0  # the longest a forwarded datagram waited in the bottleneck's queue (seconds)


@dataclass
class Bottleneck:
    """A link of ``rate`` bits/s behind a FIFO holding at most ``max_queue`` seconds of traffic (sans IO)."""

    rate: float | None = None  # bits per second; None: no limit
    max_queue: float = 0.2
    _free_at: float = 0.0  # when the link has sent everything queued so far

    def admit(self, size: int, now: float) -> float | None:
        """Seconds the datagram waits before it is on the wire, or None when the queue is full (dropped)."""
        if self.rate is None:
            return 0.0
        start = max(now, self._free_at)
        if start - now > self.max_queue:
            return None
        self._free_at = start + size * 8 / self.rate
        return self._free_at - now


class _Side(asyncio.DatagramProtocol):
    def __init__(self, on_datagram: Callable[[bytes, tuple[str, int]], None]) -> None:
        self.on_datagram = on_datagram
        self.transport: asyncio.DatagramTransport | None = None

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = cast(asyncio.DatagramTransport, transport)

    def datagram_received(self, data: bytes, addr: tuple[str, int]) -> None:
        self.on_datagram(data, addr)


def _bound(side: _Side) -> tuple[str, int]:
    """The local address a side's socket is bound to."""
    assert side.transport is not None
    host, port = side.transport.get_extra_info("sockname")[:2]
    return host, port


class LossyRelay:
    def __init__(
        self,
        target: tuple[str, int],
        loss: float,
        seed: int = 7,
        bottleneck: Bottleneck | None = None,
        clients: int = 4,
    ) -> None:
        """``clients``: how many sending addresses the relay keeps apart (one back socket each)."""
        self.target = target
        self.loss = loss
        self.bottleneck = bottleneck
        self.random = random.Random(seed)
        self.counters = RelayCounters()
        self.clients = clients
        self._front: _Side | None = None
        self._backs: list[_Side] = []
        self._back_of: dict[tuple[str, int], int] = {}  # client address -> index of its back socket
        self._clients: list[tuple[str, int]] = []  # by back socket
        self._peer_of: dict[int, tuple[str, int]] = {}  # back socket -> where the target last sent to it from

    @property
    def address(self) -> tuple[str, int]:
        assert self._front is not None
        return _bound(self._front)

    @property
    def back_address(self) -> tuple[str, int]:
        """Where the target's datagrams to the first client go (a target told this can only reach it here; later
        clients it learns from their checks, as peer-reflexive candidates)."""
        return _bound(self._backs[0])

    async def start(self) -> "LossyRelay":
        loop = asyncio.get_running_loop()
        _, self._front = await loop.create_datagram_endpoint(
            lambda: _Side(self._from_publisher), local_addr=("127.0.0.1", 0)
        )
        for index in range(self.clients):
            factory = functools.partial(_Side, functools.partial(self._from_server, index))
            _, side = await loop.create_datagram_endpoint(factory, local_addr=("127.0.0.1", 0))
            self._backs.append(side)
        return self

    def forward_to(self, client: tuple[str, int]) -> tuple[str, int]:
        """Give ``client`` its back socket now, as a port forward does, and return that socket's address: what the
        target sends there reaches the client even before the client has sent anything through the relay."""
        return _bound(self._backs[self._index_for(client)])

    def _index_for(self, client: tuple[str, int]) -> int:
        index = self._back_of.get(client)
        if index is None:
            if len(self._clients) == len(self._backs):
                raise RuntimeError(f"more than {self.clients} clients through one relay")
            index = self._back_of[client] = len(self._clients)
            self._clients.append(client)
        return index

    def _from_publisher(self, data: bytes, addr: tuple[str, int]) -> None:
        index = self._index_for(addr)
        if data and 128 <= data[0] <= 191 and self.random.random() < self.loss:
            self.counters.dropped += 1
            return
        wait = 0.0
        if self.bottleneck is not None:
            admitted = self.bottleneck.admit(len(data), asyncio.get_running_loop().time())
            if admitted is None:
                self.counters.queue_dropped += 1
                return
            wait = admitted
            self.counters.max_wait = max(self.counters.max_wait, wait)
        self.counters.forwarded += 1
        if wait > 0:
            asyncio.get_running_loop().call_later(wait, self._to_target, index, data)
        else:
            self._to_target(index, data)

    def _to_target(self, index: int, data: bytes) -> None:
        back = self._backs[index]
        if back.transport is not None and not back.transport.is_closing():
            back.transport.sendto(data, self._peer_of.get(index, self.target))

    def _from_server(self, index: int, data: bytes, addr: tuple[str, int]) -> None:
        self._peer_of[index] = addr
        if len(data) >= 2 and 128 <= data[0] <= 191 and 192 <= data[1] <= 223:
            name = _RTCP_NAMES.get((data[1], data[0] & 0x1F if data[1] in (205, 206) else 0))
            if name:
                self.counters.feedback[name] += 1
        client = self._clients[index] if index < len(self._clients) else None
        if client is not None and self._front is not None and self._front.transport is not None:
            self._front.transport.sendto(data, client)

    def close(self) -> None:
        for side in (self._front, *self._backs):
            if side is not None and side.transport is not None:
                side.transport.close()


def answer_candidates(answer: str) -> list[tuple[str, int]]:
    """(address, port) of each UDP host candidate in an SDP answer."""
    return [
        (m.group(1), int(m.group(2))) for m in re.finditer(r"a=candidate:\S+ 1 udp \d+ (\S+) (\d+) typ host", answer)
    ]


def rewrite_candidates(answer: str, relay: tuple[str, int]) -> str:
    """The answer with one candidate left, pointing at the relay: the publisher can only reach pyingress through it."""
    lines = []
    kept = False
    for line in answer.split("\r\n"):
        if line.startswith("a=candidate:"):
            if kept:
                continue
            parts = line.split()
            parts[4], parts[5] = relay[0], str(relay[1])
            line = " ".join(parts)
            kept = True
        lines.append(line)
    return "\r\n".join(lines)
