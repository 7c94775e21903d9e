"""WHIP refusals, each with livekit/ingress's status and words, while a pass-through session beside them keeps
delivering frames to its viewer; and a publisher whose DTLS handshake never happens ends its session in ERROR."""

import asyncio
import contextlib
import time
from collections.abc import Callable
from pathlib import Path

import aiohttp
import pytest
from aiortc import RTCConfiguration, RTCPeerConnection
from livekit import api, rtc
from livekit.protocol.ingress import CreateIngressRequest, IngressInput, UpdateIngressRequest

from pyingress.webrtc.ice import LOOPBACK_ADDRESSES, gathering_from
from tests.e2e.room_session import ERROR, PUBLISHING, ingress_state, room_participants, wait_status
from tests.e2e.test_whip_passthrough import LOOPBACK, create_whip_ingress
from tests.harness.livekit_peer import LivekitPeer
from tests.harness.pyingress_peer import PyingressPeer
from tests.harness.subscriber import RoomSubscriber
from tests.harness.whip_publisher import WhipPublisher
from tests.ingest.whip.offers import SIMULCAST_OFFER, audio_section, offer, video_section


@pytest.fixture(scope="module")
def clips(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("whip-clips")


def _four_rids() -> str:
    return offer(audio_section(), video_section(rids=("a", "b", "c", "d")))


def _vp9_only() -> str:
    return offer([line.replace("96 97 102 103", "98") for line in video_section()])


async def _post(
    http: aiohttp.ClientSession, url: str, body: str | bytes, headers: dict[str, str] | None = None
) -> tuple[int, str]:
    async with http.post(url, data=body, headers={"Content-Type": "application/sdp", **(headers or {})}) as r:
        return r.status, await r.text()


async def _frames_in(viewer: RoomSubscriber, identity: str, seconds: float) -> int:
    """Decoded frames the viewer gets from ``identity`` in the next ``seconds``."""
    _, track = await viewer._subscribed_track(identity, rtc.TrackKind.KIND_VIDEO, 20)
    stream = rtc.VideoStream(track)
    count = 0
    deadline = time.monotonic() + seconds
    try:
        with contextlib.suppress(TimeoutError):
            async with asyncio.timeout(seconds):
                async for _ in stream:
                    count += 1
                    if time.monotonic() > deadline:
                        break
    finally:
        await stream.aclose()
    return count


async def test_bad_whip_inputs_are_refused_while_a_session_beside_them_keeps_its_frames(
    pyingress_factory: Callable[..., PyingressPeer], livekit_server: LivekitPeer, clips: Path
) -> None:
    peer = pyingress_factory(LOOPBACK)
    base = f"{peer.http_url}/w"
    async with api.LiveKitAPI(peer.http_url, livekit_server.api_key, livekit_server.api_secret) as client:
        running = await create_whip_ingress(client, "whip-beside", "beside")
        good = await create_whip_ingress(client, "whip-bad", "bad")
        disabled = await create_whip_ingress(client, "whip-off", "off")
        await client.ingress.update_ingress(UpdateIngressRequest(ingress_id=disabled.ingress_id, enabled=False))
        rtmp = await client.ingress.create_ingress(
            CreateIngressRequest(input_type=IngressInput.RTMP_INPUT, name="r", room_name="r", participant_identity="r")
        )
        publisher = WhipPublisher(f"{base}/{running.stream_key}", clips, video="h264", size=(640, 360))
        key = good.stream_key
        cases: list[tuple[str, str, str | bytes, dict[str, str], int, str]] = [
            ("not SDP", f"{base}/{key}", "hello", {}, 400, "invalid SDP offer: it does not start with v="),
            ("empty body", f"{base}/{key}", "", {}, 400, "invalid SDP offer: it does not start with v="),
            ("no media", f"{base}/{key}", "v=0\r\ns=-\r\n", {}, 400, "invalid SDP offer: no audio or video m-line"),
            (
                "two video m-lines",
                f"{base}/{key}",
                offer(video_section("0"), video_section("1")),
                {},
                406,
                "more than 1 track with given media kind",
            ),
            (
                "two audio m-lines",
                f"{base}/{key}",
                offer(audio_section("0"), audio_section("1")),
                {},
                406,
                "more than 1 track with given media kind",
            ),
            ("four rids", f"{base}/{key}", _four_rids(), {}, 406, "invalid simulcast configuration"),
            (
                "simulcast recv",
                f"{base}/{key}",
                SIMULCAST_OFFER.replace("simulcast:send", "simulcast:recv"),
                {},
                406,
                "invalid simulcast configuration",
            ),
            (
                "G722 only",
                f"{base}/{key}",
                offer([ln.replace("111 63 9 0 8", "9") for ln in audio_section()]),
                {},
                406,
                "unsupported format for the source media",
            ),
            (
                "no ICE credentials",
                f"{base}/{key}",
                offer([ln for ln in audio_section() if not ln.startswith("a=ice-")]),
                {},
                400,
                "invalid SDP offer: no a=ice-ufrag/a=ice-pwd",
            ),
            (
                "no fingerprint",
                f"{base}/{key}",
                offer([ln for ln in audio_section() if not ln.startswith("a=fingerprint")]),
                {},
                400,
                "invalid SDP offer: no a=fingerprint",
            ),
            ("unknown key", f"{base}/nosuchkey", SIMULCAST_OFFER, {}, 404, "ingress does not exist"),
            (
                "unknown key as bearer",
                base,
                SIMULCAST_OFFER,
                {"Authorization": "Bearer nosuchkey"},
                404,
                "ingress does not exist",
            ),
            ("no key at all", base, SIMULCAST_OFFER, {}, 400, "missing stream key"),
            ("disabled ingress", f"{base}/{disabled.stream_key}", SIMULCAST_OFFER, {}, 403, "session is disabled"),
            ("an RTMP ingress's key", f"{base}/{rtmp.stream_key}", SIMULCAST_OFFER, {}, 400, "invalid ingress type"),
            (
                "VP9 only for pass-through",
                f"{base}/{key}",
                _vp9_only(),
                {},
                406,
                "unsupported format for the source media",
            ),
            ("a 10 MB body", f"{base}/{key}", b"v=0\r\n" + b"a=x\r\n" * 2_000_000, {}, 413, ""),
        ]
        try:
            assert (await publisher.start()).status == 201
            token = livekit_server.token("viewer", "whip-beside", can_publish=False)
            async with RoomSubscriber(livekit_server.ws_url, token) as viewer:
                await viewer.wait_tracks("beside", timeout=30)
                await wait_status(client, running.ingress_id, PUBLISHING)
                before = await _frames_in(viewer, "beside", 2.0)
                barrage_started = time.monotonic()
                async with aiohttp.ClientSession() as http:
                    frames_during = asyncio.create_task(_frames_in(viewer, "beside", 6.0))
                    for name, url, body, headers, status, message in cases:
                        got = await _post(http, url, body, headers)
                        assert got[0] == status, (name, got)
                        assert message in got[1], (name, got)
                    resource = f"{base}/{key}/WH_nosuchresource"
                    async with http.delete(resource) as r:
                        assert (r.status, await r.text()) == (404, "ingress not found")
                    async with http.patch(resource, data="a=ice-ufrag:x\r\na=ice-pwd:y\r\n") as r:
                        assert (r.status, await r.text()) == (404, "ingress not found")
                    running_resource = f"{peer.http_url}{publisher.location}"
                    async with http.patch(running_resource, data="a=ice-ufrag:x\r\n") as r:
                        assert (r.status, await r.text()) == (422, "Trickle-ICE not supported")
                    async with http.patch(running_resource, data="nothing", headers={"If-Match": "*"}) as r:
                        assert (r.status, await r.text()) == (400, "whip restart request was invalid")
                    async with http.get(f"{base}/{key}") as r:
                        assert r.status == 405
                    async with http.options(f"{base}/{key}") as r:
                        assert r.status == 204 and r.headers["Accept-Post"] == "application/sdp"
                    during = await frames_during
                elapsed = time.monotonic() - barrage_started
                assert before >= 20 and during >= 60, (before, during, elapsed)
            state = await ingress_state(client, running.ingress_id)
            assert state.status == PUBLISHING and not state.error
            assert (await ingress_state(client, disabled.ingress_id)).status != PUBLISHING
        finally:
            await publisher.stop()


async def test_a_publisher_that_never_completes_dtls_ends_in_error(
    pyingress_factory: Callable[..., PyingressPeer], livekit_server: LivekitPeer
) -> None:
    """A real offer, a 201, then silence: no ICE check, no DTLS handshake.  livekit/ingress's 10 s deadline for the
    tracks ends the session ERROR ``source encoder not ready``."""
    peer = pyingress_factory(LOOPBACK)
    async with api.LiveKitAPI(peer.http_url, livekit_server.api_key, livekit_server.api_secret) as client:
        info = await create_whip_ingress(client, "whip-silent", "silent")
        pc = RTCPeerConnection(RTCConfiguration(iceServers=[]))
        pc.addTransceiver("video", direction="sendonly")
        pc.addTransceiver("audio", direction="sendonly")
        with gathering_from(LOOPBACK_ADDRESSES):
            await pc.setLocalDescription(await pc.createOffer())
        await pc.close()  # its sockets are gone: nothing will ever answer pyingress's checks
        async with aiohttp.ClientSession() as http:
            status, _ = await _post(http, f"{info.url}/{info.stream_key}", pc.localDescription.sdp)
        assert status == 201
        started = time.monotonic()
        while not await room_participants(livekit_server, info.room_name):  # joined early, to publish sooner
            assert time.monotonic() - started < 5, "the session did not join the room"
            await asyncio.sleep(0.1)
        state = await wait_status(client, info.ingress_id, ERROR, timeout=20)
        assert state.error == "source encoder not ready"
        assert 9 <= time.monotonic() - started <= 15
        # Having published nothing, it has left again.
        deadline = time.monotonic() + 5
        while await room_participants(livekit_server, info.room_name):
            assert time.monotonic() < deadline, "the ingress participant stayed in the room"
            await asyncio.sleep(0.2)
