"""WHIP under packet loss: aiortc publishing through a UDP relay of ours that drops 5 % of the media packets (the
relay's address replaces pyingress's candidate in the answer).  Transcoded and pass-through sessions keep
publishing with no session error; pyingress NACKs the gaps (and asks for a keyframe when a gap stays open), as
the relay counts."""

import asyncio
import re
import urllib.request
from collections.abc import Callable
from pathlib import Path

import pytest
from aiortc import RTCSessionDescription
from livekit import api

from tests.e2e.room_session import PUBLISHING, ingress_state, wait_status
from tests.e2e.test_whip_passthrough import LOOPBACK, create_whip_ingress
from tests.harness.livekit_peer import LivekitPeer
from tests.harness.ports import free_port
from tests.harness.pyingress_peer import PyingressPeer
from tests.harness.subscriber import RoomSubscriber
from tests.harness.udp_relay import LossyRelay, answer_candidates, rewrite_candidates
from tests.harness.whip_publisher import WhipPublisher

LOSS = 0.05


@pytest.fixture(scope="module")
def clips(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("whip-clips")


@pytest.fixture(scope="module")
def whip_peer(pyingress_factory: Callable[..., PyingressPeer]) -> PyingressPeer:
    return pyingress_factory({**LOOPBACK, "prometheus_port": free_port()})


def whip_rtp_total(peer: PyingressPeer, event: str) -> float:
    """pyingress's own count of one WHIP receive event, from its /metrics."""
    url = f"http://127.0.0.1:{peer.config['prometheus_port']}/metrics"
    with urllib.request.urlopen(url, timeout=5) as response:
        text = response.read().decode()
    found = re.search(rf'^pyingress_whip_rtp_total{{event="{event}"}} (\S+)$', text, re.MULTILINE)
    return float(found.group(1)) if found else 0.0


def without_candidates(offer: str) -> str:
    """The publisher is known to pyingress only by its checks through the relay (no direct path)."""
    return re.sub(r"a=candidate:[^\r\n]*\r\n", "", offer)


@pytest.mark.parametrize("transcoded", [False, True], ids=["passthrough", "transcoded"])
async def test_whip_keeps_publishing_through_five_percent_loss(
    transcoded: bool, whip_peer: PyingressPeer, livekit_server: LivekitPeer, clips: Path
) -> None:
    room = identity = f"whip-loss-{'transcoded' if transcoded else 'passthrough'}"
    async with api.LiveKitAPI(whip_peer.http_url, livekit_server.api_key, livekit_server.api_secret) as client:
        info = await create_whip_ingress(client, room, identity, enable_transcoding=transcoded)
        publisher = WhipPublisher(f"{info.url}/{info.stream_key}", clips, video="h264", size=(640, 360))
        relays: list[LossyRelay] = []

        async def start() -> None:
            offer = await publisher.offer()
            response = await publisher.post(without_candidates(offer))
            assert response.status == 201, response
            target = next(c for c in answer_candidates(response.body) if c[0] == "127.0.0.1")
            relays.append(await LossyRelay(target, LOSS).start())
            publisher.location = response.headers["Location"]
            assert publisher.pc is not None
            answer = rewrite_candidates(response.body, relays[0].address)
            await publisher.pc.setRemoteDescription(RTCSessionDescription(sdp=answer, type="answer"))

        try:
            await start()
            relay = relays[0]
            token = livekit_server.token("viewer", room, can_publish=False)
            async with RoomSubscriber(livekit_server.ws_url, token) as viewer:
                await viewer.wait_tracks(identity, timeout=30)
                await wait_status(client, info.ingress_id, PUBLISHING)
                # 8 s under loss: the viewer keeps getting pictures, the session stays up.
                sizes = await viewer.video_sizes(identity, frames=90, settle=2.0, timeout=40)
                assert sum(sizes.values()) == 90 and set(sizes) <= {(640, 360), (1280, 720), (320, 180)}, sizes
                await asyncio.sleep(1)
                state = await ingress_state(client, info.ingress_id)
                assert state.status == PUBLISHING and not state.error
            assert relay.counters.dropped > 20, relay.counters
            assert relay.counters.feedback["nack"] > 0, relay.counters
            # Keyframe requests are counted too; aiortc resends what is NACKed, so most gaps close without one.
            print(f"relay: {relay.counters}")
            await asyncio.sleep(1.2)  # pyingress adds each publisher's counts to /metrics once a second
            assert whip_rtp_total(whip_peer, "nacked") > 0 and whip_rtp_total(whip_peer, "recovered") > 0
            assert whip_rtp_total(whip_peer, "packets") > 1000
        finally:
            await publisher.stop()
            for r in relays:
                r.close()
