"""The RTMP handshake, sans-IO: C0/C1/C2 against S0/S1/S2, plain and digest ("complex").

The plain handshake (RTMP spec §5.2) echoes the peer's 1536-byte random block.  Flash Player, FFmpeg, librtmp and
many hardware encoders instead send a non-zero version in C1 and hide an HMAC-SHA256 digest in it (the
"Flash-era" handshake, never in the published spec): the digest sits at an offset derived from four bytes of C1,
at scheme 0 (offset bytes 8..11) or scheme 1 (offset bytes 772..775), keyed with the first 30 bytes of the
well-known Flash Player key.  The server answers with S1 digested the same way under the Flash Media Server key
and signs S2 with a key derived from the client's digest.  Some clients refuse servers that answer a digest C1
with a plain echo, so we answer in kind.
"""

import hashlib
import hmac
import os
import struct
from collections.abc import Callable
from enum import Enum

from pyingress.ingest.rtmp.errors import RtmpProtocolError

RTMP_VERSION = 3
ENCRYPTED_VERSION = 6  # RTMPE: Diffie-Hellman + RC4, long broken and not supported by us
HANDSHAKE_SIZE = 1536
DIGEST_SIZE = 32

_KEY_TAIL = bytes.fromhex("f0eec24a8068bee82e00d0d1029e7e576eec5d2d29806fab93b8e636cfeb31ae")
FLASH_PLAYER_KEY = b"Genuine Adobe Flash Player 001" + _KEY_TAIL  # 62 bytes; the digest uses the first 30
FLASH_MEDIA_SERVER_KEY = b"Genuine Adobe Flash Media Server 001" + _KEY_TAIL  # 68 bytes; the digest uses 36
_FP_DIGEST_KEY = FLASH_PLAYER_KEY[:30]
_FMS_DIGEST_KEY = FLASH_MEDIA_SERVER_KEY[:36]

# Versions we announce in S1/C1 when speaking the digest handshake (FMS 3.5 / Flash Player 10 style values).
SERVER_VERSION = b"\x0d\x0e\x0a\x0d"
CLIENT_VERSION = b"\x0c\x00\x0d\x0e"

RandomBytes = Callable[[int], bytes]


def digest_offset(block: bytes, scheme: int) -> int:
    """Where the 32-byte digest lives in a C1/S1 block for digest scheme 0 or 1."""
    base = 8 if scheme == 0 else 772
    return sum(block[base : base + 4]) % 728 + base + 4


def _hmac(key: bytes, data: bytes) -> bytes:
    return hmac.new(key, data, hashlib.sha256).digest()


def _block_digest(block: bytes, offset: int, key: bytes) -> bytes:
    return _hmac(key, block[:offset] + block[offset + DIGEST_SIZE :])


def find_digest(block: bytes, key: bytes) -> tuple[int, bytes] | None:
    """(scheme, digest) when ``block`` carries a valid digest under ``key``, trying scheme 0 then 1."""
    for scheme in (0, 1):
        offset = digest_offset(block, scheme)
        found = block[offset : offset + DIGEST_SIZE]
        if hmac.compare_digest(found, _block_digest(block, offset, key)):
            return scheme, found
    return None


def imprint_digest(block: bytes, scheme: int, key: bytes) -> tuple[bytes, bytes]:
    """Return ``block`` with its digest written at the scheme's offset, and the digest."""
    offset = digest_offset(block, scheme)
    digest = _block_digest(block, offset, key)
    return block[:offset] + digest + block[offset + DIGEST_SIZE :], digest


def signed_response(random_block: bytes, peer_digest: bytes, long_key: bytes) -> bytes:
    """S2/C2 of the digest handshake: 1504 random bytes and an HMAC keyed by HMAC(long_key, peer_digest)."""
    body = random_block[: HANDSHAKE_SIZE - DIGEST_SIZE]
    return body + _hmac(_hmac(long_key, peer_digest), body)


def _check_version(version: int, who: str) -> None:
    if version == RTMP_VERSION:
        return
    if version == ENCRYPTED_VERSION:
        raise RtmpProtocolError("encrypted RTMP (RTMPE, version 6) is not supported: use rtmp:// or rtmps://")
    if version in (0x47, 0x50, 0x48):  # 'G', 'P', 'H': an HTTP request on the RTMP port
        raise RtmpProtocolError(f"{who} sent HTTP, not an RTMP handshake")
    if version == 0x16:  # TLS ClientHello on the plain port
        raise RtmpProtocolError(f"{who} started TLS on the plain RTMP port: use the RTMPS port")
    raise RtmpProtocolError(f"{who} sent RTMP version {version}; only version 3 is supported")


class HandshakeState(Enum):
    WAITING_FOR_HELLO = "waiting for C0/C1"
    WAITING_FOR_ACK = "waiting for C2"
    COMPLETE = "complete"


class _HandshakeSide:
    """What both sides share: bytes to send, and bytes that arrive after the handshake kept for the chunk stream."""

    def __init__(self) -> None:
        self._buffer = bytearray()
        self._out = bytearray()
        self.leftover = b""

    @property
    def complete(self) -> bool:
        raise NotImplementedError

    def data_to_send(self) -> bytes:
        out = bytes(self._out)
        self._out.clear()
        return out

    def _take(self, data: bytes) -> bool:
        """Buffer ``data`` for the handshake; False (data kept as leftover) once the handshake is complete."""
        if self.complete:
            self.leftover += data
            return False
        self._buffer += data
        return True


class ServerHandshake(_HandshakeSide):
    """Server side: reads C0+C1, answers S0+S1+S2 at once, then reads C2.

    Bytes after C2 (the first chunks, often in the same segment) are kept in ``leftover`` for the chunk stream.
    """

    def __init__(self, *, epoch_ms: int = 0, random_bytes: RandomBytes = os.urandom) -> None:
        super().__init__()
        self._epoch_ms = epoch_ms & 0xFFFFFFFF
        self._random = random_bytes
        self.state = HandshakeState.WAITING_FOR_HELLO
        self.client_digest_scheme: int | None = None  # None: the client spoke the plain handshake

    @property
    def complete(self) -> bool:
        return self.state is HandshakeState.COMPLETE

    def receive_data(self, data: bytes) -> None:
        if not self._take(data):
            return
        if self.state is HandshakeState.WAITING_FOR_HELLO:
            if self._buffer:
                _check_version(self._buffer[0], "the client")
            if len(self._buffer) < 1 + HANDSHAKE_SIZE:
                return
            c1 = bytes(self._buffer[1 : 1 + HANDSHAKE_SIZE])
            del self._buffer[: 1 + HANDSHAKE_SIZE]
            self._out += bytes([RTMP_VERSION]) + self._answer(c1)
            self.state = HandshakeState.WAITING_FOR_ACK
        if self.state is HandshakeState.WAITING_FOR_ACK and len(self._buffer) >= HANDSHAKE_SIZE:
            # C2 is not checked: many encoders send a C2 that matches neither handshake flavour exactly.
            del self._buffer[:HANDSHAKE_SIZE]
            self.leftover = bytes(self._buffer)
            self._buffer.clear()
            self.state = HandshakeState.COMPLETE

    def _answer(self, c1: bytes) -> bytes:
        time = struct.pack(">I", self._epoch_ms)
        s1_random = self._random(HANDSHAKE_SIZE - 8)
        found = find_digest(c1, _FP_DIGEST_KEY) if c1[4:8] != b"\0\0\0\0" else None
        if found is None:
            # Plain handshake: S1 = time, zero, random; S2 = C1's time, our time, C1's random block.
            s1 = time + b"\0\0\0\0" + s1_random
            s2 = c1[:4] + time + c1[8:]
            return s1 + s2
        scheme, client_digest = found
        self.client_digest_scheme = scheme
        s1, _ = imprint_digest(time + SERVER_VERSION + s1_random, scheme, _FMS_DIGEST_KEY)
        s2 = signed_response(self._random(HANDSHAKE_SIZE), client_digest, FLASH_MEDIA_SERVER_KEY)
        return s1 + s2


class ClientHandshake(_HandshakeSide):
    """Client side (used by our test publisher): C0+C1 at start, S0+S1+S2 in, C2 out.

    ``digest=True`` sends a scheme-0 digest C1 like FFmpeg does; the server's S1 digest and S2 signature are then
    verified and reported in ``server_digest_verified`` (not enforced: plain-echo servers stay usable).
    """

    def __init__(self, *, digest: bool = True, epoch_ms: int = 0, random_bytes: RandomBytes = os.urandom) -> None:
        super().__init__()
        self._digest = digest
        self._random = random_bytes
        self._done = False
        time = struct.pack(">I", epoch_ms & 0xFFFFFFFF)
        if digest:
            self._c1, self._c1_digest = imprint_digest(
                time + CLIENT_VERSION + random_bytes(HANDSHAKE_SIZE - 8), 0, _FP_DIGEST_KEY
            )
        else:
            self._c1, self._c1_digest = time + b"\0\0\0\0" + random_bytes(HANDSHAKE_SIZE - 8), b""
        self._out += bytes([RTMP_VERSION]) + self._c1
        self.server_digest_verified = False

    @property
    def complete(self) -> bool:
        return self._done

    def receive_data(self, data: bytes) -> None:
        if not self._take(data):
            return
        if self._buffer:
            _check_version(self._buffer[0], "the server")
        if len(self._buffer) < 1 + 2 * HANDSHAKE_SIZE:
            return
        s1 = bytes(self._buffer[1 : 1 + HANDSHAKE_SIZE])
        s2 = bytes(self._buffer[1 + HANDSHAKE_SIZE : 1 + 2 * HANDSHAKE_SIZE])
        self.leftover = bytes(self._buffer[1 + 2 * HANDSHAKE_SIZE :])
        self._buffer.clear()
        found = find_digest(s1, _FMS_DIGEST_KEY) if self._digest and s1[4:8] != b"\0\0\0\0" else None
        if found is None:
            self._out += s1  # plain: echo S1
        else:
            _, server_digest = found
            expected_s2 = signed_response(s2, self._c1_digest, FLASH_MEDIA_SERVER_KEY)
            self.server_digest_verified = hmac.compare_digest(expected_s2, s2)
            self._out += signed_response(self._random(HANDSHAKE_SIZE), server_digest, FLASH_PLAYER_KEY)
        self._done = True
