"""A server connection driven by our client connection in memory: the command flow an encoder goes through."""

import struct
from typing import Any

import pytest

from pyingress.ingest.rtmp import amf0
from pyingress.ingest.rtmp.client import ClientConnected, RtmpClientConnection, StatusReceived
from pyingress.ingest.rtmp.connection import ConnectionState, RtmpConnection, stream_key_from_name
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
from pyingress.ingest.rtmp.flv import aac_tag, legacy_video_tag
from pyingress.ingest.rtmp.messages import AUDIO_CHUNK_STREAM, COMMAND_CHUNK_STREAM, MessageType

AVC_CONFIG = bytes.fromhex("0164000dffe1001967640028acd9405005bb011000000300100000030320f1831960")


class Pair:
    def __init__(self, name: str = "live/KEY", **server_options: Any) -> None:
        self.server = RtmpConnection(**server_options)
        self.client = RtmpClientConnection("live", "rtmp://127.0.0.1/live")
        self.server_events: list[RtmpEvent] = []
        self.client_events: list[Any] = []
        self.name = name

    def pump(self) -> None:
        for _ in range(20):
            to_server, to_client = self.client.data_to_send(), self.server.data_to_send()
            if not to_server and not to_client:
                break
            if to_server:
                self.server.receive_data(to_server)
            if to_client:
                self.client.receive_data(to_client)
            self.server_events += self.server.events()
            self.client_events += self.client.events()

    def connect_and_request(self) -> PublishRequested:
        self.pump()
        self.client.start_publish(self.name)
        self.pump()
        [request] = [e for e in self.server_events if isinstance(e, PublishRequested)]
        return request

    def statuses(self) -> list[StatusReceived]:
        return [e for e in self.client_events if isinstance(e, StatusReceived)]


def test_publish_flow_sends_start_only_after_accept() -> None:
    pair = Pair("live/KEY?token=abc")
    pair.pump()
    [connected] = [e for e in pair.server_events if isinstance(e, Connected)]
    assert connected.app == "live" and connected.tc_url == "rtmp://127.0.0.1/live"
    [client_connected] = [e for e in pair.client_events if isinstance(e, ClientConnected)]
    assert client_connected.properties["fmsVer"].startswith("FMS/") and client_connected.properties["capabilities"]
    pair.client.start_publish(pair.name)
    pair.pump()
    assert pair.server_events[-1] == PublishRequested("KEY", "live", "live/KEY?token=abc", "live")
    assert pair.server.state is ConnectionState.PUBLISH_PENDING
    assert not pair.client.publishing and pair.statuses() == []
    pair.server.accept_publish()
    pair.pump()
    assert pair.client.publishing
    start = StatusReceived("status", "NetStream.Publish.Start", "live/KEY?token=abc is now published.")
    assert pair.statuses() == [start]


def test_media_metadata_and_unpublish_become_events() -> None:
    pair = Pair()
    pair.connect_and_request()
    pair.server.accept_publish()
    pair.pump()
    pair.client.send_metadata({"width": 320.0, "height": 240.0, "framerate": 25.0})
    pair.client.send_video(0, legacy_video_tag("config", AVC_CONFIG))
    pair.client.send_video(0, legacy_video_tag("frame", b"\x00\x00\x00\x01\x65", keyframe=True))
    pair.client.send_audio(0, aac_tag("config", b"\x11\x90"))
    pair.client.send_audio(21, aac_tag("frame", b"aac"))
    pair.client.stop_publish()
    pair.pump()
    kinds = [type(e).__name__ for e in pair.server_events if not isinstance(e, Connected | PublishRequested)]
    assert kinds == [
        "StreamMetadata",
        *("MediaDescription", "MediaPacket") * 2,
        "PublishEnded",
    ]
    metadata = next(e for e in pair.server_events if isinstance(e, StreamMetadata)).metadata
    assert metadata["width"] == 320.0
    video = next(e for e in pair.server_events if isinstance(e, MediaDescription)).description
    assert (video.codec, video.width, video.height, video.codec_config) == ("h264", 320, 240, AVC_CONFIG)
    assert pair.server_events[-1] == PublishEnded("FCUnpublish")
    assert pair.server.state is ConnectionState.CONNECTED


def test_media_sent_before_the_decision_is_held_then_delivered() -> None:
    pair = Pair()
    pair.connect_and_request()
    pair.client.stream_id = 1
    pair.client.send_audio(0, aac_tag("config", b"\x11\x90"))
    pair.client.send_audio(21, aac_tag("frame", b"x"))
    pair.pump()
    assert not any(isinstance(e, MediaPacket) for e in pair.server_events)
    pair.server.accept_publish()
    assert [type(e).__name__ for e in pair.server.events()] == ["MediaDescription", "MediaPacket"]


def test_too_much_media_before_the_decision_is_refused() -> None:
    pair = Pair(max_pending_media=1000)
    pair.connect_and_request()
    pair.client.stream_id = 1
    pair.client.send_audio(0, aac_tag("frame", bytes(2000)))
    with pytest.raises(RtmpProtocolError, match="before the publish was accepted"):
        pair.pump()


@pytest.mark.parametrize(
    ("bad_name", "code"), [(True, "NetStream.Publish.BadName"), (False, "NetStream.Publish.Denied")]
)
def test_rejection_reaches_the_encoder(bad_name: bool, code: str) -> None:
    pair = Pair()
    pair.connect_and_request()
    pair.server.reject_publish("ingress does not exist", bad_name=bad_name)
    pair.client.receive_data(pair.server.data_to_send())
    assert list(pair.client.events()) == [StatusReceived("error", code, "ingress does not exist")]
    assert pair.server.closed


@pytest.mark.parametrize("name", ["", "live/", "?token=1"])
def test_empty_stream_key_is_refused_as_missing(name: str) -> None:
    pair = Pair(name)
    pair.pump()
    pair.client.start_publish(name)
    with pytest.raises(RtmpProtocolError, match="missing stream key"):
        pair.pump()
    pair.client.receive_data(pair.server.data_to_send())
    assert StatusReceived("error", "NetStream.Publish.BadName", "missing stream key") in list(pair.client.events())


def handshaken(**client_options: Any) -> tuple[RtmpClientConnection, RtmpConnection]:
    """A client and server past the handshake, the client not yet connected."""
    client = RtmpClientConnection("live", "rtmp://x/live", auto_connect=False, **client_options)
    server = RtmpConnection()
    server.receive_data(client.data_to_send())
    client.receive_data(server.data_to_send())
    server.receive_data(client.data_to_send())
    assert server.state is ConnectionState.AWAITING_CONNECT
    return client, server


def test_commands_before_connect_are_refused() -> None:
    client, server = handshaken()
    client.start_publish("KEY")
    with pytest.raises(RtmpProtocolError, match="'releaseStream' before 'connect'"):
        server.receive_data(client.data_to_send())
    client.receive_data(server.data_to_send())
    assert [e.code for e in client.events() if isinstance(e, StatusReceived)] == ["NetConnection.Call.Failed"]


def test_second_publish_and_second_connect_are_refused() -> None:
    pair = Pair()
    pair.connect_and_request()
    pair.client.send_command("publish", None, "other", "live", stream_id=1)
    with pytest.raises(RtmpProtocolError, match="second 'publish'"):
        pair.pump()
    again = Pair()
    again.pump()
    again.client.send_command("connect", {"app": "live"})
    with pytest.raises(RtmpProtocolError, match="'connect' sent twice"):
        again.pump()


def test_media_before_publish_is_refused_and_the_encoder_told() -> None:
    pair = Pair()
    pair.pump()
    pair.client.send_audio(0, aac_tag("frame", b"x"))
    with pytest.raises(RtmpProtocolError, match="before 'publish'"):
        pair.pump()
    pair.client.receive_data(pair.server.data_to_send())
    statuses = [(e.level, e.code) for e in pair.client.events() if isinstance(e, StatusReceived)]
    assert statuses == [("error", "NetStream.Failed")]


def test_play_is_refused() -> None:
    pair = Pair()
    pair.pump()
    pair.client.send_command("play", None, "KEY", stream_id=1)
    with pytest.raises(RtmpProtocolError, match="'play' is not supported"):
        pair.pump()


def test_unknown_commands_get_an_error_but_the_connection_lives() -> None:
    pair = Pair()
    pair.pump()
    pair.client.send_command("getSomething", None)
    pair.pump()
    assert [s.code for s in pair.statuses()] == ["NetConnection.Call.Failed"]
    pair.client.start_publish("KEY")
    pair.pump()
    assert any(isinstance(e, PublishRequested) for e in pair.server_events)


def test_enhanced_rtmp_capabilities_are_answered() -> None:
    pair = Pair()
    pair.pump()
    [connected] = [e for e in pair.client_events if isinstance(e, ClientConnected)]
    assert {"hvc1", "av01", "vp09", "avc1"} <= set(connected.properties["videoFourCcInfoMap"])
    assert "fourCcList" in connected.properties
    legacy = RtmpClientConnection("live", "rtmp://x/live", enhanced=False)
    server = RtmpConnection()
    for _ in range(4):
        server.receive_data(legacy.data_to_send())
        legacy.receive_data(server.data_to_send())
    [props] = [e.properties for e in legacy.events() if isinstance(e, ClientConnected)]
    assert "videoFourCcInfoMap" not in props


def test_amf3_connect_command_is_understood() -> None:
    client, server = handshaken()
    body = b"\x00" + amf0.encode_values("connect", 1.0, {"app": "amf3app", "objectEncoding": 3.0})
    client.send_raw(MessageType.COMMAND_AMF3, 0, body, COMMAND_CHUNK_STREAM, stream_id=0)
    server.receive_data(client.data_to_send())
    [event] = list(server.events())
    assert isinstance(event, Connected) and event.app == "amf3app" and server.object_encoding == 3.0


def test_aggregate_messages_are_split_with_relative_timestamps() -> None:
    pair = Pair()
    pair.connect_and_request()
    pair.server.accept_publish()
    pair.pump()
    sub = b""
    for ts, body in ((1000, aac_tag("config", b"\x11\x90")), (1021, aac_tag("frame", b"a"))):
        sub += bytes([8]) + len(body).to_bytes(3, "big") + (ts & 0xFFFFFF).to_bytes(3, "big") + bytes([ts >> 24])
        sub += b"\x00\x00\x00" + body + struct.pack(">I", 11 + len(body))
    pair.client.send_raw(MessageType.AGGREGATE, 5000, sub, AUDIO_CHUNK_STREAM)
    pair.pump()
    [packet] = [e.packet for e in pair.server_events if isinstance(e, MediaPacket)]
    assert packet.dts == 5021
    pair.client.send_raw(MessageType.AGGREGATE, 0, sub[:-3], AUDIO_CHUNK_STREAM)
    with pytest.raises(RtmpProtocolError, match="aggregate message truncated"):
        pair.pump()


def test_close_tells_the_encoder_why() -> None:
    pair = Pair()
    pair.connect_and_request()
    pair.server.accept_publish()
    pair.pump()
    pair.server.close("a newer publisher took this stream key")
    pair.client.receive_data(pair.server.data_to_send())
    [status] = [e for e in pair.client.events() if isinstance(e, StatusReceived)]
    assert status.description == "a newer publisher took this stream key"
    with pytest.raises(RtmpProtocolError, match="already closed"):
        pair.server.receive_data(b"x")


def test_republish_after_unpublish_on_the_same_connection() -> None:
    pair = Pair()
    pair.connect_and_request()
    pair.server.accept_publish()
    pair.pump()
    pair.client.stop_publish()
    pair.client.start_publish("KEY2")
    pair.pump()
    requests = [e.stream_key for e in pair.server_events if isinstance(e, PublishRequested)]
    assert requests == ["KEY", "KEY2"]


@pytest.mark.parametrize(
    ("name", "key"),
    [("KEY", "KEY"), ("live/KEY", "KEY"), ("a/b/KEY?x=1&y=2", "KEY"), ("KEY?", "KEY"), ("/", ""), ("x?a/b", "x")],
)
def test_stream_key_is_the_last_path_element_without_query(name: str, key: str) -> None:
    assert stream_key_from_name(name) == key
