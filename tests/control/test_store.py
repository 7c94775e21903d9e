"""The SQLite ingress store: records, indexes, the newest-session-wins guard, restarts and concurrent writers."""

import threading
from pathlib import Path

import pytest
from livekit.protocol.ingress import IngressInfo, IngressInput, IngressState

from pyingress.control.errors import INGRESS_NOT_FOUND, INGRESS_OUT_OF_DATE, IngressError
from pyingress.control.ids import new_ingress_id, new_stream_key
from pyingress.control.store import IngressStore, StoreError

S = IngressState.Status


def _info(room: str = "room", input_type: int = IngressInput.RTMP_INPUT) -> IngressInfo:
    is_url = input_type == IngressInput.URL_INPUT
    return IngressInfo(
        ingress_id=new_ingress_id(),
        stream_key="" if is_url else new_stream_key(),
        url="https://example.com/a.mp4" if is_url else "rtmp://127.0.0.1:1935/live",
        input_type=input_type,
        room_name=room,
        participant_identity="p",
        reusable=not is_url,
        state=IngressState(),
    )


@pytest.fixture
def store(tmp_path: Path) -> IngressStore:
    return IngressStore(tmp_path / "ingress.sqlite3")


def test_create_load_list_delete(store: IngressStore) -> None:
    a, b, c = _info("one"), _info("two"), _info("one", IngressInput.URL_INPUT)
    for info in (a, b, c):
        store.create(info)
    assert store.load(a.ingress_id) == a
    assert store.load_by_stream_key(b.stream_key) == b
    assert [i.ingress_id for i in store.list()] == [a.ingress_id, b.ingress_id, c.ingress_id]
    assert [i.ingress_id for i in store.list("one")] == [a.ingress_id, c.ingress_id]
    assert store.list("none") == []
    assert store.delete(a.ingress_id) == a
    with pytest.raises(IngressError) as lookup:
        store.load_by_stream_key(a.stream_key)
    assert lookup.value == INGRESS_NOT_FOUND
    for missing in (lambda: store.load(a.ingress_id), lambda: store.delete(a.ingress_id)):
        with pytest.raises(IngressError):
            missing()


def test_update_info_moves_rooms_and_keeps_the_state(store: IngressStore) -> None:
    info = _info("one")
    store.create(info)
    store.update_state(info.ingress_id, IngressState(status=S.ENDPOINT_PUBLISHING, started_at=5, updated_at=6))
    info.room_name, info.name = "two", "renamed"
    info.state.Clear()  # what the API passes is ignored for the state
    store.update_info(info)
    loaded = store.load(info.ingress_id)
    assert loaded.name == "renamed" and loaded.state.status == S.ENDPOINT_PUBLISHING
    assert store.list("one") == [] and [i.ingress_id for i in store.list("two")] == [info.ingress_id]


def test_newest_session_wins(store: IngressStore) -> None:
    info = _info()
    store.create(info)
    first = store.update_state(
        info.ingress_id, IngressState(status=S.ENDPOINT_BUFFERING, started_at=100, updated_at=100)
    )
    assert first.applied and first.status_changed
    newer = IngressState(status=S.ENDPOINT_PUBLISHING, started_at=200, updated_at=201, resource_id="RT_new")
    assert store.update_state(info.ingress_id, newer).status_changed
    # A late update of the older session is refused with LiveKit's (misspelt) message.
    with pytest.raises(IngressError) as refused:
        store.update_state(info.ingress_id, IngressState(status=S.ENDPOINT_INACTIVE, started_at=100, updated_at=300))
    assert refused.value == INGRESS_OUT_OF_DATE
    assert refused.value.message == "trying to ovewrite an ingress with an older version"
    # An out-of-order update of the same session is ignored, silently.
    stale = store.update_state(
        info.ingress_id, IngressState(status=S.ENDPOINT_BUFFERING, started_at=200, updated_at=200)
    )
    assert not stale.applied and not stale.status_changed
    assert store.load(info.ingress_id).state == newer
    # Equal timestamps overwrite (the API's ERROR → INACTIVE reset relies on it).
    reset = IngressState()
    reset.CopyFrom(newer)
    reset.status = S.ENDPOINT_INACTIVE
    assert store.update_state(info.ingress_id, reset).applied


def test_survives_reopening(tmp_path: Path) -> None:
    path = tmp_path / "nested" / "ingress.sqlite3"
    first = IngressStore(path)
    info = _info()
    first.create(info)
    first.update_state(info.ingress_id, IngressState(status=S.ENDPOINT_ERROR, error="boom", started_at=1))
    first.close()
    second = IngressStore(path)
    loaded = second.load_by_stream_key(info.stream_key)
    assert loaded.ingress_id == info.ingress_id and loaded.state.error == "boom"


def test_refuses_a_file_that_is_not_a_database(tmp_path: Path) -> None:
    path = tmp_path / "junk.sqlite3"
    path.write_bytes(b"this is not sqlite" * 100)
    with pytest.raises(StoreError, match=r"junk\.sqlite3"):
        IngressStore(path)


def test_concurrent_writers_from_threads_and_processes_lose_nothing(tmp_path: Path) -> None:
    path = tmp_path / "shared.sqlite3"
    stores = [IngressStore(path), IngressStore(path)]  # two connections: like two processes on one file
    info = _info()
    stores[0].create(info)
    errors: list[BaseException] = []

    def writer(store: IngressStore, offset: int) -> None:
        try:
            for n in range(50):
                store.create(_info(f"room{offset}"))
                stamp = offset * 1000 + n
                state = IngressState(status=S.ENDPOINT_PUBLISHING, started_at=1, updated_at=stamp)
                store.update_state(info.ingress_id, state)
        except BaseException as exc:  # pragma: no cover - reported below
            errors.append(exc)

    threads = [threading.Thread(target=writer, args=(stores[i % 2], i)) for i in range(4)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert errors == []
    assert stores[1].count() == 1 + 4 * 50
    # The guard is atomic: the highest updated_at of the session is the one stored, whatever the interleaving.
    assert stores[1].load(info.ingress_id).state.updated_at == 3049
