"""Restarting `pyingress serve` keeps every ingress, its stream key and its state."""

import uuid
from collections.abc import Callable

from livekit import api
from livekit.protocol.ingress import (
    CreateIngressRequest,
    IngressInput,
    ListIngressRequest,
    UpdateIngressRequest,
)

from tests.harness.pyingress_peer import PyingressPeer


async def _list(peer: PyingressPeer) -> list[tuple[str, str, str, str, bool]]:
    lkapi = api.LiveKitAPI(peer.http_url, "devkey", "secret")
    try:
        listed = await lkapi.ingress.list_ingress(ListIngressRequest())
    finally:
        await lkapi.aclose()
    return [(i.ingress_id, i.stream_key, i.name, i.room_name, i.enabled) for i in listed.items]


async def test_restart_keeps_ingresses_and_stream_keys(pyingress_factory: Callable[..., PyingressPeer]) -> None:
    peer = pyingress_factory()
    room = "restart-" + uuid.uuid4().hex[:8]
    lkapi = api.LiveKitAPI(peer.http_url, "devkey", "secret")
    try:
        for n, input_type in enumerate((IngressInput.RTMP_INPUT, IngressInput.WHIP_INPUT, IngressInput.URL_INPUT)):
            await lkapi.ingress.create_ingress(
                CreateIngressRequest(
                    input_type=input_type,
                    name=f"ingress-{n}",
                    room_name=room,
                    participant_identity=f"p{n}",
                    url="https://example.com/a.mp4" if input_type == IngressInput.URL_INPUT else "",
                )
            )
        first = (await lkapi.ingress.list_ingress(ListIngressRequest())).items[0]
        await lkapi.ingress.update_ingress(UpdateIngressRequest(ingress_id=first.ingress_id, enabled=False))
    finally:
        await lkapi.aclose()
    before = await _list(peer)
    assert len(before) == 3 and before[0][4] is False

    peer.restart()
    assert await _list(peer) == before

    # And after a hard kill, too: committed writes are in the WAL.
    assert peer.process is not None
    peer.process.kill()
    peer.process.wait()
    peer.start()
    assert await _list(peer) == before
