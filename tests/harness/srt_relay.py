"""A UDP relay of ours between an SRT caller and pyingress that loses packets on purpose, both ways (this machine
has no netem).  Every datagram is fair game — data, ACKs, NAKs, handshakes — as on a lossy network; libsrt resends
handshakes and retransmits data within its latency.  (tests/harness/udp_relay.py is the WebRTC one: it drops only
SRTP one way, so that ICE and DTLS come up.)

SRT's header says what a datagram is (docs/features/handshake.md): the first bit is 1 for control packets, whose
type is the next 15 bits (0 handshake, 2 ACK, 3 NAK), 0 for data.  The relay counts what it dropped by kind.
"""

import asyncio
import random
from collections import Counter

CONTROL_NAMES = {0: "handshake", 1: "keepalive", 2: "ack", 3: "nak", 5: "shutdown", 6: "ackack"}


def kind_of(datagram: bytes) -> str:
    if len(datagram) < 4:
        return "runt"
    if not datagram[0] & 0x80:
        return "data"
    return CONTROL_NAMES.get(int.from_bytes(datagram[:2], "big") & 0x7FFF, "control")


class _Side(asyncio.DatagramProtocol):
    def __init__(self, relay: "SrtLossRelay", front: bool) -> None:
        self.relay = relay
        self.front = front
        self.transport: asyncio.DatagramTransport | None = None

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = transport  # type: ignore[assignment]

    def datagram_received(self, data: bytes, addr: tuple[str, int]) -> None:
        self.relay.received(data, addr, self.front)


class SrtLossRelay:
    """Callers send to ``address``; the relay forwards to ``target`` from a socket of its own and back."""

    def __init__(self, target: tuple[str, int], loss: float, seed: int = 13) -> None:
        self.target = target
        self.loss = loss
        self.random = random.Random(seed)
        self.forwarded: Counter[str] = Counter()
        self.dropped: Counter[str] = Counter()  # by "up:data", "down:ack", …
        self.caller: tuple[str, int] | None = None
        self._front = _Side(self, front=True)
        self._back = _Side(self, front=False)

    @property
    def address(self) -> tuple[str, int]:
        assert self._front.transport is not None
        host, port = self._front.transport.get_extra_info("sockname")[:2]
        return host, port

    async def start(self) -> "SrtLossRelay":
        loop = asyncio.get_running_loop()
        await loop.create_datagram_endpoint(lambda: self._front, local_addr=("127.0.0.1", 0))
        await loop.create_datagram_endpoint(lambda: self._back, local_addr=("127.0.0.1", 0))
        return self

    def received(self, data: bytes, addr: tuple[str, int], front: bool) -> None:
        direction = "up" if front else "down"
        key = f"{direction}:{kind_of(data)}"
        if front:
            self.caller = addr
        if self.random.random() < self.loss:
            self.dropped[key] += 1
            return
        self.forwarded[key] += 1
        if front:
            assert self._back.transport is not None
            self._back.transport.sendto(data, self.target)
        elif self.caller is not None and self._front.transport is not None:
            self._front.transport.sendto(data, self.caller)

    def close(self) -> None:
        for side in (self._front, self._back):
            if side.transport is not None:
                side.transport.close()
