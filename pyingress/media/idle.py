"""Video nobody watches is not decoded: its packets since the last keyframe wait, undecoded, for a viewer.

When dynacast has paused every layer, decoding the source only to throw the pictures away is most of what an
unwatched session costs (a 720p30 H.264 decode is a tenth of a core).  So the transcoder holds the packets of
the current GOP instead, and when a layer comes back it decodes them in one go with a fresh decoder and encodes
only the newest picture: the viewer's first frame is the live one, at the price of decoding one GOP at resume
(720p, 2 s GOP: about 0.15 s of one core).

A source whose keyframes are far apart would make that price, and the memory held, unbounded: past
``max_packets`` the held packets are decoded at once and the decoder runs on, pictures discarded, until the next
keyframe starts a new GOP to hold.  Before the first keyframe nothing is decodable, so nothing is held.
"""

from dataclasses import dataclass


@dataclass(frozen=True)
class HeldPacket:
    data: bytes
    pts_us: int
    dts_us: int
    config: bytes | None  # a sequence header that arrived with this packet
    arrival_ns: int


class GopHold:
    """The undecoded packets of the current GOP while nobody watches (sans-IO: the transcoder decodes)."""

    def __init__(self, max_packets: int = 150) -> None:
        self.max_packets = max_packets
        self._packets: list[HeldPacket] = []
        self.held_total = 0  # packets that were held instead of decoded at once
        self.overflows = 0

    @property
    def holding(self) -> bool:
        return bool(self._packets)

    def offer(self, packet: HeldPacket, keyframe: bool) -> list[HeldPacket] | None:
        """Hold ``packet``; None when held.  Otherwise the packets to decode now, ``packet`` last: the GOP grew past
        ``max_packets``, or no keyframe opened one (the decoder is running: the caller keeps it going)."""
        if keyframe:
            self._packets = [packet]
            self.held_total += 1
            return None
        if not self._packets:
            return [packet]
        if len(self._packets) >= self.max_packets:
            self.overflows += 1
            return [*self.release(), packet]
        self._packets.append(packet)
        self.held_total += 1
        return None

    def release(self) -> list[HeldPacket]:
        """Every held packet, oldest first; the hold is empty afterwards."""
        packets, self._packets = self._packets, []
        return packets
