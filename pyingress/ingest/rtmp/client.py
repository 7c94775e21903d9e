"""The publishing side of RTMP, sans-IO: enough of an encoder to push streams at a server (our tests use it for
Enhanced RTMP HEVC/AV1, which no Debian tool sends yet, and for hand-made bad input).

Flow: handshake → ``connect`` → releaseStream/FCPublish/createStream → ``publish`` → media.  ``start_publish``
queues the commands; the ``publish`` itself goes out when createStream's result names the stream id.
"""

from collections import deque
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any

from pyingress.ingest.rtmp import amf0
from pyingress.ingest.rtmp.chunk import OUTGOING_CHUNK_SIZE, ChunkStream
from pyingress.ingest.rtmp.errors import RtmpProtocolError
from pyingress.ingest.rtmp.handshake import ClientHandshake
from pyingress.ingest.rtmp.messages import (
    AUDIO_CHUNK_STREAM,
    COMMAND_CHUNK_STREAM,
    DATA_CHUNK_STREAM,
    VIDEO_CHUNK_STREAM,
    MessageType,
    RtmpMessage,
)


@dataclass(frozen=True)
class ClientConnected:
    properties: dict[str, Any] = field(default_factory=dict)


@dataclass(frozen=True)
class StatusReceived:
    """An onStatus (or _error) from the server: level "status" or "error", a code and a description."""

    level: str
    code: str
    description: str


ClientEvent = ClientConnected | StatusReceived


class RtmpClientConnection:
    def __init__(
        self,
        app: str,
        tc_url: str,
        *,
        digest: bool = True,
        enhanced: bool = True,
        chunk_size: int = OUTGOING_CHUNK_SIZE,
        auto_connect: bool = True,
    ) -> None:
        self.app = app
        self.tc_url = tc_url
        self.handshake = ClientHandshake(digest=digest)
        self.chunks = ChunkStream()
        self._enhanced = enhanced
        self._chunk_size = chunk_size
        self._auto_connect = auto_connect
        self._events: deque[ClientEvent] = deque()
        self._txn = 1.0
        self._pending: dict[float, str] = {}
        self._publish_name = ""
        self.connect_sent = False
        self.connected = False
        self.stream_id = 0
        self.publishing = False

    def data_to_send(self) -> bytes:
        return self.handshake.data_to_send() + self.chunks.data_to_send()

    def events(self) -> Iterator[ClientEvent]:
        while self._events:
            yield self._events.popleft()

    def receive_data(self, data: bytes) -> None:
        if not self.handshake.complete:
            self.handshake.receive_data(data)
            if not self.handshake.complete:
                return
            if self._auto_connect:
                self.connect()
            data = self.handshake.leftover
        for message in self.chunks.receive_data(data):
            if message.type_id == MessageType.COMMAND_AMF0:
                self._command(amf0.decode_values(message.payload))

    def connect(self) -> None:
        """Send ``connect`` (done right after the handshake unless ``auto_connect=False``)."""
        self.connect_sent = True
        if self._chunk_size != self.chunks.out_chunk_size:
            self.chunks.set_chunk_size(self._chunk_size)
        command: dict[str, Any] = {
            "app": self.app,
            "type": "nonprivate",
            "flashVer": "FMLE/3.0 (compatible; pyingress test publisher)",
            "tcUrl": self.tc_url,
        }
        if self._enhanced:
            command["fourCcList"] = ["hvc1", "av01", "vp09", "avc1"]
        self._call("connect", command)

    def _call(self, name: str, *args: Any, stream_id: int = 0, track: bool = True) -> None:
        txn = self._txn if track else 0.0
        if track:
            self._pending[txn] = name
            self._txn += 1
        payload = amf0.encode_values(name, txn, *args)
        self.chunks.send(RtmpMessage(MessageType.COMMAND_AMF0, stream_id, 0, payload), COMMAND_CHUNK_STREAM)

    def _command(self, values: list[Any]) -> None:
        if len(values) < 2 or not isinstance(values[0], str):
            raise RtmpProtocolError("malformed command from the server")
        name, txn = values[0], values[1]
        if name in ("_result", "_error"):
            method = self._pending.pop(txn, "") if isinstance(txn, float) else ""
            if name == "_error":
                info = values[3] if len(values) > 3 and isinstance(values[3], dict) else {}
                self._events.append(
                    StatusReceived("error", str(info.get("code", "")), str(info.get("description", "")))
                )
            elif method == "connect":
                self.connected = True
                props = values[2] if len(values) > 2 and isinstance(values[2], dict) else {}
                self._events.append(ClientConnected(dict(props)))
            elif method == "createStream" and len(values) > 3 and isinstance(values[3], float):
                self.stream_id = int(values[3])
                self._call("publish", None, self._publish_name, "live", stream_id=self.stream_id, track=False)
        elif name == "onStatus":
            info = values[3] if len(values) > 3 and isinstance(values[3], dict) else {}
            status = StatusReceived(
                str(info.get("level", "")), str(info.get("code", "")), str(info.get("description", ""))
            )
            if status.code == "NetStream.Publish.Start":
                self.publishing = True
            self._events.append(status)

    # -- publishing ---------------------------------------------------------------------------------------------

    def start_publish(self, name: str) -> None:
        """Queue releaseStream, FCPublish, createStream; ``publish`` follows createStream's result."""
        self._publish_name = name
        self._call("releaseStream", None, name)
        self._call("FCPublish", None, name)
        self._call("createStream", None)

    def stop_publish(self) -> None:
        self._call("FCUnpublish", None, self._publish_name)
        self._call("deleteStream", None, float(self.stream_id))
        self.publishing = False

    def send_metadata(self, metadata: dict[str, Any]) -> None:
        payload = amf0.encode_values("@setDataFrame", "onMetaData", amf0.EcmaArray(metadata))
        self.send_raw(MessageType.DATA_AMF0, 0, payload, DATA_CHUNK_STREAM)

    def send_video(self, timestamp: int, body: bytes) -> None:
        self.send_raw(MessageType.VIDEO, timestamp, body, VIDEO_CHUNK_STREAM)

    def send_audio(self, timestamp: int, body: bytes) -> None:
        self.send_raw(MessageType.AUDIO, timestamp, body, AUDIO_CHUNK_STREAM)

    def send_raw(
        self, type_id: int, timestamp: int, payload: bytes, chunk_stream_id: int, stream_id: int | None = None
    ) -> None:
        """Send any message as-is (tests use it to misbehave on purpose)."""
        sid = self.stream_id if stream_id is None else stream_id
        self.chunks.send(RtmpMessage(type_id, sid, timestamp, payload), chunk_stream_id)

    def send_command(self, name: str, *args: Any, stream_id: int = 0) -> None:
        self._call(name, *args, stream_id=stream_id)
