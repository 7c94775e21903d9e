"""Bad SRT inputs, one after another, while an RTMP session runs beside them: each gets a clear error — a rejection
at the handshake, or its own session ending in ERROR with words — and nothing else is disturbed.

The bad peers are real: Debian ffmpeg, raw UDP datagrams, and libsrt itself (our binding as a caller that sends
what no encoder should).
"""

import asyncio
import os
import random
import socket
import struct
import time
from collections.abc import Callable
from pathlib import Path

from livekit import api
from livekit.protocol.ingress import CreateIngressRequest, IngressInput

from pyingress.ingest.srt.libsrt import Opt, SockStatus, SrtError, SrtSocket
from tests.e2e.room_session import (
    BUFFERING,
    ERROR,
    INACTIVE,
    PUBLISHING,
    create_rtmp_ingress,
    ingress_state,
    push,
    stop_encoder,
    wait_status,
)
from tests.harness.livekit_peer import LivekitPeer
from tests.harness.ports import free_udp_port
from tests.harness.publishers import TestPattern, make_clip
from tests.harness.pull_media import url_request
from tests.harness.pyingress_peer import PyingressPeer
from tests.harness.srt_publishers import start_ffmpeg_srt
from tests.harness.subscriber import RoomSubscriber

NULL_TS = b"\x47\x1f\xff\x10" + b"\xff" * 184


def _caller(port: int, streamid: str, passphrase: str = "") -> SrtSocket:
    sock = SrtSocket.create()
    sock.set(Opt.STREAMID, streamid)
    if passphrase:
        sock.set(Opt.PASSPHRASE, passphrase)
    sock.connect("127.0.0.1", port)
    return sock


async def _silent_caller(port: int, streamid: str) -> SrtSocket:
    """A caller that connects and then sends nothing.

    Once in CI libsrt broke such a caller within 8 ms of its handshake, before pyingress had read anything (pyingress
    logged "Connection was broken"), while this process's callers of the step before were closing.  That tests
    nothing of pyingress's read timeout, so a caller broken at once is replaced; the new one takes the same key
    within the reconnect grace.
    """
    for _ in range(3):
        sock = await asyncio.to_thread(_caller, port, streamid)
        await asyncio.sleep(0.5)
        if sock.state() == SockStatus.CONNECTED:
            return sock
        sock.close()
        await asyncio.sleep(1.0)
    raise AssertionError("no silent caller stayed connected")


def _refusal(port: int, streamid: str, passphrase: str = "") -> str:
    """Connect and expect a rejection; its reason as libsrt names it."""
    try:
        _caller(port, streamid, passphrase).close()
    except SrtError as refused:
        return str(refused)
    raise AssertionError(f"{streamid[:40]!r} was accepted")


def _send(port: int, streamid: str, data: bytes, linger: float = 1.0) -> None:
    sock = _caller(port, streamid)
    try:
        for offset in range(0, len(data), 1316):
            sock.send(data[offset : offset + 1316])
        time.sleep(linger)
    except SrtError:
        pass  # pyingress hung up on us: that is the point
    finally:
        sock.close()


def _garbage(port: int, count: int) -> None:
    rng = random.Random(5)
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as udp:
        for _ in range(count):
            udp.sendto(os.urandom(rng.randrange(1, 1500)), ("127.0.0.1", port))
        # Datagrams shaped like SRT: a control bit and a plausible header, then junk.
        for kind in range(8):
            udp.sendto(struct.pack("!HHII", 0x8000 | kind, 0, 0, 0) + os.urandom(48), ("127.0.0.1", port))


def _half_handshake(port: int) -> int:
    """An induction handshake (v4 caller, handshake.md), the listener's answer read, and nothing more."""
    header = struct.pack("!IIII", 0x80000000, 0, 0, 0)
    body = struct.pack("!IIIIIiII", 4, 2, 12345, 1500, 8192, 1, 4242, 0) + bytes(16)
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as udp:
        udp.settimeout(2)
        udp.sendto(header + body, ("127.0.0.1", port))
        answer, _ = udp.recvfrom(2048)
    return int(struct.unpack_from("!I", answer, 16)[0])  # the listener's handshake version: 5


async def _frames_flow(viewer: RoomSubscriber, identity: str) -> None:
    sizes = await viewer.video_sizes(identity, frames=30, settle=0.5, timeout=30)
    assert sum(sizes.values()) == 30


async def test_bad_srt_inputs_get_clear_errors_and_an_rtmp_session_beside_keeps_its_frames(
    pyingress_factory: Callable[..., PyingressPeer], livekit_server: LivekitPeer, tmp_path: Path
) -> None:
    port = free_udp_port()
    peer = pyingress_factory(
        # Cheap sessions: the bad publishers' sessions must not be refused for capacity (a refusal of its own,
        # SRT_REJX_OVERLOAD at the handshake) beside the real one on this 2-core machine.
        {"srt_port": port, "srt": {"read_timeout": 3, "pull_media_timeout": 5}, "cpu_cost": {"rtmp_cpu_cost": 0.1}}
    )
    mpeg2 = make_clip(
        TestPattern(width=320, height=240, duration=2, video_codec="mpeg2video"), tmp_path / "m2.ts", "mpegts"
    )
    async with api.LiveKitAPI(peer.http_url, livekit_server.api_key, livekit_server.api_secret) as client:
        steady = await create_rtmp_ingress(client, "e2e-srt-bad-steady", "steady")
        victims = {
            name: await create_rtmp_ingress(client, f"e2e-srt-bad-{name}", name)
            for name in ("flv", "null", "mpeg2", "mute")
        }
        whip = await client.ingress.create_ingress(
            CreateIngressRequest(
                input_type=IngressInput.WHIP_INPUT, room_name="e2e-srt-bad-whip", participant_identity="w"
            )
        )
        encoder = push(TestPattern(width=640, height=360, fps=30, duration=180), steady, tmp_path / "rtmp.log")
        token = livekit_server.token("viewer", "e2e-srt-bad-steady", can_publish=False)
        try:
            async with RoomSubscriber(livekit_server.ws_url, token) as viewer:
                await viewer.wait_tracks("steady", timeout=30)
                resource_id = (await wait_status(client, steady.ingress_id, PUBLISHING)).resource_id

                # 1. Garbage datagrams on the SRT port, 2. a handshake that stops halfway.
                await asyncio.to_thread(_garbage, port, 3000)
                assert await asyncio.to_thread(_half_handshake, port) == 5
                # 3. A 600-byte streamid: libsrt refuses it on the publisher's side already.
                ffmpeg = start_ffmpeg_srt(
                    TestPattern(width=320, height=240, duration=2), port, "k" * 600, tmp_path / "long.log"
                )
                assert await asyncio.to_thread(ffmpeg.wait, 30) != 0
                assert "failed to set option SRTO_STREAMID" in (tmp_path / "long.log").read_text()
                # 4.-7. Refused at the handshake, each with its reason.
                assert "SRT_REJX_NOTFOUND" in await asyncio.to_thread(_refusal, port, "#!::r=" + "x" * 500)
                assert "SRT_REJX_BAD_MODE" in await asyncio.to_thread(
                    _refusal, port, f"#!::r={steady.stream_key},m=request"
                )
                assert "SRT_REJX_UNACCEPTABLE" in await asyncio.to_thread(_refusal, port, whip.stream_key)
                assert "SRT_REJ_UNSECURE" in await asyncio.to_thread(
                    _refusal, port, victims["flv"].stream_key, "a passphrase nobody asked for"
                )
                await _frames_flow(viewer, "steady")

                # 8.-10. Admitted, then the payload is wrong: that session ends in ERROR, in words.
                await asyncio.gather(
                    asyncio.to_thread(_send, port, victims["flv"].stream_key, b"FLV\x01\x05" + bytes(20_000)),
                    asyncio.to_thread(_send, port, victims["null"].stream_key, NULL_TS * 7 * 6200),
                    asyncio.to_thread(_send, port, victims["mpeg2"].stream_key, mpeg2.read_bytes()),
                )
                for name, words in (
                    ("flv", "not MPEG-TS: SRT messages must be 188-byte TS packets"),
                    ("null", "holds no audio or video"),
                    ("mpeg2", "unsupported video codec mpeg2video"),
                ):
                    state = await wait_status(client, victims[name].ingress_id, ERROR, timeout=20)
                    assert words in state.error, (name, state.error)
                # 11. Connected and silent: dropped after srt.read_timeout, then INACTIVE after the grace window.
                mute = await _silent_caller(port, victims["mute"].stream_key)
                try:
                    await wait_status(client, victims["mute"].ingress_id, BUFFERING, timeout=10)
                    await wait_status(client, victims["mute"].ingress_id, INACTIVE, timeout=30)
                    assert not (await ingress_state(client, victims["mute"].ingress_id)).error
                finally:
                    mute.close()

                # 12.-13. Caller URLs: a bad port is refused at create, an unknown host ends in ERROR at once.
                try:
                    await client.ingress.create_ingress(url_request("srt://127.0.0.1:70000", "e2e-srt-bad-url", "u"))
                    raise AssertionError("a bad port was accepted")
                except api.TwirpError as refused:
                    assert "invalid SRT URL: Port out of range" in refused.message
                unknown = await client.ingress.create_ingress(
                    url_request("srt://nowhere.invalid:9000", "e2e-srt-bad-host", "u")
                )
                assert "cannot resolve nowhere.invalid" in (await wait_status(client, unknown.ingress_id, ERROR)).error

                # The RTMP session beside all this never noticed.
                await _frames_flow(viewer, "steady")
                state = await ingress_state(client, steady.ingress_id)
                assert (state.status, state.resource_id, state.error) == (PUBLISHING, resource_id, "")
                assert encoder.poll() is None
        finally:
            stop_encoder(encoder)
    log = peer.log()
    assert "Traceback" not in log and peer.process is not None and peer.process.poll() is None
    # Every refusal and every error is in the log in words, with the SRT reason a publisher was sent.
    assert (
        "refused at the handshake: m=request: this listener only takes publishers (m=publish) (SRT_REJX_BAD_MODE)"
        in log
    )
    assert "refused at the handshake: invalid ingress type (SRT_REJX_UNACCEPTABLE)" in log
    assert "no data within the read timeout" in log
