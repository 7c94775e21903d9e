"""Ending a video PES at its own last byte instead of at the next one's start, without IO (issue 13: latency).

Encoders leave the length out of video PES headers (FFmpeg by default, and OBS through it): a length of 0 means "up
to the next PES start on this PID".  FFmpeg's mpegts demuxer, like GStreamer's tsdemux, then hands a picture over
only when the next picture's first TS packet comes, one frame interval (33 ms at 30 fps) after the picture's own
last byte.  But a PES that ends inside a TS packet must fill the rest of that packet with adaptation-field stuffing
(a muxer has no other way to make it 188 bytes), so a packet of the PES's PID that carries payload *and* stuffing is
its last.  ``PesEnds`` holds a video PES's TS packets until that packet, writes the PES length into its header and
passes them on: the demuxer then yields the picture at once.  Other PIDs pass straight through, so audio and the
tables are never held, only reordered ahead of a picture still arriving.

A PES that fills its last packet exactly is ended, length written, when the next one starts: when the demuxer
would have ended it.  One longer than a length can say (65 535 bytes: large keyframes) or whose packets look wrong
(a continuity gap, a scrambled or errored packet) goes on as it came, unheld; the demuxer then ends it when it sees
the next PES start, which comes with that next picture's last packet (held like any other), a few milliseconds
after its first on a live stream.  If payload continues on a PID after a packet judged last (a muxer that stuffs
mid-PES), the one picture got a wrong length; that PID is no longer judged.
"""

from dataclasses import dataclass, field

TS_PACKET = 188
_MAX_PES_LENGTH = 0xFFFF  # a 16-bit field: the bytes after it
_PES_START = b"\x00\x00\x01"


@dataclass
class PesEndStats:
    ended: int = 0  # video PESs passed on whole, their length written
    passed: int = 0  # video PESs passed on as they came (too long, or packets in doubt)
    misjudged: int = 0  # PIDs whose payload went on after a packet judged last


@dataclass
class _Pending:
    packets: list[bytes | bytearray]
    length_at: int  # offset of the PES length field in packets[0]
    size: int  # PES bytes so far
    last_cc: int


def _stuffing_after_fields(packet: bytes, af_length: int) -> bool:
    """Whether the adaptation field ends in stuffing bytes (0xFF), beyond the fields its flags announce."""
    if af_length == 0:
        return True  # the length byte alone: one byte of stuffing
    field_end = 5 + af_length
    if field_end > TS_PACKET:
        return False
    flags = packet[5]
    at = 6
    at += 6 if flags & 0x10 else 0  # PCR
    at += 6 if flags & 0x08 else 0  # OPCR
    at += 1 if flags & 0x04 else 0  # splice countdown
    for flag in (0x02, 0x01):  # transport private data, adaptation field extension: each length-prefixed
        if flags & flag:
            if at >= field_end:
                return False
            at += 1 + packet[at]
    return at < field_end and all(byte == 0xFF for byte in packet[at:field_end])


@dataclass
class PesEnds:
    """Feed it whole TS packets (one SRT message at a time); it returns the bytes to hand the demuxer."""

    stats: PesEndStats = field(default_factory=PesEndStats)
    _pending: dict[int, _Pending] = field(default_factory=dict)
    _just_ended: set[int] = field(default_factory=set)
    _not_judged: set[int] = field(default_factory=set)
    _off: bool = False  # the stream lost TS alignment: everything passes as it comes from then on

    def feed(self, data: bytes) -> bytes:
        if self._off:
            return data
        if len(data) % TS_PACKET or any(data[at] != 0x47 for at in range(0, len(data), TS_PACKET)):
            self._off = True  # not whole packets: the demuxer resyncs on its own; nothing here can be trusted
            return self.flush() + data
        out = bytearray()
        for at in range(0, len(data), TS_PACKET):
            self._packet(data[at : at + TS_PACKET], out)
        return bytes(out)

    def flush(self) -> bytes:
        """Everything held, as it came (the stream ended: the demuxer ends the last PES at end of file)."""
        out = bytearray()
        for pid in list(self._pending):
            self._pass(pid, out)
        return bytes(out)

    def _packet(self, packet: bytes, out: bytearray) -> None:
        pid = (packet[1] & 0x1F) << 8 | packet[2]
        pending = self._pending.get(pid)
        control = packet[3] >> 4 & 0x3
        payload_at = 4 + (1 + packet[4] if control & 0x2 else 0)
        doubtful = packet[1] & 0x80 or packet[3] & 0xC0 or payload_at > TS_PACKET  # errored, scrambled, malformed
        if doubtful or pid in self._not_judged:
            if pending is not None:
                self._pass(pid, out)
            out += packet
            return
        payload = TS_PACKET - payload_at if control & 0x1 else 0
        last = payload > 0 and control & 0x2 and _stuffing_after_fields(packet, packet[4])
        continuity = packet[3] & 0x0F
        if packet[1] & 0x40:  # a PES starts here
            if pending is not None:
                self._end(pid, out)  # it filled its last packet exactly: whole now, and its length is known
            self._just_ended.discard(pid)
            if not self._video_pes_without_length(packet, payload_at, payload):
                out += packet
                return
            self._pending[pid] = _Pending([packet], payload_at + 4, payload, continuity)
            if last:
                self._end(pid, out)
            return
        if pending is None:
            if payload and pid in self._just_ended:
                self._not_judged.add(pid)  # payload after the packet judged last: this muxer stuffs mid-PES
                self._just_ended.discard(pid)
                self.stats.misjudged += 1
            out += packet
            return
        pending.packets.append(packet)
        if payload:
            if continuity != (pending.last_cc + 1) % 16:  # lost or repeated: the size would be wrong
                self._pass(pid, out)
                return
            pending.last_cc = continuity
            pending.size += payload
        if pending.size - 6 > _MAX_PES_LENGTH:
            self._pass(pid, out)
        elif last:
            self._end(pid, out)

    @staticmethod
    def _video_pes_without_length(packet: bytes, payload_at: int, payload: int) -> bool:
        if payload < 6 or packet[payload_at : payload_at + 3] != _PES_START:
            return False
        stream_id, length = packet[payload_at + 3], packet[payload_at + 4 : payload_at + 6]
        return 0xE0 <= stream_id <= 0xEF and length == b"\x00\x00"

    def _end(self, pid: int, out: bytearray) -> None:
        pending = self._pending.pop(pid)
        first = bytearray(pending.packets[0])
        first[pending.length_at : pending.length_at + 2] = (pending.size - 6).to_bytes(2, "big")
        out += first
        for packet in pending.packets[1:]:
            out += packet
        self._just_ended.add(pid)
        self.stats.ended += 1

    def _pass(self, pid: int, out: bytearray) -> None:
        pending = self._pending.pop(pid)
        for packet in pending.packets:
            out += packet
        self.stats.passed += 1
