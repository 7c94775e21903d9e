"""The RTMP chunk stream, sans-IO: both directions and the protocol control messages (RTMP spec §5.3, §5.4).

``receive_data`` splits the peer's bytes into chunks, reassembles messages across interleaved chunk streams and
answers protocol control itself (Set Chunk Size, Abort, Acknowledgement windows, ping); the other messages come
back to the caller.  ``send`` cuts messages into chunks with the smallest header that keeps the peer's state right.

Timestamp rule for a type-3 header that starts a new message: it repeats the last header's timestamp field
(the delta of a type 1/2 header, or the absolute time of a type 0 header), which is how FFmpeg and librtmp read
it.  Our writer only uses that form after a type 1/2 header, where every reader agrees.

Extended timestamps: a type-3 continuation chunk repeats the 4-byte extended timestamp (FFmpeg, GStreamer, Flash
do); some encoders omit it, so on continuation chunks we consume those 4 bytes only when they match.
"""

import struct
from dataclasses import dataclass

from pyingress.ingest.rtmp.errors import RtmpProtocolError
from pyingress.ingest.rtmp.messages import (
    CONTROL_CHUNK_STREAM,
    PROTOCOL_CONTROL_TYPES,
    MessageType,
    PeerBandwidthLimit,
    RtmpMessage,
    UserControlEvent,
)

DEFAULT_CHUNK_SIZE = 128  # spec §5.4.1: until Set Chunk Size says otherwise
MAX_CHUNK_SIZE_FIELD = 0x7FFFFFFF  # 31 bits: the top bit of Set Chunk Size must be 0
DEFAULT_MAX_CHUNK_SIZE = 1 << 24  # nginx-rtmp refuses more than 10 MiB; encoders send 4096..65536
DEFAULT_MAX_MESSAGE_SIZE = 8 << 20  # a 1080p60 keyframe at 20 Mb/s is well under 2 MiB
DEFAULT_MAX_CHUNK_STREAMS = 64  # encoders use 2..8; each open stream may hold a partial message
DEFAULT_WINDOW_ACK_SIZE = 2_500_000  # what FMS and nginx-rtmp announce
OUTGOING_CHUNK_SIZE = 4096

_EXTENDED = 0xFFFFFF


@dataclass
class _Inbound:
    """What the peer's last header on one chunk stream established."""

    timestamp: int = 0  # absolute timestamp of the current/last message
    timestamp_field: int = 0  # the last type 0/1/2 header's timestamp or delta (the extended value if used)
    extended: bool = False
    length: int = 0
    type_id: int = 0
    stream_id: int = 0
    partial: bytearray | None = None  # message being reassembled


@dataclass
class _Outbound:
    timestamp: int
    delta: int | None  # None after a type 0 header: a type 3 must not follow for a new message
    length: int
    type_id: int
    stream_id: int


def _basic_header(fmt: int, csid: int) -> bytes:
    if csid < 64:
        return bytes([(fmt << 6) | csid])
    if csid < 320:
        return bytes([fmt << 6, csid - 64])
    rest = csid - 64
    return bytes([(fmt << 6) | 1, rest & 0xFF, rest >> 8])


class ChunkStream:
    """One connection's chunk layer.  Raises :class:`RtmpProtocolError` on malformed input or exceeded limits."""

    def __init__(
        self,
        *,
        max_chunk_size: int = DEFAULT_MAX_CHUNK_SIZE,
        max_message_size: int = DEFAULT_MAX_MESSAGE_SIZE,
        max_chunk_streams: int = DEFAULT_MAX_CHUNK_STREAMS,
        window_ack_size: int = DEFAULT_WINDOW_ACK_SIZE,
    ) -> None:
        self.max_chunk_size = max_chunk_size
        self.max_message_size = max_message_size
        self.max_chunk_streams = max_chunk_streams
        self.in_chunk_size = DEFAULT_CHUNK_SIZE
        self.out_chunk_size = DEFAULT_CHUNK_SIZE
        self._in = bytearray()
        self._out = bytearray()
        self._inbound: dict[int, _Inbound] = {}
        self._outbound: dict[int, _Outbound] = {}
        self.bytes_received = 0
        self._acked_at = 0
        # Until the peer announces its window we ack on ours: a peer that honours Set Peer Bandwidth but never
        # announces a window would otherwise wait for acks forever.
        self.peer_window_ack_size: int | None = None
        self.own_window_ack_size = window_ack_size
        self.peer_acknowledged = 0
        self.last_sent_window_ack_size: int | None = None
        self.peer_bandwidth: int | None = None
        self.failed = False

    # -- receiving ---------------------------------------------------------------------------------------------

    def receive_data(self, data: bytes) -> list[RtmpMessage]:
        if self.failed:
            raise RtmpProtocolError("chunk stream already failed")
        try:
            return self._receive(data)
        except RtmpProtocolError:
            self.failed = True
            raise

    def _receive(self, data: bytes) -> list[RtmpMessage]:
        self._in += data
        self.bytes_received += len(data)
        messages: list[RtmpMessage] = []
        pos = 0
        while True:
            parsed = self._parse_chunk(pos)
            if parsed is None:
                break
            pos, message = parsed
            if message is None:
                continue
            if message.type_id in PROTOCOL_CONTROL_TYPES:
                self._handle_control(message)
            elif message.type_id == MessageType.USER_CONTROL and self._handle_ping(message):
                continue
            else:
                messages.append(message)
        del self._in[:pos]
        self._maybe_acknowledge()
        return messages

    def _parse_chunk(self, pos: int) -> tuple[int, RtmpMessage | None] | None:
        """Parse one chunk at ``pos``: (next position, message if one completed), or None if more bytes are needed."""
        buf = self._in
        available = len(buf) - pos
        if available < 1:
            return None
        first = buf[pos]
        fmt, csid, p = first >> 6, first & 0x3F, pos + 1
        if csid == 0:
            if available < 2:
                return None
            csid, p = 64 + buf[pos + 1], pos + 2
        elif csid == 1:
            if available < 3:
                return None
            csid, p = 64 + buf[pos + 1] + (buf[pos + 2] << 8), pos + 3
        header_size = (11, 7, 3, 0)[fmt]
        if len(buf) < p + header_size:
            return None
        state = self._inbound.get(csid)
        if state is None:
            if fmt != 0:
                raise RtmpProtocolError(
                    f"chunk stream {csid} starts with a type-{fmt} header; its first chunk must carry a full header"
                )
            if len(self._inbound) >= self.max_chunk_streams:
                raise RtmpProtocolError(f"more than {self.max_chunk_streams} chunk streams in use")
        in_progress = state is not None and state.partial is not None
        if in_progress and fmt != 3:
            raise RtmpProtocolError(f"chunk stream {csid}: a new message header arrived before the last message ended")

        field = length = type_id = stream_id = 0
        if fmt <= 2:
            field = int.from_bytes(buf[p : p + 3], "big")
        if fmt <= 1:
            length = int.from_bytes(buf[p + 3 : p + 6], "big")
            type_id = buf[p + 6]
        if fmt == 0:
            stream_id = int.from_bytes(buf[p + 7 : p + 11], "little")
        p += header_size

        extended = field == _EXTENDED if fmt <= 2 else (state is not None and state.extended)
        if extended:
            if len(buf) < p + 4:
                return None
            ext = int.from_bytes(buf[p : p + 4], "big")
            if fmt <= 2:
                field, p = ext, p + 4
            elif not in_progress:
                p += 4  # a type-3 header starting a message carries it; its value repeats the last field
            elif state is not None and ext == state.timestamp_field:
                p += 4  # continuation chunk that repeats it (most encoders); otherwise those bytes are payload

        if fmt <= 1 and length > self.max_message_size:
            raise RtmpProtocolError(
                f"message of {length} bytes on chunk stream {csid} exceeds the limit of {self.max_message_size} bytes"
            )
        if state is None:
            state = _Inbound()
        if in_progress:
            assert state.partial is not None
            remaining = state.length - len(state.partial)
        else:
            remaining = length if fmt <= 1 else state.length
        take = min(self.in_chunk_size, remaining)
        if len(buf) < p + take:
            return None

        # The whole chunk is here: commit the header to the chunk stream's state.
        self._inbound[csid] = state
        if not in_progress:
            if fmt == 0:
                state.timestamp = field
            elif fmt <= 2:
                state.timestamp = (state.timestamp + field) & 0xFFFFFFFF
            else:
                state.timestamp = (state.timestamp + state.timestamp_field) & 0xFFFFFFFF
            if fmt <= 2:
                state.timestamp_field, state.extended = field, extended
            if fmt <= 1:
                state.length, state.type_id = length, type_id
            if fmt == 0:
                state.stream_id = stream_id
            state.partial = bytearray()
        assert state.partial is not None
        state.partial += buf[p : p + take]
        p += take
        if len(state.partial) < state.length:
            return p, None
        message = RtmpMessage(state.type_id, state.stream_id, state.timestamp, bytes(state.partial))
        state.partial = None
        return p, message

    def _handle_control(self, message: RtmpMessage) -> None:
        payload = message.payload
        name = MessageType(message.type_id).name.replace("_", " ").title()
        need = 5 if message.type_id == MessageType.SET_PEER_BANDWIDTH else 4
        if len(payload) < need:
            raise RtmpProtocolError(f"{name} message of {len(payload)} bytes is too short")
        value = int.from_bytes(payload[:4], "big")
        if message.type_id == MessageType.SET_CHUNK_SIZE:
            if not 1 <= value <= MAX_CHUNK_SIZE_FIELD:
                raise RtmpProtocolError(f"Set Chunk Size {value} is out of range (1..{MAX_CHUNK_SIZE_FIELD})")
            if value > self.max_chunk_size:
                raise RtmpProtocolError(f"Set Chunk Size {value} exceeds this server's limit of {self.max_chunk_size}")
            self.in_chunk_size = value
        elif message.type_id == MessageType.ABORT:
            state = self._inbound.get(value)
            if state is None:
                raise RtmpProtocolError(f"Abort for chunk stream {value}, which was never used")
            state.partial = None
        elif message.type_id == MessageType.ACKNOWLEDGEMENT:
            self.peer_acknowledged = value
        elif message.type_id == MessageType.WINDOW_ACK_SIZE:
            if value == 0:
                raise RtmpProtocolError("Window Acknowledgement Size 0 is invalid")
            self.peer_window_ack_size = value
        elif message.type_id == MessageType.SET_PEER_BANDWIDTH:
            if payload[4] > PeerBandwidthLimit.DYNAMIC:
                raise RtmpProtocolError(f"Set Peer Bandwidth limit type {payload[4]} is invalid")
            self.peer_bandwidth = value
            # Spec §5.4.5: answer with our window when it differs from the one we last announced.
            if value and value != self.last_sent_window_ack_size:
                self.send_window_ack_size(value)

    def _handle_ping(self, message: RtmpMessage) -> bool:
        payload = message.payload
        if len(payload) < 2:
            raise RtmpProtocolError(f"User Control message of {len(payload)} bytes is too short")
        if int.from_bytes(payload[:2], "big") == UserControlEvent.PING_REQUEST:
            self.send_user_control(UserControlEvent.PING_RESPONSE, payload[2:6])
            return True
        return False

    def _maybe_acknowledge(self) -> None:
        window = self.peer_window_ack_size or self.own_window_ack_size
        if window and self.bytes_received - self._acked_at >= window:
            self._acked_at = self.bytes_received
            self._send_control(MessageType.ACKNOWLEDGEMENT, struct.pack(">I", self.bytes_received & 0xFFFFFFFF))

    # -- sending -----------------------------------------------------------------------------------------------

    def data_to_send(self) -> bytes:
        out = bytes(self._out)
        self._out.clear()
        return out

    def send(self, message: RtmpMessage, chunk_stream_id: int) -> None:
        if not 2 <= chunk_stream_id <= 65599:
            raise ValueError(f"chunk stream id {chunk_stream_id} out of range 2..65599")
        ts = message.timestamp & 0xFFFFFFFF
        length = len(message.payload)
        prev = self._outbound.get(chunk_stream_id)
        delta: int | None
        if prev is None or prev.stream_id != message.stream_id or ts < prev.timestamp:
            fmt, field, delta = 0, ts, None
        else:
            delta = ts - prev.timestamp
            same_shape = prev.length == length and prev.type_id == message.type_id
            if same_shape and prev.delta == delta:
                fmt, field = 3, delta
            else:
                fmt, field = (2 if same_shape else 1), delta
        self._outbound[chunk_stream_id] = _Outbound(ts, delta, length, message.type_id, message.stream_id)

        extended = field >= _EXTENDED
        ext = struct.pack(">I", field) if extended else b""
        header = bytearray(_basic_header(fmt, chunk_stream_id))
        if fmt <= 2:
            header += (_EXTENDED if extended else field).to_bytes(3, "big")
        if fmt <= 1:
            header += length.to_bytes(3, "big") + bytes([message.type_id])
        if fmt == 0:
            header += message.stream_id.to_bytes(4, "little")
        header += ext
        continuation = _basic_header(3, chunk_stream_id) + ext
        payload = message.payload
        size = self.out_chunk_size
        self._out += header + payload[:size]
        for start in range(size, length, size):
            self._out += continuation + payload[start : start + size]

    def _send_control(self, type_id: MessageType, payload: bytes) -> None:
        self.send(RtmpMessage(type_id, 0, 0, payload), CONTROL_CHUNK_STREAM)

    def set_chunk_size(self, size: int) -> None:
        """Announce and start using a new outgoing chunk size."""
        if not 1 <= size <= MAX_CHUNK_SIZE_FIELD:
            raise ValueError(f"chunk size {size} out of range")
        self._send_control(MessageType.SET_CHUNK_SIZE, struct.pack(">I", size))
        self.out_chunk_size = size

    def send_window_ack_size(self, size: int) -> None:
        self.last_sent_window_ack_size = size
        self._send_control(MessageType.WINDOW_ACK_SIZE, struct.pack(">I", size))

    def send_set_peer_bandwidth(self, size: int, limit: PeerBandwidthLimit = PeerBandwidthLimit.DYNAMIC) -> None:
        self._send_control(MessageType.SET_PEER_BANDWIDTH, struct.pack(">IB", size, limit))

    def send_abort(self, chunk_stream_id: int) -> None:
        self._send_control(MessageType.ABORT, struct.pack(">I", chunk_stream_id))

    def send_user_control(self, event: UserControlEvent, data: bytes) -> None:
        self.send(RtmpMessage(MessageType.USER_CONTROL, 0, 0, struct.pack(">H", event) + data), CONTROL_CHUNK_STREAM)
