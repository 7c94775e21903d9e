"""Where standalone pyingress keeps ingresses: one SQLite file in WAL mode, read and written in transactions.

The layout follows livekit-server's Redis store (protocol.md §1.5, ingress.md §3): the IngressInfo without its state,
the IngressState beside it, a stream-key index and a room index.  Every read-modify-write runs inside
``BEGIN IMMEDIATE``, so concurrent requests — and two pyingress processes sharing the file — serialise on the
database instead of losing updates.  The state ordering guard lives here, where it is atomic:

- a state whose ``started_at`` is older than the stored one is refused (``trying to ovewrite an ingress with an
  older version``): a newer session owns the ingress;
- equal ``started_at`` with an older ``updated_at`` is ignored: updates of one session arrived out of order.

Calls are synchronous and short; the async control plane runs them in a worker thread.
"""

import sqlite3
import threading
from dataclasses import dataclass
from pathlib import Path
from types import TracebackType

from livekit.protocol.ingress import IngressInfo, IngressInput, IngressState

from pyingress.control.errors import INGRESS_NOT_FOUND, INGRESS_OUT_OF_DATE

SCHEMA_VERSION = 1

_SCHEMA = """
CREATE TABLE IF NOT EXISTS ingress (
    seq         INTEGER PRIMARY KEY AUTOINCREMENT,
    ingress_id  TEXT NOT NULL UNIQUE,
    stream_key  TEXT UNIQUE,
    room_name   TEXT NOT NULL,
    info        BLOB NOT NULL,
    state       BLOB NOT NULL
);
CREATE INDEX IF NOT EXISTS ingress_by_room ON ingress (room_name);
"""


class StoreError(RuntimeError):
    """The database cannot be opened or is not ours (operator-facing)."""


@dataclass(frozen=True)
class StateChange:
    """What ``update_state`` did: the info carrying the state now stored, and the state it replaced."""

    info: IngressInfo
    previous: IngressState
    applied: bool

    @property
    def status_changed(self) -> bool:
        return self.applied and self.previous.status != self.info.state.status


def _info_blob(info: IngressInfo) -> bytes:
    bare = IngressInfo()
    bare.CopyFrom(info)
    bare.ClearField("state")
    return bare.SerializeToString()


def _joined(info_blob: bytes, state_blob: bytes) -> IngressInfo:
    info = IngressInfo.FromString(info_blob)
    info.state.CopyFrom(IngressState.FromString(state_blob))
    return info


class _Transaction:
    """``BEGIN IMMEDIATE`` … ``COMMIT``/``ROLLBACK`` under the store's lock."""

    def __init__(self, db: sqlite3.Connection, lock: threading.Lock) -> None:
        self._db = db
        self._lock = lock

    def __enter__(self) -> sqlite3.Connection:
        self._lock.acquire()
        try:
            self._db.execute("BEGIN IMMEDIATE")
        except BaseException:
            self._lock.release()
            raise
        return self._db

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        try:
            self._db.execute("ROLLBACK" if exc_type is not None else "COMMIT")
        finally:
            self._lock.release()


class IngressStore:
    def __init__(self, path: str | Path) -> None:
        self.path = str(path)
        if self.path != ":memory:":
            Path(self.path).parent.mkdir(parents=True, exist_ok=True)
        try:
            self._db = sqlite3.connect(self.path, timeout=10, isolation_level=None, check_same_thread=False)
            self._db.execute("PRAGMA journal_mode=WAL")
            # NORMAL in WAL mode survives a process crash (what a restart needs) without an fsync per request.
            self._db.execute("PRAGMA synchronous=NORMAL")
            self._db.execute("PRAGMA busy_timeout=10000")
            version = self._db.execute("PRAGMA user_version").fetchone()[0]
            if version > SCHEMA_VERSION:
                raise StoreError(f"{self.path}: written by a newer pyingress (schema {version} > {SCHEMA_VERSION})")
            self._db.executescript(_SCHEMA)
            self._db.execute(f"PRAGMA user_version={SCHEMA_VERSION}")
        except sqlite3.DatabaseError as exc:
            raise StoreError(f"{self.path}: {exc}") from None
        self._lock = threading.Lock()

    def close(self) -> None:
        with self._lock:
            self._db.close()

    def _transaction(self) -> "_Transaction":
        return _Transaction(self._db, self._lock)

    def create(self, info: IngressInfo) -> None:
        """Store a new ingress with its state (empty state → INACTIVE)."""
        if not info.ingress_id:
            raise ValueError("missing ingress id")
        if not info.stream_key and info.input_type != IngressInput.URL_INPUT:
            raise ValueError("missing stream key")
        with self._transaction() as db:
            db.execute(
                "INSERT INTO ingress (ingress_id, stream_key, room_name, info, state) VALUES (?, ?, ?, ?, ?)",
                (
                    info.ingress_id,
                    info.stream_key or None,
                    info.room_name,
                    _info_blob(info),
                    info.state.SerializeToString(),
                ),
            )

    def load(self, ingress_id: str) -> IngressInfo:
        with self._lock:
            row = self._db.execute("SELECT info, state FROM ingress WHERE ingress_id = ?", (ingress_id,)).fetchone()
        if row is None:
            raise INGRESS_NOT_FOUND
        return _joined(row[0], row[1])

    def load_by_stream_key(self, stream_key: str) -> IngressInfo:
        if not stream_key:
            raise INGRESS_NOT_FOUND
        with self._lock:
            row = self._db.execute("SELECT info, state FROM ingress WHERE stream_key = ?", (stream_key,)).fetchone()
        if row is None:
            raise INGRESS_NOT_FOUND
        return _joined(row[0], row[1])

    def list(self, room_name: str = "") -> list[IngressInfo]:
        """Every ingress (in creation order), or those of one room."""
        with self._lock:
            if room_name:
                rows = self._db.execute(
                    "SELECT info, state FROM ingress WHERE room_name = ? ORDER BY seq", (room_name,)
                ).fetchall()
            else:
                rows = self._db.execute("SELECT info, state FROM ingress ORDER BY seq").fetchall()
        return [_joined(info, state) for info, state in rows]

    def update_info(self, info: IngressInfo) -> None:
        """Replace the stored info (its state is left as it is: sessions own the state)."""
        with self._transaction() as db:
            cursor = db.execute(
                "UPDATE ingress SET info = ?, room_name = ?, stream_key = ? WHERE ingress_id = ?",
                (_info_blob(info), info.room_name, info.stream_key or None, info.ingress_id),
            )
            if cursor.rowcount == 0:
                raise INGRESS_NOT_FOUND

    def update_state(self, ingress_id: str, state: IngressState) -> StateChange:
        """Store a session's state unless a newer session or a newer update of this one is already stored."""
        with self._transaction() as db:
            row = db.execute("SELECT info, state FROM ingress WHERE ingress_id = ?", (ingress_id,)).fetchone()
            if row is None:
                raise INGRESS_NOT_FOUND
            stored = _joined(row[0], row[1])
            previous = IngressState()
            previous.CopyFrom(stored.state)
            if state.started_at < previous.started_at:
                raise INGRESS_OUT_OF_DATE
            if state.started_at == previous.started_at and state.updated_at < previous.updated_at:
                return StateChange(info=stored, previous=previous, applied=False)
            db.execute("UPDATE ingress SET state = ? WHERE ingress_id = ?", (state.SerializeToString(), ingress_id))
        stored.state.CopyFrom(state)
        return StateChange(info=stored, previous=previous, applied=True)

    def delete(self, ingress_id: str) -> IngressInfo:
        """Remove an ingress and its stream key; returns what was stored."""
        with self._transaction() as db:
            row = db.execute("SELECT info, state FROM ingress WHERE ingress_id = ?", (ingress_id,)).fetchone()
            if row is None:
                raise INGRESS_NOT_FOUND
            db.execute("DELETE FROM ingress WHERE ingress_id = ?", (ingress_id,))
        return _joined(row[0], row[1])

    def count(self) -> int:
        with self._lock:
            return int(self._db.execute("SELECT COUNT(*) FROM ingress").fetchone()[0])
