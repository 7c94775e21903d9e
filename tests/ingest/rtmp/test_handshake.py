"""The handshake as an encoder sees it: plain and digest C1s are answered, bad versions refused clearly."""

import os
import struct

import pytest

from pyingress.ingest.rtmp.errors import RtmpProtocolError
from pyingress.ingest.rtmp.handshake import (
    FLASH_MEDIA_SERVER_KEY,
    HANDSHAKE_SIZE,
    ClientHandshake,
    HandshakeState,
    ServerHandshake,
    digest_offset,
    find_digest,
    imprint_digest,
)


def _exchange(client: ClientHandshake, server: ServerHandshake) -> None:
    server.receive_data(client.data_to_send())
    client.receive_data(server.data_to_send())
    server.receive_data(client.data_to_send())


def test_plain_handshake_echoes_the_random_blocks() -> None:
    client, server = ClientHandshake(digest=False), ServerHandshake(epoch_ms=1234)
    c0c1 = client.data_to_send()
    server.receive_data(c0c1)
    s0s1s2 = server.data_to_send()
    assert len(s0s1s2) == 1 + 2 * HANDSHAKE_SIZE and s0s1s2[0] == 3
    s1, s2 = s0s1s2[1 : 1 + HANDSHAKE_SIZE], s0s1s2[1 + HANDSHAKE_SIZE :]
    assert struct.unpack(">I", s1[:4])[0] == 1234 and s1[4:8] == b"\0\0\0\0"
    assert s2[:4] == c0c1[1:5] and s2[8:] == c0c1[9:]  # C1's time and random block come back
    client.receive_data(s0s1s2)
    assert client.data_to_send() == s1  # the client's C2 echoes S1
    server.receive_data(s1)
    assert server.complete and client.complete and server.client_digest_scheme is None


@pytest.mark.parametrize("scheme", [0, 1])
def test_digest_c1_gets_a_digest_answer_in_the_same_scheme(scheme: int) -> None:
    c1_body = struct.pack(">I", 0) + b"\x09\x00\x7c\x02" + os.urandom(HANDSHAKE_SIZE - 8)
    c1, _ = imprint_digest(c1_body, scheme, b"Genuine Adobe Flash Player 001")
    server = ServerHandshake()
    server.receive_data(b"\x03" + c1)
    assert server.client_digest_scheme == scheme
    s1 = server.data_to_send()[1 : 1 + HANDSHAKE_SIZE]
    found = find_digest(s1, FLASH_MEDIA_SERVER_KEY[:36])
    assert found is not None and found[0] == scheme


def test_digest_handshake_is_verified_by_our_client() -> None:
    client, server = ClientHandshake(digest=True), ServerHandshake()
    _exchange(client, server)
    assert server.complete and client.complete
    assert server.client_digest_scheme == 0
    assert client.server_digest_verified  # S1 digest and S2 signature both check out


def test_digest_offsets_stay_inside_their_half() -> None:
    block = bytes([255]) * HANDSHAKE_SIZE
    assert 12 <= digest_offset(block, 0) <= 12 + 727
    assert 776 <= digest_offset(block, 1) + 0 <= 776 + 727
    assert digest_offset(block, 1) + 32 <= HANDSHAKE_SIZE


def test_nonzero_version_without_a_valid_digest_falls_back_to_plain() -> None:
    server = ServerHandshake()
    c1 = b"\0\0\0\0" + b"\x01\x02\x03\x04" + bytes(HANDSHAKE_SIZE - 8)
    server.receive_data(b"\x03" + c1)
    reply = server.data_to_send()
    assert server.client_digest_scheme is None
    assert reply[1 + HANDSHAKE_SIZE + 8 :] == c1[8:]


def test_bytes_after_c2_are_kept_for_the_chunk_stream() -> None:
    client, server = ClientHandshake(digest=False), ServerHandshake()
    server.receive_data(client.data_to_send())
    client.receive_data(server.data_to_send())
    server.receive_data(client.data_to_send() + b"\x03chunk")
    assert server.complete and server.leftover == b"\x03chunk"


def test_handshake_arriving_byte_by_byte_completes() -> None:
    client, server = ClientHandshake(digest=True), ServerHandshake()
    for byte in client.data_to_send():
        server.receive_data(bytes([byte]))
    assert server.state is HandshakeState.WAITING_FOR_ACK
    client.receive_data(server.data_to_send())
    for byte in client.data_to_send():
        server.receive_data(bytes([byte]))
    assert server.complete


@pytest.mark.parametrize(
    ("first", "message"),
    [
        (b"\x06", "encrypted RTMP"),
        (b"\x08", "version 8"),
        (b"GET / HTTP/1.1\r\n", "HTTP"),
        (b"\x16\x03\x01", "TLS"),
        (b"\x00", "version 0"),
    ],
)
def test_wrong_versions_are_refused_at_the_first_byte(first: bytes, message: str) -> None:
    with pytest.raises(RtmpProtocolError, match=message):
        ServerHandshake().receive_data(first)


def test_client_refuses_a_server_with_a_wrong_version() -> None:
    client = ClientHandshake()
    client.data_to_send()
    with pytest.raises(RtmpProtocolError, match="version 9"):
        client.receive_data(b"\x09")
