"""Choosing ICE host addresses per peer connection: loopback for a loopback room server, aioice's default otherwise."""

import aioice.ice
from aiortc import RTCConfiguration, RTCPeerConnection

from pyingress.webrtc.ice import LOOPBACK_ADDRESSES, gathering_from, is_loopback_url


async def _host_candidates(pc: RTCPeerConnection) -> set[str]:
    pc.addTransceiver("audio", direction="sendonly")
    await pc.setLocalDescription(await pc.createOffer())
    return {
        line.split()[4]
        for line in pc.localDescription.sdp.splitlines()
        if line.startswith("a=candidate:") and " typ host" in line
    }


async def test_loopback_gathering_offers_only_127_0_0_1() -> None:
    pc = RTCPeerConnection(RTCConfiguration(iceServers=[]))
    try:
        with gathering_from(LOOPBACK_ADDRESSES):
            assert await _host_candidates(pc) == {"127.0.0.1"}
    finally:
        await pc.close()


async def test_other_peer_connections_keep_aioices_default() -> None:
    with gathering_from(LOOPBACK_ADDRESSES):
        pass  # the patch point is installed now
    pc = RTCPeerConnection(RTCConfiguration(iceServers=[]))
    try:
        assert "127.0.0.1" not in await _host_candidates(pc)
    finally:
        await pc.close()
    assert "127.0.0.1" not in aioice.ice.get_host_addresses(True, False)


async def test_none_means_default() -> None:
    with gathering_from(None):
        assert "127.0.0.1" not in aioice.ice.get_host_addresses(True, False)


def test_loopback_urls() -> None:
    assert is_loopback_url("ws://127.0.0.1:7880")
    assert is_loopback_url("wss://localhost/")
    assert is_loopback_url("http://[::1]:7880")
    assert is_loopback_url("ws://127.8.9.1")
    assert not is_loopback_url("wss://example.livekit.cloud")
    assert not is_loopback_url("ws://192.0.2.2:7880")
