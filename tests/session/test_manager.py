"""SessionManager against the real standalone control (SQLite in a temporary folder): admission under
concurrency, joining a running session, pull sessions.  The sessions run for real (a media pipeline on a thread);
no publisher sends media, so none of them reaches a room — the room URL is never dialled."""

import asyncio
import functools
from collections.abc import AsyncIterator, Callable
from pathlib import Path

import pytest
import yaml
from livekit.protocol.ingress import IngressInfo, IngressInput, IngressState

from pyingress.config import CpuCostConfig, parse_config
from pyingress.control.admission import Admission, CpuAdmission
from pyingress.control.errors import IngressError
from pyingress.control.state import SessionRegistry, StandaloneControl
from pyingress.control.store import IngressStore
from pyingress.ingest.source import MediaSource
from pyingress.media.pipeline import open_pipeline
from pyingress.session.manager import SessionManager
from tests.control.records import stored_ingress

S = IngressState.Status


class _Room:
    ws_url = "ws://127.0.0.1:9"  # never dialled: no session here gets media to publish


class _TestPullDoor:
    """A pull door that opens an empty source: these tests are about starting, not about fetching."""

    def __init__(self) -> None:
        self.opened: list[tuple[str, str]] = []

    def open(self, info: IngressInfo, resource_id: str) -> MediaSource:
        self.opened.append((info.url, resource_id))
        return MediaSource(protocol="url", stream_key="", resource_id=resource_id)


@pytest.fixture
async def store(tmp_path: Path) -> AsyncIterator[IngressStore]:
    store = IngressStore(tmp_path / "ingress.sqlite3")
    yield store
    store.close()


def _manager(store: IngressStore, *, cpus: float, pull: _TestPullDoor | None = None) -> SessionManager:
    config = parse_config(yaml.safe_dump({"api_key": "devkey", "api_secret": "secret"}), env={})
    control = StandaloneControl(store)
    # One core, rtmp/url sessions cost 0.8 and 0.3 idle is kept (capacity 0.85): exactly one session fits.
    capacity = CpuAdmission(CpuCostConfig(), cpus=cpus)
    return SessionManager(
        config,
        control,
        SessionRegistry(),
        Admission(control, capacity),
        _Room(),
        pull_doors={"http": pull} if pull else None,
        pipeline_factory=functools.partial(open_pipeline, isolation="thread"),
    )


async def _outcome(manager: SessionManager, info: IngressInfo) -> str:
    try:
        return await manager.admit_push(info.stream_key, IngressInput.RTMP_INPUT)
    except IngressError as exc:
        return exc.message


async def test_two_publishers_at_capacity_start_exactly_one_session(store: IngressStore) -> None:
    manager = _manager(store, cpus=1.0)
    await manager.start()
    a, b = stored_ingress(store), stored_ingress(store)
    outcomes = await asyncio.gather(_outcome(manager, a), _outcome(manager, b))
    try:
        admitted = [o for o in outcomes if o.startswith("RT_")]
        assert len(admitted) == 1, outcomes
        assert "server capacity exceeded" in outcomes
        running = [info for info in (a, b) if manager.session_of(info.ingress_id) is not None]
        assert len(running) == 1
        refused = b if running == [a] else a
        assert store.load(running[0].ingress_id).state.status == S.ENDPOINT_BUFFERING
        assert store.load(running[0].ingress_id).state.resource_id == admitted[0]
        refused_state = store.load(refused.ingress_id).state
        assert refused_state.status == S.ENDPOINT_ERROR and refused_state.error == "server capacity exceeded"
        assert list(manager.admission.capacity.reserved) == admitted  # the refused one reserved nothing
    finally:
        await manager.close()
    await asyncio.sleep(0)  # the sessions' done callbacks
    for info in (a, b):
        assert store.load(info.ingress_id).state.status not in (S.ENDPOINT_BUFFERING, S.ENDPOINT_PUBLISHING)
    assert manager.admission.capacity.reserved == {}


async def test_two_publishers_on_one_key_at_once_share_one_session(store: IngressStore) -> None:
    manager = _manager(store, cpus=4.0)
    await manager.start()
    info = stored_ingress(store)
    try:
        first, second = await asyncio.gather(_outcome(manager, info), _outcome(manager, info))
        assert first == second and first.startswith("RT_")
        assert list(manager.admission.capacity.reserved) == [first]
        session = manager.session_of(info.ingress_id)
        assert session is not None and session.resource_id == first
    finally:
        await manager.close()
    assert store.load(info.ingress_id).state.status == S.ENDPOINT_INACTIVE


async def test_an_admitted_publishers_ingress_is_known_while_its_session_runs(store: IngressStore) -> None:
    manager = _manager(store, cpus=4.0)
    await manager.start()
    info = stored_ingress(store)
    try:
        resource_id = await manager.admit_push(info.stream_key, IngressInput.RTMP_INPUT)
        admitted = manager.admitted_info(resource_id)
        assert admitted is not None and admitted.ingress_id == info.ingress_id
        assert manager.admitted_info("RT_unknown") is None
    finally:
        await manager.close()
    assert manager.admitted_info(resource_id) is None


async def test_capacity_freed_by_an_ended_session_admits_the_next(store: IngressStore) -> None:
    manager = _manager(store, cpus=1.0)
    await manager.start()
    a, b = stored_ingress(store), stored_ingress(store)
    try:
        assert (await _outcome(manager, a)).startswith("RT_")
        assert await _outcome(manager, b) == "server capacity exceeded"
        running = manager.session_of(a.ingress_id)
        assert running is not None
        await running.stop("ingress deleted")
        await asyncio.sleep(0)
        assert (await _outcome(manager, b)).startswith("RT_")
    finally:
        await manager.close()


async def test_a_refused_rejoin_leaves_the_running_session_alone(store: IngressStore) -> None:
    manager = _manager(store, cpus=4.0)
    await manager.start()
    info = stored_ingress(store)
    try:
        resource_id = await _outcome(manager, info)
        with pytest.raises(IngressError, match="invalid ingress type"):
            await manager.admit_push(info.stream_key, IngressInput.WHIP_INPUT)
        session = manager.session_of(info.ingress_id)
        assert session is not None and session.resource_id == resource_id
    finally:
        await manager.close()


async def test_a_pull_starts_buffering_with_its_source_attached(store: IngressStore) -> None:
    door = _TestPullDoor()
    manager = _manager(store, cpus=1.0, pull=door)
    await manager.start()
    info = stored_ingress(store, IngressInput.URL_INPUT)
    try:
        await manager.start_pull(info)
        state = store.load(info.ingress_id).state
        assert state.status == S.ENDPOINT_BUFFERING and state.resource_id.startswith("UR_")
        assert door.opened == [(info.url, state.resource_id)]
        session = manager.session_of(info.ingress_id)
        assert session is not None and session.sources_attached == 1
        # The one slot is taken: another URL ingress is refused with LiveKit's words and reserves nothing.
        other = stored_ingress(store, IngressInput.URL_INPUT)
        with pytest.raises(IngressError, match="server capacity exceeded"):
            await manager.start_pull(other)
        assert list(manager.admission.capacity.reserved) == [state.resource_id]
        assert len(door.opened) == 1
    finally:
        await manager.close()
    assert store.load(info.ingress_id).state.status == S.ENDPOINT_COMPLETE  # a URL ingress ends COMPLETE


async def test_a_pull_without_a_door_for_its_scheme_is_refused(store: IngressStore) -> None:
    manager = _manager(store, cpus=4.0, pull=_TestPullDoor())
    await manager.start()
    info = stored_ingress(store, IngressInput.URL_INPUT, url="srt://127.0.0.1:9000")
    with pytest.raises(IngressError, match="no pull door for srt URLs"):
        await manager.start_pull(info)
    assert manager.admission.capacity.reserved == {} and manager.session_of(info.ingress_id) is None
    with pytest.raises(IngressError, match="invalid ingress type"):
        await manager.start_pull(stored_ingress(store))  # an RTMP ingress is not pulled


async def test_nothing_is_admitted_while_closing(store: IngressStore) -> None:
    manager = _manager(store, cpus=4.0)
    await manager.start()
    await manager.close()
    info = stored_ingress(store)
    assert await _outcome(manager, info) == "server shutting down"
    assert store.load(info.ingress_id).state.status == S.ENDPOINT_INACTIVE


class _GatedControl:
    """The real control, with every ingress lookup waiting for a permit: lets a test order the admissions."""

    def __init__(self, inner: StandaloneControl) -> None:
        self.inner = inner
        self.gate = asyncio.Semaphore(0)
        self.fail_next = False  # the next lookup fails as a store or bus outage would

    async def get_ingress_info(self, *, stream_key: str = "", ingress_id: str = "") -> IngressInfo:
        await self.gate.acquire()
        if self.fail_next:
            self.fail_next = False
            raise IngressError("unavailable", "store unavailable")
        return await self.inner.get_ingress_info(stream_key=stream_key, ingress_id=ingress_id)

    async def update_state(self, ingress_id: str, state: IngressState) -> None:
        await self.inner.update_state(ingress_id, state)

    async def create_ingress(self, info: IngressInfo) -> None:
        await self.inner.create_ingress(info)


async def test_a_publisher_arriving_as_a_failed_admission_ends_waits_for_the_next_ones_turn(
    store: IngressStore,
) -> None:
    """A fails while B waits for its turn; C arrives before B has woken.  B and C must not both start a session."""
    manager = _manager(store, cpus=4.0)
    control = _GatedControl(StandaloneControl(store))
    manager.control = manager.admission.control = control
    await manager.start()
    info = stored_ingress(store)
    settle = 5  # loop turns for a task to reach its next wait
    try:
        a = asyncio.create_task(_outcome(manager, info))
        for _ in range(settle):
            await asyncio.sleep(0)
        b = asyncio.create_task(_outcome(manager, info))  # waits for a's turn
        for _ in range(settle):
            await asyncio.sleep(0)
        control.fail_next = True
        control.gate.release()
        assert await a == "store unavailable"
        c = asyncio.create_task(_outcome(manager, info))
        for _ in range(settle):
            await asyncio.sleep(0)
        for _ in range(10):
            control.gate.release()
        outcomes = await asyncio.gather(b, c)
        assert outcomes[0] == outcomes[1] and outcomes[0].startswith("RT_"), outcomes
        assert list(manager.admission.capacity.reserved) == [outcomes[0]]
        assert manager._admitting == {}  # nothing kept for a key nobody is admitting
    finally:
        await manager.close()


async def test_two_publishers_admitted_to_one_session_before_either_attaches_the_newer_plays(
    store: IngressStore,
) -> None:
    manager = _manager(store, cpus=4.0)
    await manager.start()
    info = stored_ingress(store)
    try:
        resource_id = await _outcome(manager, info)
        assert await _outcome(manager, info) == resource_id  # a second encoder on the key, not yet attached
        older = MediaSource(protocol="rtmp", stream_key=info.stream_key, resource_id=resource_id)
        newer = MediaSource(protocol="rtmp", stream_key=info.stream_key, resource_id=resource_id)
        manager.attach(older)
        manager.attach(newer)
        session = manager.session_of(info.ingress_id)
        assert session is not None
        await _until_true(lambda: session.slot.current is newer)
        assert older.ended and not newer.ended  # newest wins, as for a reconnect
    finally:
        await manager.close()


async def test_a_session_ending_takes_no_new_publisher(store: IngressStore) -> None:
    manager = _manager(store, cpus=4.0)
    await manager.start()
    info = stored_ingress(store)
    try:
        first = await _outcome(manager, info)
        session = manager.session_of(info.ingress_id)
        assert session is not None
        session.ending = True  # what its teardown sets first
        second = await _outcome(manager, info)
        assert second.startswith("RT_") and second != first  # a session of its own, not the dying one
    finally:
        await manager.close()


async def _until_true(condition: Callable[[], bool], timeout: float = 5.0) -> None:
    async with asyncio.timeout(timeout):
        while not condition():
            await asyncio.sleep(0.01)


async def test_an_admission_in_flight_when_the_service_stops_starts_nothing(store: IngressStore) -> None:
    manager = _manager(store, cpus=4.0)
    control = _GatedControl(StandaloneControl(store))
    manager.control = manager.admission.control = control
    await manager.start()
    info = stored_ingress(store)
    admitting = asyncio.create_task(_outcome(manager, info))
    for _ in range(5):
        await asyncio.sleep(0)
    await manager.close()  # the service stops while the publisher's lookup is under way
    for _ in range(2):
        control.gate.release()
    assert await admitting == "server shutting down"
    assert manager.session_of(info.ingress_id) is None and manager.admission.capacity.reserved == {}
    assert store.load(info.ingress_id).state.status == S.ENDPOINT_INACTIVE  # not left BUFFERING


async def test_drain_refuses_newcomers_and_waits_for_the_running_sessions(store: IngressStore) -> None:
    manager = _manager(store, cpus=4.0)
    await manager.start()
    running, newcomer = stored_ingress(store), stored_ingress(store)
    try:
        await _outcome(manager, running)
        assert await manager.drain(timeout=0.2) is False  # still running when the bound passed
        assert await _outcome(manager, newcomer) == "server shutting down"
        assert await _outcome(manager, running) == "server shutting down"  # a reconnect is a new publish too
        assert store.load(newcomer.ingress_id).state.status == S.ENDPOINT_INACTIVE  # nothing stored for it
        session = manager.session_of(running.ingress_id)
        assert session is not None and not session.done
        draining = asyncio.create_task(manager.drain())
        await asyncio.sleep(0.1)
        assert not draining.done()
        await session.stop("the publisher left")  # as a publisher ending its stream would end it
        assert await asyncio.wait_for(draining, 5) is True
    finally:
        await manager.close()
