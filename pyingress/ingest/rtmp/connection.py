"""One RTMP server connection, sans-IO: handshake, chunk stream and NetConnection/NetStream commands.

Feed the socket's bytes to ``receive_data``, drain ``events()``, write ``data_to_send()``.  The caller owns every
decision that needs the outside world: on :class:`PublishRequested` it calls ``accept_publish()`` (only then is
``NetStream.Publish.Start`` sent, so an encoder never believes it is live before its key was checked) or
``reject_publish(reason)``.  Anything malformed raises :class:`RtmpProtocolError`; the farewell to the peer is
already queued in ``data_to_send()`` and the caller closes the socket.
"""

from collections import deque
from collections.abc import Iterator
from enum import Enum
from typing import Any

from pyingress.control.errors import MISSING_STREAM_KEY
from pyingress.ingest.rtmp import amf0
from pyingress.ingest.rtmp.chunk import (
    DEFAULT_MAX_CHUNK_SIZE,
    DEFAULT_MAX_MESSAGE_SIZE,
    DEFAULT_WINDOW_ACK_SIZE,
    OUTGOING_CHUNK_SIZE,
    ChunkStream,
)
from pyingress.ingest.rtmp.demux import DEFAULT_CONFIG_GRACE_MS, FlvDemuxer
from pyingress.ingest.rtmp.errors import RtmpProtocolError
from pyingress.ingest.rtmp.events import (
    Connected,
    MediaDescription,
    MediaPacket,
    PublishEnded,
    PublishRequested,
    RtmpEvent,
    StreamMetadata,
)
from pyingress.ingest.rtmp.handshake import ServerHandshake
from pyingress.ingest.rtmp.messages import COMMAND_CHUNK_STREAM, MessageType, RtmpMessage, UserControlEvent
from pyingress.media.packets import EncodedPacket

# What FMS 3.5 answered; encoders only check that these are present.
FMS_VERSION = "FMS/3,5,7,7009"
CAPABILITIES = 31.0
# E-RTMP v2 "Enhancing NetConnection connect Command": FourCcInfoMask.CanDecode, CapsExMask.ModEx.
_CAN_DECODE = 1.0
_CAPS_EX_MOD_EX = 4.0
VIDEO_FOURCC_NAMES = ("avc1", "hvc1", "av01", "vp09", "vp08")
AUDIO_FOURCC_NAMES = ("mp4a", "Opus", ".mp3", "fLaC", "ac-3", "ec-3")
DEFAULT_MAX_PENDING_MEDIA = 4 << 20  # media a client sends before the key check finished (most wait for Start)

STATUS_BAD_NAME = "NetStream.Publish.BadName"
STATUS_DENIED = "NetStream.Publish.Denied"


class ConnectionState(Enum):
    HANDSHAKE = "handshake"
    AWAITING_CONNECT = "awaiting connect"
    CONNECTED = "connected"
    PUBLISH_PENDING = "publish pending"
    PUBLISHING = "publishing"
    CLOSED = "closed"


def stream_key_from_name(publishing_name: str) -> str:
    """The last path element of a publishing name, query string removed (``live/KEY?x=1`` → ``KEY``)."""
    return publishing_name.split("?", 1)[0].rsplit("/", 1)[-1]


def _text(value: Any) -> str:
    return value if isinstance(value, str) else ""


class RtmpConnection:
    """Server side of one RTMP connection that may publish one stream at a time."""

    def __init__(
        self,
        *,
        epoch_ms: int = 0,
        max_chunk_size: int = DEFAULT_MAX_CHUNK_SIZE,
        max_message_size: int = DEFAULT_MAX_MESSAGE_SIZE,
        max_pending_media: int = DEFAULT_MAX_PENDING_MEDIA,
        window_ack_size: int = DEFAULT_WINDOW_ACK_SIZE,
        config_grace_ms: int = DEFAULT_CONFIG_GRACE_MS,
    ) -> None:
        self.state = ConnectionState.HANDSHAKE
        self.handshake = ServerHandshake(epoch_ms=epoch_ms)
        self.chunks = ChunkStream(
            max_chunk_size=max_chunk_size, max_message_size=max_message_size, window_ack_size=window_ack_size
        )
        self._window_ack_size = window_ack_size
        self._max_pending_media = max_pending_media
        self._config_grace_ms = config_grace_ms
        self._events: deque[RtmpEvent] = deque()
        self._pending_media: list[RtmpMessage] = []
        self._pending_bytes = 0
        self._next_stream_id = 1
        self.app = ""
        self.tc_url = ""
        self.object_encoding = 0.0
        self.publish: PublishRequested | None = None
        self.publish_stream_id = 0
        self.demuxer = FlvDemuxer(config_grace_ms=config_grace_ms)
        self._farewell_sent = False

    # -- I/O surface ------------------------------------------------------------------------------------------

    def data_to_send(self) -> bytes:
        return self.handshake.data_to_send() + self.chunks.data_to_send()

    def events(self) -> Iterator[RtmpEvent]:
        while self._events:
            yield self._events.popleft()

    @property
    def closed(self) -> bool:
        return self.state is ConnectionState.CLOSED

    def receive_data(self, data: bytes) -> None:
        if self.closed:
            raise RtmpProtocolError("connection already closed")
        try:
            self._receive(data)
        except RtmpProtocolError as error:
            self._fail(error)
            raise

    def _receive(self, data: bytes) -> None:
        if self.state is ConnectionState.HANDSHAKE:
            self.handshake.receive_data(data)
            if not self.handshake.complete:
                return
            self.state = ConnectionState.AWAITING_CONNECT
            data = self.handshake.leftover
        for message in self.chunks.receive_data(data):
            self._dispatch(message)
            if self.closed:
                return

    # -- decisions from the caller ----------------------------------------------------------------------------

    def accept_publish(self) -> None:
        """Tell the encoder it is live and start passing its media on."""
        if self.state is not ConnectionState.PUBLISH_PENDING or self.publish is None:
            raise RuntimeError(f"accept_publish() in state {self.state.value}")
        self.state = ConnectionState.PUBLISHING
        self.chunks.send_user_control(UserControlEvent.STREAM_BEGIN, self.publish_stream_id.to_bytes(4, "big"))
        self._status("status", "NetStream.Publish.Start", f"{self.publish.raw_name} is now published.")
        pending, self._pending_media, self._pending_bytes = self._pending_media, [], 0
        try:
            for message in pending:
                self._dispatch(message)
        except RtmpProtocolError as error:
            self._fail(error)
            raise

    def _fail(self, error: RtmpProtocolError) -> None:
        # Once connected the peer can still read our messages, so it learns why we hang up (FFmpeg prints
        # "Server error: <description>"); commands that failed already queued their own answer.
        if not self._farewell_sent and self.state not in (ConnectionState.HANDSHAKE, ConnectionState.AWAITING_CONNECT):
            self._status("error", "NetStream.Failed", str(error))
        self.state = ConnectionState.CLOSED

    def reject_publish(self, reason: str, *, bad_name: bool = False) -> None:
        """Refuse the publish with ``reason`` shown to the encoder; the caller then closes the connection."""
        self._status("error", STATUS_BAD_NAME if bad_name else STATUS_DENIED, reason)
        self.state = ConnectionState.CLOSED

    def close(self, reason: str) -> None:
        """End the connection from our side (e.g. a newer publisher took the key); the caller closes the socket."""
        if self.state in (ConnectionState.PUBLISHING, ConnectionState.PUBLISH_PENDING):
            self._status("error", "NetConnection.Connect.Closed", reason)
        self.state = ConnectionState.CLOSED

    # -- messages ---------------------------------------------------------------------------------------------

    def _dispatch(self, message: RtmpMessage) -> None:
        kind = message.type_id
        if kind in (MessageType.COMMAND_AMF0, MessageType.COMMAND_AMF3):
            values = (
                amf0.decode_values(message.payload)
                if kind == MessageType.COMMAND_AMF0
                else amf0.decode_amf3_message(message.payload)
            )
            self._command(message, values)
        elif kind in (MessageType.DATA_AMF0, MessageType.DATA_AMF3):
            values = (
                amf0.decode_values(message.payload)
                if kind == MessageType.DATA_AMF0
                else amf0.decode_amf3_message(message.payload)
            )
            self._data(message, values)
        elif kind in (MessageType.AUDIO, MessageType.VIDEO):
            self._media(message)
        elif kind == MessageType.AGGREGATE:
            for sub in _split_aggregate(message):
                self._dispatch(sub)
        # User control (SetBufferLength, …) and shared objects carry nothing an ingest needs.

    def _command(self, message: RtmpMessage, values: list[Any]) -> None:
        if not values or not isinstance(values[0], str):
            raise RtmpProtocolError("command message without a command name")
        name = values[0]
        txn = values[1] if len(values) > 1 and isinstance(values[1], float) else 0.0
        args = values[2:]
        if name == "connect":
            self._connect(txn, args)
            return
        if self.state in (ConnectionState.HANDSHAKE, ConnectionState.AWAITING_CONNECT):
            self._send_command(
                "_error", txn, None, _info("error", "NetConnection.Call.Failed", f"{name} before connect")
            )
            self._farewell_sent = True
            raise RtmpProtocolError(f"'{name}' before 'connect'")
        if name == "createStream":
            stream_id = self._next_stream_id
            self._next_stream_id += 1
            self._send_command("_result", txn, None, float(stream_id))
        elif name == "publish":
            self._publish_command(message.stream_id, args)
        elif name in ("FCUnpublish", "deleteStream", "closeStream"):
            if txn:
                self._send_command("_result", txn, None, amf0.UNDEFINED)
            self._end_publish(name)
        elif name in ("releaseStream", "FCPublish", "_checkbw", "getStreamLength"):
            if txn:
                self._send_command("_result", txn, None, amf0.UNDEFINED)
        elif name == "play":
            self._status("error", "NetStream.Play.Failed", "this server only accepts publishing", message.stream_id)
            raise RtmpProtocolError("'play' is not supported: this is an ingest server")
        elif txn:
            self._send_command(
                "_error", txn, None, _info("error", "NetConnection.Call.Failed", f"unknown command {name}")
            )

    def _connect(self, txn: float, args: list[Any]) -> None:
        if self.state is not ConnectionState.AWAITING_CONNECT:
            raise RtmpProtocolError("'connect' sent twice on one connection")
        command = args[0] if args and isinstance(args[0], dict) else {}
        self.app = _text(command.get("app")).split("?", 1)[0].strip("/")
        self.tc_url = _text(command.get("tcUrl"))
        encoding = command.get("objectEncoding")
        self.object_encoding = encoding if isinstance(encoding, float) else 0.0
        self.chunks.send_window_ack_size(self._window_ack_size)
        self.chunks.send_set_peer_bandwidth(self._window_ack_size)
        self.chunks.set_chunk_size(OUTGOING_CHUNK_SIZE)
        properties: dict[str, Any] = {"fmsVer": FMS_VERSION, "capabilities": CAPABILITIES, "mode": 1.0}
        if any(key in command for key in ("fourCcList", "videoFourCcInfoMap", "audioFourCcInfoMap", "capsEx")):
            properties["fourCcList"] = list(VIDEO_FOURCC_NAMES + AUDIO_FOURCC_NAMES)
            properties["videoFourCcInfoMap"] = {name: _CAN_DECODE for name in VIDEO_FOURCC_NAMES}
            properties["audioFourCcInfoMap"] = {name: _CAN_DECODE for name in AUDIO_FOURCC_NAMES}
            properties["capsEx"] = _CAPS_EX_MOD_EX
        info = _info("status", "NetConnection.Connect.Success", "Connection succeeded.")
        info["objectEncoding"] = self.object_encoding
        self._send_command("_result", txn, properties, info)
        self.state = ConnectionState.CONNECTED
        self._events.append(Connected(self.app, self.tc_url, dict(command)))

    def _publish_command(self, stream_id: int, args: list[Any]) -> None:
        if self.state in (ConnectionState.PUBLISH_PENDING, ConnectionState.PUBLISHING):
            self._status("error", STATUS_BAD_NAME, "this connection is already publishing", stream_id)
            raise RtmpProtocolError("a second 'publish' on one connection is not allowed")
        raw_name = _text(args[1]) if len(args) > 1 else ""
        publish_type = _text(args[2]) if len(args) > 2 else "live"
        key = stream_key_from_name(raw_name)
        if not key:
            self._status("error", STATUS_BAD_NAME, MISSING_STREAM_KEY.message, stream_id)
            raise RtmpProtocolError(MISSING_STREAM_KEY.message)
        self.publish_stream_id = stream_id
        self.publish = PublishRequested(key, self.app, raw_name, publish_type or "live")
        self.demuxer = FlvDemuxer(config_grace_ms=self._config_grace_ms)
        self.state = ConnectionState.PUBLISH_PENDING
        self._events.append(self.publish)

    def _end_publish(self, reason: str) -> None:
        if self.state in (ConnectionState.PUBLISHING, ConnectionState.PUBLISH_PENDING):
            self.state = ConnectionState.CONNECTED
            self._pending_media, self._pending_bytes = [], 0
            self._events.append(PublishEnded(reason))

    def _data(self, message: RtmpMessage, values: list[Any]) -> None:
        if values and values[0] == "@setDataFrame":
            values = values[1:]
        if len(values) < 2 or values[0] != "onMetaData" or not isinstance(values[1], dict):
            return  # other data messages (|RtmpSampleAccess, onTextData …) are not ingested
        if self.state is ConnectionState.PUBLISH_PENDING:
            self._hold(message)
        elif self.state is ConnectionState.PUBLISHING:
            metadata = dict(values[1])
            self.demuxer.set_metadata(metadata)
            self._events.append(StreamMetadata(metadata))

    def _media(self, message: RtmpMessage) -> None:
        if self.state is ConnectionState.PUBLISH_PENDING:
            self._hold(message)
            return
        if self.state is not ConnectionState.PUBLISHING:
            if self.publish is not None and self.state is ConnectionState.CONNECTED:
                return  # trailing media after FCUnpublish/deleteStream
            raise RtmpProtocolError("media arrived before 'publish'")
        demux = self.demuxer.video_message if message.type_id == MessageType.VIDEO else self.demuxer.audio_message
        for item in demux(message.timestamp, message.payload):
            self._events.append(MediaPacket(item) if isinstance(item, EncodedPacket) else MediaDescription(item))

    def _hold(self, message: RtmpMessage) -> None:
        self._pending_bytes += len(message.payload)
        if self._pending_bytes > self._max_pending_media:
            raise RtmpProtocolError(
                f"more than {self._max_pending_media} bytes of media sent before the publish was accepted"
            )
        self._pending_media.append(message)

    # -- sending ----------------------------------------------------------------------------------------------

    def _send_command(self, name: str, txn: float, *args: Any, stream_id: int = 0) -> None:
        payload = amf0.encode_values(name, txn, *args)
        self.chunks.send(RtmpMessage(MessageType.COMMAND_AMF0, stream_id, 0, payload), COMMAND_CHUNK_STREAM)

    def _status(self, level: str, code: str, description: str, stream_id: int | None = None) -> None:
        self._farewell_sent = self._farewell_sent or level == "error"
        sid = self.publish_stream_id if stream_id is None else stream_id
        self._send_command("onStatus", 0.0, None, _info(level, code, description), stream_id=sid)


def _info(level: str, code: str, description: str) -> dict[str, Any]:
    return {"level": level, "code": code, "description": description}


def _split_aggregate(message: RtmpMessage) -> list[RtmpMessage]:
    """Sub-messages of an Aggregate message (spec §7.1.6): FLV-tag-like records with timestamps made relative."""
    data, pos, out = message.payload, 0, []
    base: int | None = None
    while pos + 11 <= len(data):
        type_id = data[pos]
        size = int.from_bytes(data[pos + 1 : pos + 4], "big")
        ts = int.from_bytes(data[pos + 4 : pos + 7], "big") | (data[pos + 7] << 24)
        end = pos + 11 + size
        if end + 4 > len(data):
            raise RtmpProtocolError("aggregate message truncated")
        base = ts if base is None else base
        timestamp = (message.timestamp + ts - base) & 0xFFFFFFFF
        if type_id == MessageType.AGGREGATE:
            raise RtmpProtocolError("nested aggregate message")
        out.append(RtmpMessage(type_id, message.stream_id, timestamp, data[pos + 11 : end]))
        pos = end + 4  # skip the back pointer
    if pos != len(data):
        raise RtmpProtocolError("aggregate message has trailing bytes")
    return out
