"""End to end: encoders push MPEG-TS over SRT to an RTMP ingress's stream key; a LiveKit subscriber watches.

Real peers only: Debian ffmpeg (libsrt caller) and srt-live-transmit (srt-tools) publish, livekit-server hosts the
room, the ``livekit`` SDK subscribes.  Refusals happen at the SRT handshake: the publisher's own log says so, and
the ingress stays INACTIVE with no session.
"""

import asyncio
import contextlib
import signal
import subprocess
from collections.abc import Callable
from pathlib import Path

from livekit import api, rtc
from livekit.protocol.ingress import UpdateIngressRequest

from tests.e2e.room_session import (
    INACTIVE,
    PUBLISHING,
    Q_HIGH,
    Q_LOW,
    Q_MEDIUM,
    create_rtmp_ingress,
    ingress_state,
    push,
    record_statuses,
    stop_encoder,
    wait_status,
)
from tests.harness.livekit_peer import LivekitPeer
from tests.harness.ports import free_udp_port
from tests.harness.publishers import TestPattern
from tests.harness.pyingress_peer import PyingressPeer
from tests.harness.srt_publishers import SrtLiveTransmit, access_streamid, start_ffmpeg_srt
from tests.harness.subscriber import RoomSubscriber


def _srt_peer(factory: Callable[..., PyingressPeer], **srt: object) -> tuple[PyingressPeer, int]:
    port = free_udp_port()
    return factory({"srt_port": port, "srt": srt} if srt else {"srt_port": port}), port


async def _assert_layer(viewer: RoomSubscriber, identity: str, quality: int, size: tuple[int, int]) -> None:
    seen = await viewer.sizes_until(identity, quality, size, timeout=30)
    assert seen[-15:] == [size] * 15, f"quality {quality}: wanted {size}, saw {seen[-30:]}"


async def _assert_ladder_and_audio(viewer: RoomSubscriber, identity: str) -> None:
    report = await viewer.wait_tracks(identity, timeout=30)
    assert report.kind == rtc.ParticipantKind.PARTICIPANT_KIND_INGRESS
    (video,) = report.tracks_of("video")
    (audio,) = report.tracks_of("audio")
    assert video.simulcasted and video.mime_type == "video/H264" and (video.width, video.height) == (1280, 720)
    assert audio.mime_type == "audio/opus"
    await _assert_layer(viewer, identity, Q_HIGH, (1280, 720))
    await _assert_layer(viewer, identity, Q_MEDIUM, (640, 360))
    await _assert_layer(viewer, identity, Q_LOW, (320, 180))
    frames = await viewer.audio_frames(identity, frames=10, channels=2)
    assert all(f.sample_rate == 48_000 for f in frames)


async def test_ffmpeg_pushes_srt_to_an_rtmp_ingress_and_the_room_sees_the_ladder(
    pyingress_factory: Callable[..., PyingressPeer], livekit_server: LivekitPeer, tmp_path: Path
) -> None:
    peer, port = _srt_peer(pyingress_factory)
    async with api.LiveKitAPI(peer.http_url, livekit_server.api_key, livekit_server.api_secret) as client:
        info = await create_rtmp_ingress(client, "e2e-srt-ffmpeg", "srt-encoder")
        encoder = start_ffmpeg_srt(
            TestPattern(width=1280, height=720, fps=30, duration=25),
            port,
            access_streamid(info.stream_key),
            tmp_path / "ffmpeg.log",
        )
        try:
            token = livekit_server.token("viewer", "e2e-srt-ffmpeg", can_publish=False)
            async with RoomSubscriber(livekit_server.ws_url, token) as viewer:
                await _assert_ladder_and_audio(viewer, "srt-encoder")
                state = await wait_status(client, info.ingress_id, PUBLISHING)
                # The same session as an RTMP push: RTMP_INPUT's resource id, and the input as the encoder sent it.
                assert state.resource_id.startswith("RT_")
                assert state.video.mime_type == "video/H264" and (state.video.width, state.video.height) == (1280, 720)
                assert state.audio.mime_type == "audio/aac" and state.audio.channels == 2
        finally:
            stop_encoder(encoder)
        state = await wait_status(client, info.ingress_id, INACTIVE, timeout=30)
        assert state.ended_at >= state.started_at > 0 and not state.error
    assert f"srt://127.0.0.1:{port}?streamid=#!::r=<stream key>,m=publish" in peer.log()


async def test_srt_live_transmit_pushes_the_bare_stream_key(
    pyingress_factory: Callable[..., PyingressPeer], livekit_server: LivekitPeer, tmp_path: Path
) -> None:
    peer, port = _srt_peer(pyingress_factory)
    async with api.LiveKitAPI(peer.http_url, livekit_server.api_key, livekit_server.api_secret) as client:
        info = await create_rtmp_ingress(client, "e2e-srt-slt", "slt-encoder")
        publisher = SrtLiveTransmit(
            TestPattern(width=1280, height=720, fps=30, duration=25), port, info.stream_key, tmp_path / "slt.log"
        )
        try:
            token = livekit_server.token("viewer", "e2e-srt-slt", can_publish=False)
            async with RoomSubscriber(livekit_server.ws_url, token) as viewer:
                await _assert_ladder_and_audio(viewer, "slt-encoder")
        finally:
            publisher.stop()
        await wait_status(client, info.ingress_id, INACTIVE, timeout=30)


async def test_a_wrong_stream_key_is_refused_at_the_handshake(
    pyingress_factory: Callable[..., PyingressPeer], livekit_server: LivekitPeer, tmp_path: Path
) -> None:
    peer, port = _srt_peer(pyingress_factory)
    async with api.LiveKitAPI(peer.http_url, livekit_server.api_key, livekit_server.api_secret) as client:
        info = await create_rtmp_ingress(client, "e2e-srt-wrong-key", "nobody")
        encoder = start_ffmpeg_srt(
            TestPattern(width=320, height=240, duration=5), port, access_streamid("not-a-key"), tmp_path / "ff.log"
        )
        assert await asyncio.to_thread(encoder.wait, 30) != 0
        log = (tmp_path / "ff.log").read_text()
        assert "REJECT reported from HS processing: Application-defined rejection reason" in log, log
        publisher = SrtLiveTransmit(TestPattern(width=320, height=240, duration=5), port, "nope", tmp_path / "slt.log")
        try:
            await asyncio.to_thread(publisher.wait, 30)  # it gives up (exit status 0 all the same)
        finally:
            publisher.stop()
        assert "REJECT reported" in (tmp_path / "slt.log").read_text()
        # No session was started for anybody: the real ingress is untouched.
        assert (await ingress_state(client, info.ingress_id)).status == INACTIVE
    assert "refused at the handshake: ingress does not exist (SRT_REJX_NOTFOUND)" in peer.log()


async def test_a_disabled_key_is_refused_at_the_handshake(
    pyingress_factory: Callable[..., PyingressPeer], livekit_server: LivekitPeer, tmp_path: Path
) -> None:
    peer, port = _srt_peer(pyingress_factory)
    async with api.LiveKitAPI(peer.http_url, livekit_server.api_key, livekit_server.api_secret) as client:
        info = await create_rtmp_ingress(client, "e2e-srt-disabled", "disabled")
        await client.ingress.update_ingress(UpdateIngressRequest(ingress_id=info.ingress_id, enabled=False))
        encoder = start_ffmpeg_srt(
            TestPattern(width=320, height=240, duration=5), port, info.stream_key, tmp_path / "ff.log"
        )
        assert await asyncio.to_thread(encoder.wait, 30) != 0
        assert "REJECT reported" in (tmp_path / "ff.log").read_text()
        assert (await ingress_state(client, info.ingress_id)).status == INACTIVE
    assert "refused at the handshake: session is disabled (SRT_REJX_FORBIDDEN)" in peer.log()


async def test_a_server_passphrase_refuses_a_wrong_or_missing_one_at_the_handshake(
    pyingress_factory: Callable[..., PyingressPeer], livekit_server: LivekitPeer, tmp_path: Path
) -> None:
    secret = "pyingress-srt-secret"
    peer, port = _srt_peer(pyingress_factory, passphrase=secret)
    async with api.LiveKitAPI(peer.http_url, livekit_server.api_key, livekit_server.api_secret) as client:
        info = await create_rtmp_ingress(client, "e2e-srt-passphrase", "encrypted")
        streamid = access_streamid(info.stream_key)
        short = TestPattern(width=320, height=240, duration=5)
        # The key is right, so the listen callback lets them through; libsrt then checks the passphrase.
        for name, passphrase, words in (
            ("wrong", "not-the-secret", "Incorrect passphrase"),
            ("missing", "", "Password required or unexpected"),
        ):
            encoder = start_ffmpeg_srt(short, port, streamid, tmp_path / f"{name}.log", passphrase=passphrase)
            assert await asyncio.to_thread(encoder.wait, 30) != 0, name
            assert f"REJECT reported from HS processing: {words}" in (tmp_path / f"{name}.log").read_text()
        publisher = SrtLiveTransmit(short, port, streamid, tmp_path / "slt.log", passphrase="not-the-secret")
        await asyncio.to_thread(publisher.wait, 30)
        assert "REJECT reported from HS processing: Incorrect passphrase" in (tmp_path / "slt.log").read_text()
        # Refused before any session: nothing was ever started for the key.
        state = await ingress_state(client, info.ingress_id)
        assert state.status == INACTIVE and not state.resource_id

        encoder = start_ffmpeg_srt(
            TestPattern(width=640, height=360, duration=20), port, streamid, tmp_path / "right.log", passphrase=secret
        )
        try:
            token = livekit_server.token("viewer", "e2e-srt-passphrase", can_publish=False)
            async with RoomSubscriber(livekit_server.ws_url, token) as viewer:
                await viewer.wait_tracks("encrypted", timeout=30)
                await viewer.first_video_frame("encrypted")
                assert (await wait_status(client, info.ingress_id, PUBLISHING)).resource_id.startswith("RT_")
        finally:
            stop_encoder(encoder)


async def test_rtmp_and_srt_share_a_key_newest_wins_and_srt_reconnects_within_grace(
    pyingress_factory: Callable[..., PyingressPeer], livekit_server: LivekitPeer, tmp_path: Path
) -> None:
    peer, port = _srt_peer(pyingress_factory)
    small = TestPattern(width=640, height=360, fps=30, duration=40, gop=30)
    statuses: list[str] = []
    async with api.LiveKitAPI(peer.http_url, livekit_server.api_key, livekit_server.api_secret) as client:
        info = await create_rtmp_ingress(client, "e2e-srt-newest", "either")
        token = livekit_server.token("viewer", "e2e-srt-newest", can_publish=False)
        encoders: list[subprocess.Popen[bytes]] = []
        recorder = None
        try:
            async with RoomSubscriber(livekit_server.ws_url, token) as viewer:
                seen = viewer.record_participants()
                encoders.append(push(small, info, tmp_path / "rtmp.log"))
                await viewer.wait_tracks("either", timeout=30)
                sid = viewer.room.remote_participants["either"].sid
                await viewer.first_video_frame("either")
                resource_id = (await wait_status(client, info.ingress_id, PUBLISHING)).resource_id
                recorder = asyncio.create_task(record_statuses(client, info.ingress_id, statuses))

                # An SRT publisher on the same key takes over the running session; the RTMP encoder is hung up on.
                encoders.append(start_ffmpeg_srt(small, port, info.stream_key, tmp_path / "srt-1.log"))
                assert await asyncio.to_thread(encoders[0].wait, 15) != 0
                sizes = await viewer.video_sizes("either", frames=30, settle=1.0, timeout=30)
                assert sum(sizes.values()) == 30 and encoders[1].poll() is None

                # The SRT encoder crashes and comes back within the grace window: still the same session.
                encoders[1].send_signal(signal.SIGKILL)
                encoders[1].wait()
                await asyncio.sleep(1.5)
                encoders.append(start_ffmpeg_srt(small, port, access_streamid(info.stream_key), tmp_path / "srt-2.log"))
                sizes = await viewer.video_sizes("either", frames=30, settle=2.0, timeout=30)
                assert sum(sizes.values()) == 30
                assert seen == [("connected", "either", sid)]
                state = await ingress_state(client, info.ingress_id)
                assert (state.status, state.resource_id) == (PUBLISHING, resource_id)
                assert "ENDPOINT_INACTIVE" not in statuses
        finally:
            if recorder is not None:
                recorder.cancel()
                with contextlib.suppress(asyncio.CancelledError):
                    await recorder
            for encoder in encoders:
                stop_encoder(encoder)


async def test_no_capacity_for_a_new_session_is_refused_at_the_handshake(
    pyingress_factory: Callable[..., PyingressPeer], livekit_server: LivekitPeer, tmp_path: Path
) -> None:
    port = free_udp_port()
    # One RTMP session would reserve more CPUs than any machine lets sessions have.
    peer = pyingress_factory({"srt_port": port, "cpu_cost": {"rtmp_cpu_cost": 1000}})
    async with api.LiveKitAPI(peer.http_url, livekit_server.api_key, livekit_server.api_secret) as client:
        info = await create_rtmp_ingress(client, "e2e-srt-full", "full")
        encoder = start_ffmpeg_srt(
            TestPattern(width=320, height=240, duration=5), port, info.stream_key, tmp_path / "ff.log"
        )
        assert await asyncio.to_thread(encoder.wait, 30) != 0
        assert "REJECT reported" in (tmp_path / "ff.log").read_text()
        state = await ingress_state(client, info.ingress_id)
        assert state.status == INACTIVE and not state.resource_id  # refused before admission stored anything
    assert "refused at the handshake: server capacity exceeded (SRT_REJX_OVERLOAD)" in peer.log()
