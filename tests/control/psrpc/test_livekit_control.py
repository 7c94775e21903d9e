"""LivekitControl's own rules, over a real Redis with an IOInfo server of ours standing where livekit-server would
(the end-to-end files run the real one): refusals keep livekit-server's code and words, a bus that is away refuses
lookups in words and queues states, of the states queued meanwhile only the newest per ingress is delivered, and a
request whose caller gave up still runs to its answer before the ingress's end and before ``settled`` returns.
The stand-in answers each request in a task of its own, as livekit-server does: nothing orders them but us."""

import asyncio
import contextlib
from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from typing import Any

import pytest
from livekit.protocol.ingress import IngressInfo, IngressState

from pyingress.config import RedisConfig
from pyingress.control.errors import IngressError
from pyingress.control.livekit import LivekitControl
from pyingress.control.psrpc import messages
from pyingress.control.psrpc.errors import PsrpcError
from pyingress.control.psrpc.methods import CREATE_INGRESS, GET_INGRESS_INFO, UPDATE_INGRESS_STATE
from pyingress.control.psrpc.redis_bus import RedisBus
from pyingress.control.psrpc.rpc import RpcClient, RpcServer
from tests.harness.redis_peer import RedisPeer

BUF, PUB, INA = IngressState.ENDPOINT_BUFFERING, IngressState.ENDPOINT_PUBLISHING, IngressState.ENDPOINT_INACTIVE


@pytest.fixture
def redis_peer(tmp_path: Path) -> Iterator[RedisPeer]:
    peer = RedisPeer(tmp_path).start()
    yield peer
    peer.stop()


class IOInfoStandIn:
    """Records UpdateIngressState; knows one stream key; CreateIngress answers ``create_code`` when set."""

    def __init__(self, bus: RedisBus) -> None:
        self.states: list[tuple[str, Any]] = []  # in the order their handling ended
        self.create_code = ""
        self.update_delay = 0.0
        self.server = RpcServer(bus, "IOInfo")
        self.server.register(GET_INGRESS_INFO, messages.GetIngressInfoRequest, self.get)
        self.server.register(UPDATE_INGRESS_STATE, messages.UpdateIngressStateRequest, self.update)
        self.server.register(CREATE_INGRESS, IngressInfo, self.create)

    async def get(self, request: Any) -> Any:
        if request.stream_key != "known":
            raise PsrpcError("not_found", "ingress does not exist")
        return messages.GetIngressInfoResponse(info=IngressInfo(ingress_id="IN_known", stream_key="known"))

    async def update(self, request: Any) -> Any:
        await asyncio.sleep(self.update_delay)
        self.states.append((request.ingress_id, request.state))
        return messages.Empty()

    async def create(self, request: Any) -> Any:
        if self.create_code:
            raise PsrpcError(self.create_code, "refused")
        return messages.Empty()


@pytest.fixture
async def setup(redis_peer: RedisPeer) -> AsyncIterator[tuple[LivekitControl, IOInfoStandIn, RedisPeer]]:
    worker_bus = RedisBus.from_config(RedisConfig(address=redis_peer.address))
    server_bus = RedisBus.from_config(RedisConfig(address=redis_peer.address))
    for bus in (worker_bus, server_bus):
        await bus.start()
    control = LivekitControl(RpcClient(worker_bus, "IOInfo"), timeout_s=1.0)
    control.io.start()
    control.start()
    worker_bus.on_connected = control.bus_is_back
    stand_in = IOInfoStandIn(server_bus)
    for bus in (worker_bus, server_bus):
        await bus.wait_connected(5)
        await bus.settled()
    yield control, stand_in, redis_peer
    await control.close(flush_timeout_s=0.1)
    await stand_in.server.close()
    for bus in (worker_bus, server_bus):
        await bus.close()


def _state(status: int, updated_at: int) -> IngressState:
    return IngressState(status=status, started_at=1000, updated_at=updated_at, resource_id="RT_x")


async def test_lookups_and_refusals_keep_livekit_servers_words(setup: Any) -> None:
    control, stand_in, _ = setup
    info = await control.get_ingress_info(stream_key="known")
    assert info.ingress_id == "IN_known" and info.HasField("state")
    with pytest.raises(IngressError) as refused:
        await control.get_ingress_info(stream_key="unknown")
    assert (refused.value.code, refused.value.message) == ("not_found", "ingress does not exist")
    await control.update_state("IN_known", _state(BUF, 1))
    assert [(i, s.status) for i, s in stand_in.states] == [("IN_known", BUF)]
    await control.create_ingress(IngressInfo(ingress_id="IN_url"))
    stand_in.create_code = "unavailable"  # livekit/ingress carries on after this one
    await control.create_ingress(IngressInfo(ingress_id="IN_url"))
    stand_in.create_code = "already_exists"
    with pytest.raises(IngressError) as exists:
        await control.create_ingress(IngressInfo(ingress_id="IN_url"))
    assert exists.value.code == "already_exists"


async def test_states_wait_for_the_bus_and_only_the_newest_is_delivered(setup: Any) -> None:
    control, stand_in, redis_peer = setup
    await asyncio.to_thread(redis_peer.stop)
    async with asyncio.timeout(5):
        while control.io.bus.connected:
            await asyncio.sleep(0.02)
    with pytest.raises(IngressError) as away:
        await control.get_ingress_info(stream_key="known")
    assert away.value.code == "unavailable"
    assert away.value.message.startswith("livekit-server cannot be reached over redis")

    async with asyncio.timeout(1):  # queued at once, not after a timeout
        for status, updated_at in ((BUF, 10), (PUB, 20), (INA, 30)):
            await control.update_state("IN_known", _state(status, updated_at))
        await control.update_state("IN_other", _state(PUB, 15))
        await control.update_state("IN_other", _state(BUF, 5))  # older than what is queued: dropped
    assert {i: s.status for i, s in control.queued().items()} == {"IN_known": INA, "IN_other": PUB}

    await asyncio.to_thread(redis_peer.start)
    async with asyncio.timeout(10):
        while control.queued():
            await asyncio.sleep(0.05)
    delivered = sorted((i, s.status, s.updated_at) for i, s in stand_in.states)
    assert delivered == [("IN_known", INA, 30), ("IN_other", PUB, 15)]
    assert control.delivered_late == 2


async def test_a_request_its_caller_gave_up_on_is_answered_before_the_end_and_before_settled(setup: Any) -> None:
    control, stand_in, _ = setup
    stand_in.update_delay = 0.4

    async def given_up(updated_at: int) -> None:
        caller = asyncio.create_task(control.update_state("IN_known", _state(PUB, updated_at)))
        await asyncio.sleep(0.1)  # on the bus, livekit-server handling it
        caller.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await caller

    # A session torn down mid-request (its event loop task cancelled), then its end: the end is handled last.
    await given_up(10)
    stand_in.update_delay = 0.0
    await control.update_state("IN_known", _state(INA, 20))
    assert [(s.status, s.updated_at) for _, s in stand_in.states] == [(PUB, 10), (INA, 20)]

    # What DeleteIngress's answer waits for: every request sent so far has been handled.
    stand_in.update_delay = 0.4
    await given_up(30)
    async with asyncio.timeout(2):
        await control.settled("IN_known")
    assert stand_in.states[-1][1].updated_at == 30
    await control.settled("IN_nothing_sent")  # nothing under way: at once
