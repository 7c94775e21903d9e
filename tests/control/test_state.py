"""What sessions see of the control plane: admission by stream key, state reports with webhooks, being stopped."""

import asyncio
from pathlib import Path

import pytest
from livekit.protocol.ingress import IngressInfo, IngressInput, IngressState

from pyingress.control.admission import admit_session
from pyingress.control.errors import SERVER_CAPACITY_EXCEEDED, IngressError
from pyingress.control.ids import new_resource_id
from pyingress.control.state import SessionRegistry, StandaloneControl
from pyingress.control.store import IngressStore
from pyingress.control.webhooks import DeliveryPolicy, WebhookNotifier
from pyingress.session.state import SessionState
from tests.control.records import stored_ingress
from tests.control.webhook_receiver import WebhookSink
from tests.harness.ports import free_port

S = IngressState.Status


@pytest.fixture
def store(tmp_path: Path) -> IngressStore:
    return IngressStore(tmp_path / "s.sqlite3")


async def _admit(control: StandaloneControl, info: IngressInfo, input_type: int = IngressInput.RTMP_INPUT) -> str:
    try:
        admitted = await admit_session(
            control, stream_key=info.stream_key, input_type=input_type, resource_id=new_resource_id(input_type)
        )
    except IngressError as exc:
        return exc.message
    return IngressState.Status.Name(admitted.state.status)


async def test_admission_by_stream_key(store: IngressStore) -> None:
    control = StandaloneControl(store)
    ok = stored_ingress(store)
    assert await _admit(control, ok) == "ENDPOINT_BUFFERING"
    state = store.load(ok.ingress_id).state
    assert state.status == S.ENDPOINT_BUFFERING and state.resource_id.startswith("RT_") and state.started_at > 0

    unknown = IngressInfo(stream_key="nosuchkey123")
    assert await _admit(control, unknown) == "ingress does not exist"

    disabled = stored_ingress(store, enabled=False)
    assert await _admit(control, disabled) == "session is disabled"
    assert store.load(disabled.ingress_id).state.status == S.ENDPOINT_ERROR  # refusals after the lookup are stored

    whip = stored_ingress(store, input_type=IngressInput.WHIP_INPUT)
    assert await _admit(control, whip, IngressInput.RTMP_INPUT) == "invalid ingress type"
    assert store.load(whip.ingress_id).state.error == "invalid ingress type"

    no_room = stored_ingress(store, room_name="")
    assert await _admit(control, no_room) == "invalid ingress: no room name"

    full = stored_ingress(store)

    def refuse(info: IngressInfo) -> None:
        raise SERVER_CAPACITY_EXCEEDED

    with pytest.raises(IngressError, match="server capacity exceeded"):
        await admit_session(control, stream_key=full.stream_key, input_type=0, resource_id="RT_x", accept=refuse)
    assert store.load(full.ingress_id).state.ended_at > 0


async def test_admission_shares_the_sessions_started_at(store: IngressStore) -> None:
    """A session that made its state first (SessionState) passes it in: its later reports are not 'older'."""
    control = StandaloneControl(store)
    info = stored_ingress(store)
    session = SessionState(info, "RT_shared000001", control)
    admitted = await admit_session(
        control, stream_key=info.stream_key, input_type=IngressInput.RTMP_INPUT, state=session.snapshot()
    )
    assert admitted.state.started_at == session.state.started_at
    assert admitted.state.resource_id == "RT_shared000001"
    await session.publishing(room_id="RM_x")
    assert store.load(info.ingress_id).state.status == S.ENDPOINT_PUBLISHING


async def test_state_reports_send_webhooks_on_status_changes(store: IngressStore) -> None:
    sink = await WebhookSink(free_port()).start()
    notifier = WebhookNotifier([sink.url], "devkey", "secret", DeliveryPolicy(retry_wait_min_s=0.1))
    control = StandaloneControl(store, notifier)
    info = stored_ingress(store)
    try:
        started = 1_000
        for status, updated in ((S.ENDPOINT_BUFFERING, 1), (S.ENDPOINT_PUBLISHING, 2), (S.ENDPOINT_PUBLISHING, 3)):
            await control.update_state(
                info.ingress_id, IngressState(status=status, started_at=started, updated_at=updated)
            )
        await control.update_state(
            info.ingress_id, IngressState(status=S.ENDPOINT_INACTIVE, started_at=1_000, updated_at=9)
        )
        received = await sink.wait_for(2, timeout=5)
        await asyncio.sleep(0.2)
        # BUFFERING and a same-status update are silent; PUBLISHING starts, INACTIVE ends.
        assert [r.event.event for r in sink.received] == ["ingress_started", "ingress_ended"]
        assert received[0].event.ingress_info.state.status == S.ENDPOINT_PUBLISHING
        assert received[1].event.ingress_info.ingress_id == info.ingress_id
        with pytest.raises(IngressError, match="older version"):
            await control.update_state(info.ingress_id, IngressState(status=S.ENDPOINT_ERROR, started_at=999))
        assert (await control.get_ingress_info(ingress_id=info.ingress_id)).state.status == S.ENDPOINT_INACTIVE
    finally:
        await notifier.close()
        await sink.stop()


async def test_registry_stops_the_sessions_of_an_ingress() -> None:
    registry = SessionRegistry()
    stopped: list[str] = []

    def stopper(name: str) -> object:
        async def stop() -> None:
            stopped.append(name)

        return stop

    unregister_a = registry.register("IN_a", stopper("a1"))  # type: ignore[arg-type]
    registry.register("IN_a", stopper("a2"))  # type: ignore[arg-type]
    registry.register("IN_b", stopper("b"))  # type: ignore[arg-type]
    assert registry.is_active("IN_a") and sorted(registry.active_ids()) == ["IN_a", "IN_b"]
    assert await registry.stop("IN_a") == 2 and stopped == ["a1", "a2"]
    unregister_a()
    assert registry.is_active("IN_a")  # a2 is still registered until its session ends

    async def stuck() -> None:
        await asyncio.sleep(10)

    registry.register("IN_c", stuck)
    assert await registry.stop("IN_c", timeout_s=0.1) == 1  # gives up, does not hang the API
    assert await registry.stop("IN_none") == 0
