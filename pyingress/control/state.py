"""The small control-plane interface sessions talk to, and its standalone implementation.

A session needs three things from whoever owns IngressInfo: the ingress behind a stream key (admission), a place
to report its state, and a way to be stopped when the ingress is updated or deleted.  In standalone mode pyingress
owns the records (SQLite) and serves the API itself; in livekit mode livekit-server owns them and the same
interface is implemented over psrpc (IOInfo.GetIngressInfo / UpdateIngressState / CreateIngress, IngressHandler
Update/Delete).  Sessions only ever see ``IngressControl`` and ``SessionRegistry``.

State updates follow livekit-server (ingress.md §3): the newest session wins by ``started_at``/``updated_at``
(see ``store.py``), and a status change sends ``ingress_started`` / ``ingress_ended`` webhooks.
"""

import asyncio
import contextlib
import logging
import time
from collections.abc import Awaitable, Callable
from typing import Protocol

from livekit.protocol.ingress import IngressInfo, IngressState

from pyingress.control.errors import INGRESS_NOT_FOUND, IngressError
from pyingress.control.store import IngressStore
from pyingress.control.webhooks import WebhookNotifier, ingress_event, ingress_event_name

log = logging.getLogger("pyingress.control")

StopSession = Callable[[], Awaitable[None]]

# Called by the API right after a URL ingress is stored: start pulling, return once the session is under way
# (it reports its own state through IngressControl.update_state).  Raising IngressError refuses the create.
UrlSessionStarter = Callable[[IngressInfo], Awaitable[None]]

# How long Update/Delete wait for an active session to stop before going on without it.
SESSION_STOP_TIMEOUT_S = 5.0


class IngressControl(Protocol):
    """What a session may ask of the control plane (standalone: SQLite; livekit mode: psrpc to livekit-server)."""

    async def get_ingress_info(self, *, stream_key: str = "", ingress_id: str = "") -> IngressInfo:
        """The ingress with its current state; raises IngressError not_found ("ingress does not exist")."""
        ...

    async def update_state(self, ingress_id: str, state: IngressState) -> None:
        """Store a session's state.  Raises IngressError failed_precondition ("trying to ovewrite an ingress with an
        older version") when a session with a later ``started_at`` owns the ingress; an update of the same session
        with an older ``updated_at`` is silently ignored."""
        ...

    async def create_ingress(self, info: IngressInfo) -> None:
        """Make sure a URL ingress started by this worker is stored (psrpc IOInfo.CreateIngress)."""
        ...


class SessionRegistry:
    """Active sessions by ingress id, so that Update/Delete of an active ingress can end them."""

    def __init__(self) -> None:
        self._sessions: dict[str, list[StopSession]] = {}

    def register(self, ingress_id: str, stop: StopSession) -> Callable[[], None]:
        """Record a running session; call the returned function when the session ends."""
        self._sessions.setdefault(ingress_id, []).append(stop)

        def unregister() -> None:
            stops = self._sessions.get(ingress_id, [])
            if stop in stops:
                stops.remove(stop)
            if not stops:
                self._sessions.pop(ingress_id, None)

        return unregister

    def is_active(self, ingress_id: str) -> bool:
        return bool(self._sessions.get(ingress_id))

    def active_ids(self) -> list[str]:
        return list(self._sessions)

    async def stop(self, ingress_id: str, timeout_s: float = SESSION_STOP_TIMEOUT_S) -> int:
        """End every session of ``ingress_id``; returns how many were asked to stop."""
        stops = list(self._sessions.get(ingress_id, []))
        for stop in stops:
            try:
                await asyncio.wait_for(stop(), timeout_s)
            except Exception:
                # The record must still be updated/deleted; a stuck session is its own watchdog's problem.
                log.warning("session of %s did not stop cleanly", ingress_id, exc_info=True)
        return len(stops)

    async def stop_all(self, timeout_s: float = SESSION_STOP_TIMEOUT_S) -> None:
        for ingress_id in self.active_ids():
            await self.stop(ingress_id, timeout_s)


def now_ns() -> int:
    return time.time_ns()


# Told of every stored change of an ingress: its info as stored now (state included), or None once deleted.
IngressObserver = Callable[[str, IngressInfo | None], None]


class IngressChanges:
    """Who wants to hear of changes to the records (the dashboard's live page), without polling the store.

    Observers are called on the event loop, after the change is stored; one that raises is logged and kept out of
    the way of the others and of the change itself."""

    def __init__(self) -> None:
        self._observers: list[IngressObserver] = []

    def subscribe(self, observer: IngressObserver) -> Callable[[], None]:
        """Hear of every change from now on; call the returned function to stop."""
        self._observers.append(observer)

        def unsubscribe() -> None:
            if observer in self._observers:
                self._observers.remove(observer)

        return unsubscribe

    def changed(self, ingress_id: str, info: IngressInfo | None) -> None:
        for observer in list(self._observers):
            try:
                observer(ingress_id, info)
            except Exception:
                log.exception("an ingress change observer failed")


class StandaloneControl:
    """IngressControl over the local store, sending webhooks on status changes."""

    def __init__(self, store: IngressStore, notifier: WebhookNotifier | None = None) -> None:
        self.store = store
        self.notifier = notifier
        self.changes = IngressChanges()  # state changes here; the API reports creates, updates and deletes

    async def get_ingress_info(self, *, stream_key: str = "", ingress_id: str = "") -> IngressInfo:
        if ingress_id:
            return await asyncio.to_thread(self.store.load, ingress_id)
        if stream_key:
            return await asyncio.to_thread(self.store.load_by_stream_key, stream_key)
        raise INGRESS_NOT_FOUND

    async def update_state(self, ingress_id: str, state: IngressState) -> None:
        change = await asyncio.to_thread(self.store.update_state, ingress_id, state)
        if not change.applied:
            log.debug("ignored an out-of-order state update for %s", ingress_id)
            return
        name = ingress_event_name(change.previous.status, state.status)
        status = IngressState.Status.Name(state.status)
        log.info("ingress %s is %s%s", ingress_id, status, f" ({state.error})" if state.error else "")
        if name is not None and self.notifier is not None:
            self.notifier.notify(ingress_event(name, change.info))
        self.changes.changed(ingress_id, change.info)

    async def create_ingress(self, info: IngressInfo) -> None:
        # Standalone: the API stored the record before starting the session; only make sure it exists.
        with contextlib.suppress(IngressError):
            await asyncio.to_thread(self.store.load, info.ingress_id)
            return
        await asyncio.to_thread(self.store.create, info)


def is_active_status(status: int) -> bool:
    return status in (IngressState.Status.ENDPOINT_BUFFERING, IngressState.Status.ENDPOINT_PUBLISHING)


__all__ = [
    "IngressChanges",
    "IngressControl",
    "IngressObserver",
    "SessionRegistry",
    "StandaloneControl",
    "StopSession",
    "UrlSessionStarter",
    "now_ns",
]
