"""RTMP messages: what the chunk stream carries, and the message and user-control type numbers (spec §5.4, §7)."""

from dataclasses import dataclass
from enum import IntEnum


class MessageType(IntEnum):
    SET_CHUNK_SIZE = 1
    ABORT = 2
    ACKNOWLEDGEMENT = 3
    USER_CONTROL = 4
    WINDOW_ACK_SIZE = 5
    SET_PEER_BANDWIDTH = 6
    AUDIO = 8
    VIDEO = 9
    DATA_AMF3 = 15
    SHARED_OBJECT_AMF3 = 16
    COMMAND_AMF3 = 17
    DATA_AMF0 = 18
    SHARED_OBJECT_AMF0 = 19
    COMMAND_AMF0 = 20
    AGGREGATE = 22


PROTOCOL_CONTROL_TYPES = frozenset(
    {
        MessageType.SET_CHUNK_SIZE,
        MessageType.ABORT,
        MessageType.ACKNOWLEDGEMENT,
        MessageType.WINDOW_ACK_SIZE,
        MessageType.SET_PEER_BANDWIDTH,
    }
)


class UserControlEvent(IntEnum):
    STREAM_BEGIN = 0
    STREAM_EOF = 1
    STREAM_DRY = 2
    SET_BUFFER_LENGTH = 3
    STREAM_IS_RECORDED = 4
    PING_REQUEST = 6
    PING_RESPONSE = 7


class PeerBandwidthLimit(IntEnum):
    HARD = 0
    SOFT = 1
    DYNAMIC = 2


# Chunk stream ids we send on (2 is reserved for protocol control by the spec; the rest is convention).
CONTROL_CHUNK_STREAM = 2
COMMAND_CHUNK_STREAM = 3
AUDIO_CHUNK_STREAM = 4
DATA_CHUNK_STREAM = 5
VIDEO_CHUNK_STREAM = 6


@dataclass(frozen=True)
class RtmpMessage:
    """One reassembled message: its type, message stream id, 32-bit millisecond timestamp and payload."""

    type_id: int
    stream_id: int
    timestamp: int
    payload: bytes
