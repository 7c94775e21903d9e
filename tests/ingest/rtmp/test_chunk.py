"""The chunk stream: every header format, extended timestamps, control messages, limits, and interleaving."""

import os
import struct

import pytest

from pyingress.ingest.rtmp.chunk import ChunkStream
from pyingress.ingest.rtmp.errors import RtmpProtocolError
from pyingress.ingest.rtmp.messages import MessageType, RtmpMessage, UserControlEvent


def basic(fmt: int, csid: int) -> bytes:
    if csid < 64:
        return bytes([(fmt << 6) | csid])
    if csid < 320:
        return bytes([fmt << 6, csid - 64])
    return bytes([(fmt << 6) | 1, (csid - 64) & 0xFF, (csid - 64) >> 8])


def fmt0(csid: int, ts: int, length: int, type_id: int, stream_id: int = 1) -> bytes:
    field = min(ts, 0xFFFFFF)
    ext = struct.pack(">I", ts) if ts >= 0xFFFFFF else b""
    return (
        basic(0, csid)
        + field.to_bytes(3, "big")
        + length.to_bytes(3, "big")
        + bytes([type_id])
        + struct.pack("<I", stream_id)
        + ext
    )


def fmt1(csid: int, delta: int, length: int, type_id: int) -> bytes:
    return basic(1, csid) + delta.to_bytes(3, "big") + length.to_bytes(3, "big") + bytes([type_id])


def fmt2(csid: int, delta: int) -> bytes:
    return basic(2, csid) + delta.to_bytes(3, "big")


def control(type_id: int, payload: bytes) -> bytes:
    return fmt0(2, 0, len(payload), type_id, 0) + payload


def test_round_trip_of_interleaved_messages_at_several_chunk_sizes() -> None:
    for size in (1, 7, 128, 4096, 70000):
        writer, reader = ChunkStream(), ChunkStream()
        writer.set_chunk_size(size)
        sent = []
        for i in range(30):
            payload = os.urandom(i * 997 % 9000)
            message = RtmpMessage(MessageType.VIDEO if i % 2 else MessageType.AUDIO, 1, i * 33, payload)
            writer.send(message, 4 + i % 3)
            sent.append(message)
        data = writer.data_to_send()
        received = []
        for start in range(0, len(data), 1000):  # arbitrary TCP segmentation
            received += reader.receive_data(data[start : start + 1000])
        assert received == sent, size


def test_type_1_2_3_headers_accumulate_timestamp_deltas() -> None:
    reader = ChunkStream()
    data = (
        fmt0(4, 1000, 3, 8)
        + b"abc"  # absolute 1000
        + fmt1(4, 20, 2, 8)
        + b"de"  # +20
        + fmt2(4, 30)
        + b"fg"  # +30, same length/type
        + basic(3, 4)
        + b"hi"  # type 3 new message: repeats the +30
    )
    messages = reader.receive_data(data)
    assert [(m.timestamp, m.payload) for m in messages] == [(1000, b"abc"), (1020, b"de"), (1050, b"fg"), (1080, b"hi")]
    assert all(m.stream_id == 1 and m.type_id == 8 for m in messages)


def test_two_and_three_byte_basic_headers() -> None:
    reader = ChunkStream()
    messages = reader.receive_data(fmt0(100, 5, 1, 9) + b"x" + fmt0(3000, 6, 1, 9) + b"y")
    assert [(m.timestamp, m.payload) for m in messages] == [(5, b"x"), (6, b"y")]
    writer = ChunkStream()
    writer.send(RtmpMessage(9, 1, 7, b"z"), 65599)
    assert reader.receive_data(writer.data_to_send())[0].payload == b"z"


def test_extended_timestamp_repeated_on_continuation_chunks() -> None:
    ts = 0x01000000
    payload = bytes(range(200))
    data = fmt0(6, ts, 200, 9) + payload[:128] + basic(3, 6) + struct.pack(">I", ts) + payload[128:]
    [message] = ChunkStream().receive_data(data)
    assert message.timestamp == ts and message.payload == payload


def test_extended_timestamp_omitted_on_continuation_chunks_is_tolerated() -> None:
    ts = 0x01000000
    payload = bytes(range(200))
    data = fmt0(6, ts, 200, 9) + payload[:128] + basic(3, 6) + payload[128:]
    [message] = ChunkStream().receive_data(data)
    assert message.payload == payload


def test_type_3_new_message_after_extended_delta_reads_the_extended_field() -> None:
    delta = 0x01000000
    data = (
        fmt0(6, 0, 1, 9)
        + b"a"
        + fmt2(6, 0xFFFFFF)
        + struct.pack(">I", delta)
        + b"b"
        + basic(3, 6)
        + struct.pack(">I", delta)
        + b"c"
    )
    messages = ChunkStream().receive_data(data)
    assert [m.timestamp for m in messages] == [0, delta, 2 * delta]


def test_writer_uses_extended_timestamps_and_reader_agrees() -> None:
    writer, reader = ChunkStream(), ChunkStream()
    sent = [RtmpMessage(9, 1, 0xFFFFFF + i * 1000, os.urandom(300)) for i in range(5)]
    for message in sent:
        writer.send(message, 6)
    assert reader.receive_data(writer.data_to_send()) == sent


def test_set_chunk_size_from_the_peer_applies_to_following_chunks() -> None:
    reader = ChunkStream()
    data = control(1, struct.pack(">I", 4096)) + fmt0(6, 0, 3000, 9) + bytes(3000)
    [message] = reader.receive_data(data)
    assert reader.in_chunk_size == 4096 and len(message.payload) == 3000


@pytest.mark.parametrize(
    ("size", "message"),
    [(0, "out of range"), (2**31, "out of range"), (2**32 - 1, "out of range"), (2**30, "exceeds this server")],
)
def test_bad_chunk_sizes_are_refused(size: int, message: str) -> None:
    with pytest.raises(RtmpProtocolError, match=message):
        ChunkStream().receive_data(control(1, struct.pack(">I", size)))


def test_configured_max_chunk_size_is_enforced() -> None:
    reader = ChunkStream(max_chunk_size=65536)
    reader.receive_data(control(1, struct.pack(">I", 65536)))
    with pytest.raises(RtmpProtocolError, match="limit of 65536"):
        reader.receive_data(control(1, struct.pack(">I", 65537)))


def test_message_longer_than_the_limit_is_refused_from_its_header() -> None:
    reader = ChunkStream()  # default limit 8 MiB
    with pytest.raises(RtmpProtocolError, match="16777215 bytes"):
        reader.receive_data(fmt0(6, 0, 0xFFFFFF, 9))  # the header alone: no need to wait for 16 MiB
    small = ChunkStream(max_message_size=1000)
    with pytest.raises(RtmpProtocolError, match="limit of 1000"):
        small.receive_data(fmt0(6, 0, 1001, 9))


def test_abort_drops_the_partial_message() -> None:
    reader = ChunkStream()
    data = fmt0(6, 0, 300, 9) + bytes(128) + control(2, struct.pack(">I", 6)) + fmt0(6, 10, 2, 9) + b"ok"
    [message] = reader.receive_data(data)
    assert message.payload == b"ok" and message.timestamp == 10


def test_abort_of_an_unknown_chunk_stream_is_refused() -> None:
    with pytest.raises(RtmpProtocolError, match="chunk stream 9, which was never used"):
        ChunkStream().receive_data(control(2, struct.pack(">I", 9)))


def test_acknowledgement_sent_when_the_peer_window_is_crossed() -> None:
    reader, peer = ChunkStream(), ChunkStream()
    reader.receive_data(control(5, struct.pack(">I", 1000)))
    assert reader.peer_window_ack_size == 1000
    assert reader.data_to_send() == b""
    reader.receive_data(fmt0(6, 0, 500, 9) + bytes(128))
    assert reader.data_to_send() == b""  # 156 bytes: below the window
    reader.receive_data(basic(3, 6) + bytes(128) + basic(3, 6) + bytes(128) + basic(3, 6) + bytes(116))
    reader.receive_data(fmt0(6, 0, 2000, 9) + bytes(128) + b"".join(basic(3, 6) + bytes(128) for _ in range(3)))
    peer.receive_data(reader.data_to_send())
    assert peer.peer_acknowledged == reader.bytes_received >= 1000


def test_acknowledgement_uses_our_window_when_the_peer_announced_none() -> None:
    reader, peer = ChunkStream(window_ack_size=500), ChunkStream()
    reader.receive_data(control(1, struct.pack(">I", 1000)) + fmt0(6, 0, 600, 9) + bytes(600))
    peer.receive_data(reader.data_to_send())
    assert peer.peer_acknowledged == reader.bytes_received


def test_set_peer_bandwidth_is_answered_with_a_window_size() -> None:
    reader, peer = ChunkStream(), ChunkStream()
    reader.receive_data(control(6, struct.pack(">IB", 5_000_000, 2)))
    peer.receive_data(reader.data_to_send())
    assert peer.peer_window_ack_size == 5_000_000
    with pytest.raises(RtmpProtocolError, match="limit type"):
        ChunkStream().receive_data(control(6, struct.pack(">IB", 1, 7)))


def test_ping_request_gets_a_ping_response() -> None:
    reader, peer = ChunkStream(), ChunkStream()
    assert reader.receive_data(control(4, struct.pack(">HI", UserControlEvent.PING_REQUEST, 4242))) == []
    [pong] = peer.receive_data(reader.data_to_send())
    assert pong.type_id == MessageType.USER_CONTROL
    assert struct.unpack(">HI", pong.payload) == (UserControlEvent.PING_RESPONSE, 4242)


def test_other_user_control_events_are_passed_up() -> None:
    payload = struct.pack(">HI", UserControlEvent.STREAM_BEGIN, 1)
    [message] = ChunkStream().receive_data(control(4, payload))
    assert message.payload == payload


def test_first_chunk_of_a_stream_must_have_a_full_header() -> None:
    with pytest.raises(RtmpProtocolError, match="type-3 header"):
        ChunkStream().receive_data(b"\xff" * 64)
    with pytest.raises(RtmpProtocolError, match="type-1 header"):
        ChunkStream().receive_data(fmt1(5, 0, 1, 9) + b"x")


def test_new_header_in_the_middle_of_a_message_is_refused() -> None:
    with pytest.raises(RtmpProtocolError, match="before the last message ended"):
        ChunkStream().receive_data(fmt0(6, 0, 300, 9) + bytes(128) + fmt0(6, 0, 1, 9) + b"x")


def test_too_many_chunk_streams_are_refused() -> None:
    reader = ChunkStream(max_chunk_streams=4)
    data = b"".join(fmt0(csid, 0, 1, 9) + b"x" for csid in range(3, 7))
    assert len(reader.receive_data(data)) == 4
    with pytest.raises(RtmpProtocolError, match="more than 4 chunk streams"):
        reader.receive_data(fmt0(7, 0, 1, 9) + b"x")


def test_short_control_messages_are_refused() -> None:
    with pytest.raises(RtmpProtocolError, match="too short"):
        ChunkStream().receive_data(control(1, b"\x00\x01"))


def test_a_failed_stream_stays_failed() -> None:
    reader = ChunkStream()
    with pytest.raises(RtmpProtocolError):
        reader.receive_data(b"\xff")
    with pytest.raises(RtmpProtocolError, match="already failed"):
        reader.receive_data(fmt0(6, 0, 1, 9) + b"x")


def test_writer_picks_compact_headers() -> None:
    writer = ChunkStream()
    for i in range(4):
        writer.send(RtmpMessage(8, 1, i * 20, b"abcd"), 4)
    data = writer.data_to_send()
    # fmt0 (12+4), fmt2 (4+4) for the first delta, then fmt3 (1+4) twice: the same delta, length and type
    assert len(data) == 16 + 8 + 5 + 5
    assert [m.timestamp for m in ChunkStream().receive_data(data)] == [0, 20, 40, 60]
