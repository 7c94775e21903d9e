"""The asyncio shell over a real Debian redis-server: calls, affinity, queue locks, multi, topics that come and go,
and Redis restarted under a running bus (it reconnects and subscribes everything again)."""

import asyncio
import time
from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from typing import Any

import pytest
from livekit.protocol.ingress import IngressInfo, IngressState, UpdateIngressRequest

from pyingress.config import RedisConfig
from pyingress.control.psrpc import messages
from pyingress.control.psrpc.errors import PsrpcError
from pyingress.control.psrpc.methods import (
    GET_INGRESS_INFO,
    LIST_ACTIVE_INGRESS,
    START_INGRESS,
    UPDATE_INGRESS,
)
from pyingress.control.psrpc.redis_bus import BusUnavailable, RedisBus
from pyingress.control.psrpc.rpc import RpcClient, RpcServer
from tests.harness.redis_peer import RedisPeer


@pytest.fixture
def redis_peer(tmp_path: Path) -> Iterator[RedisPeer]:
    peer = RedisPeer(tmp_path).start()
    yield peer
    peer.stop()


async def _bus(peer: RedisPeer) -> RedisBus:
    bus = RedisBus.from_config(RedisConfig(address=peer.address))
    await bus.start()
    await bus.wait_connected(5)
    return bus


@pytest.fixture
async def buses(redis_peer: RedisPeer) -> AsyncIterator[list[RedisBus]]:
    made = [await _bus(redis_peer) for _ in range(3)]
    yield made
    for bus in made:
        await bus.close()


async def _settle(*buses: RedisBus) -> None:
    for bus in buses:
        await bus.settled()


async def test_a_call_reaches_a_server_on_another_connection_and_comes_back(buses: list[RedisBus]) -> None:
    client_bus, server_bus, _ = buses
    server = RpcServer(server_bus, "IOInfo")

    async def get_info(request: Any) -> Any:
        return messages.GetIngressInfoResponse(info=IngressInfo(ingress_id="IN_a", stream_key=request.stream_key))

    server.register(GET_INGRESS_INFO, messages.GetIngressInfoRequest, get_info)
    client = RpcClient(client_bus, "IOInfo")
    client.start()
    await _settle(client_bus, server_bus)
    started = time.perf_counter()
    answer = await client.call(
        GET_INGRESS_INFO, messages.GetIngressInfoRequest(stream_key="key1"), messages.GetIngressInfoResponse
    )
    assert answer.info.stream_key == "key1" and answer.info.ingress_id == "IN_a"
    assert time.perf_counter() - started < 0.5
    await server.close()
    client.close()


async def test_errors_come_back_with_their_code(buses: list[RedisBus]) -> None:
    client_bus, server_bus, _ = buses
    server = RpcServer(server_bus, "IOInfo")

    async def refuse(request: Any) -> Any:
        raise PsrpcError("not_found", "ingress does not exist")

    server.register(GET_INGRESS_INFO, messages.GetIngressInfoRequest, refuse)
    client = RpcClient(client_bus, "IOInfo")
    client.start()
    await _settle(client_bus, server_bus)
    with pytest.raises(PsrpcError) as refused:
        await client.call(GET_INGRESS_INFO, messages.GetIngressInfoRequest(stream_key="x"), messages.Empty)
    assert (refused.value.code, refused.value.message) == ("not_found", "ingress does not exist")
    await server.close()
    client.close()


async def test_the_server_with_the_highest_affinity_takes_the_request(buses: list[RedisBus]) -> None:
    client_bus, *server_buses = buses
    handled: list[str] = []
    servers = []
    for name, affinity in zip(("low", "high"), (0.3, 1.7), strict=True):
        server = RpcServer(server_buses[len(servers)], "IngressInternal")

        async def start(request: Any, name: str = name) -> Any:
            handled.append(name)
            return request.info

        server.register(START_INGRESS, messages.StartIngressRequest, start, affinity=lambda _, a=affinity: a)
        servers.append(server)
    client = RpcClient(client_bus, "IngressInternal")
    client.start()
    await _settle(*buses)
    request = messages.StartIngressRequest(info=IngressInfo(ingress_id="IN_u", url="http://x/y.mp4"))
    info = await client.call(START_INGRESS, request, IngressInfo)
    assert info.ingress_id == "IN_u" and handled == ["high"]
    # Nobody willing: psrpc's "no response from servers" after its 1 s selection window.
    for server in servers:
        server.register(START_INGRESS, messages.StartIngressRequest, start, affinity=lambda _: -1.0)
    started = time.perf_counter()
    with pytest.raises(PsrpcError, match="no response from servers"):
        await client.call(START_INGRESS, request, IngressInfo)
    assert 0.9 < time.perf_counter() - started < 1.6
    for server in servers:
        await server.close()
    client.close()


async def test_a_queue_method_is_handled_once_however_many_servers_listen(buses: list[RedisBus]) -> None:
    client_bus, *server_buses = buses
    handled: list[str] = []
    servers = []
    for bus in server_buses:
        server = RpcServer(bus, "IngressHandler")

        async def update(request: Any, me: str = server.server_id) -> Any:
            handled.append(me)
            return IngressState(status=IngressState.ENDPOINT_INACTIVE)

        server.register(UPDATE_INGRESS, UpdateIngressRequest, update, topic=["IN_q"])
        servers.append(server)
    client = RpcClient(client_bus, "IngressHandler")
    client.start()
    await _settle(*buses)
    for _ in range(5):
        state = await client.call(UPDATE_INGRESS, UpdateIngressRequest(ingress_id="IN_q"), IngressState, topic=["IN_q"])
        assert state.status == IngressState.ENDPOINT_INACTIVE
    assert len(handled) == 5
    # A topic that is gone is nobody's: unavailable.
    for server in servers:
        server.deregister(UPDATE_INGRESS, ["IN_q"])
    await _settle(*buses)
    with pytest.raises(PsrpcError) as gone:
        await client.call(UPDATE_INGRESS, UpdateIngressRequest(ingress_id="IN_q"), IngressState, topic=["IN_q"])
    assert gone.value.code == "unavailable"
    for server in servers:
        await server.close()
    client.close()


async def test_multi_gathers_every_servers_answer(buses: list[RedisBus]) -> None:
    client_bus, *server_buses = buses
    servers = []
    for index, bus in enumerate(server_buses):
        server = RpcServer(bus, "IngressInternal")

        async def list_active(request: Any, index: int = index) -> Any:
            return messages.ListActiveIngressResponse(ingress_ids=[f"IN_{index}"])

        server.register(LIST_ACTIVE_INGRESS, messages.ListActiveIngressRequest, list_active, topic=[""])
        servers.append(server)
    client = RpcClient(client_bus, "IngressInternal")
    client.start()
    await _settle(*buses)
    answers = await client.call_multi(
        LIST_ACTIVE_INGRESS,
        messages.ListActiveIngressRequest(),
        messages.ListActiveIngressResponse,
        topic=[""],
        timeout_s=0.5,
    )
    assert sorted(a.result.ingress_ids[0] for a in answers if a.result is not None) == ["IN_0", "IN_1"]
    for server in servers:
        await server.close()
    client.close()


async def test_redis_restarted_under_a_running_bus(redis_peer: RedisPeer) -> None:
    client_bus, server_bus = await _bus(redis_peer), await _bus(redis_peer)
    server = RpcServer(server_bus, "IOInfo")

    async def get_info(request: Any) -> Any:
        return messages.GetIngressInfoResponse(info=IngressInfo(stream_key=request.stream_key))

    server.register(GET_INGRESS_INFO, messages.GetIngressInfoRequest, get_info)
    client = RpcClient(client_bus, "IOInfo")
    client.start()
    await _settle(client_bus, server_bus)
    request = messages.GetIngressInfoRequest(stream_key="k")
    await client.call(GET_INGRESS_INFO, request, messages.GetIngressInfoResponse)

    await asyncio.to_thread(redis_peer.stop)
    deadline = time.monotonic() + 5
    while client_bus.connected and time.monotonic() < deadline:
        await asyncio.sleep(0.02)
    assert not client_bus.connected
    started = time.perf_counter()
    with pytest.raises(BusUnavailable):
        await client.call(GET_INGRESS_INFO, request, messages.GetIngressInfoResponse)
    assert time.perf_counter() - started < 0.5  # refused at once, not after a timeout

    await asyncio.to_thread(redis_peer.start)
    await client_bus.wait_connected(10)
    await server_bus.wait_connected(10)
    await _settle(client_bus, server_bus)
    answer = await client.call(GET_INGRESS_INFO, request, messages.GetIngressInfoResponse)
    assert answer.info.stream_key == "k"
    assert client_bus.reconnects >= 2 and server_bus.reconnects >= 2
    await server.close()
    client.close()
    await client_bus.close()
    await server_bus.close()
