"""The state of one ingress session, moved only along LiveKit's transitions (reference ingress.md §3).

BUFFERING when a publisher is admitted, PUBLISHING once tracks are in the room, then exactly one end: INACTIVE
(reusable push ingress ended cleanly), COMPLETE (URL ingress ran to its end) or ERROR (first error wins).
Every report carries the session's fixed ``started_at`` and a strictly increasing ``updated_at``, which is how
the store (ours or livekit-server's) lets the newest session of an ingress win.
"""

import time
from collections.abc import Callable
from typing import Protocol

from livekit.protocol.ingress import IngressInfo, IngressState, InputAudioState, InputVideoState

Status = IngressState.Status
ACTIVE = (IngressState.ENDPOINT_BUFFERING, IngressState.ENDPOINT_PUBLISHING)
ENDED = (IngressState.ENDPOINT_INACTIVE, IngressState.ENDPOINT_COMPLETE, IngressState.ENDPOINT_ERROR)


class StateSink(Protocol):
    """Where session state goes: the standalone store, or livekit-server over psrpc."""

    async def update_state(self, ingress_id: str, state: IngressState) -> None: ...


def _now_ns() -> int:
    return time.time_ns()


class SessionState:
    def __init__(
        self,
        info: IngressInfo,
        resource_id: str,
        sink: StateSink,
        clock_ns: Callable[[], int] = _now_ns,
        initial: IngressState | None = None,
    ) -> None:
        """``initial``: the BUFFERING state admission already stored, whose started_at the session keeps."""
        self.ingress_id = info.ingress_id
        self.reusable = info.reusable
        self._sink = sink
        self._clock = clock_ns
        self._last_ns = 0
        if initial is not None:
            self.state = IngressState()
            self.state.CopyFrom(initial)
            self._last_ns = max(initial.started_at, initial.updated_at)
        else:
            self.state = IngressState(
                status=IngressState.ENDPOINT_BUFFERING, resource_id=resource_id, started_at=self._tick()
            )

    def _tick(self) -> int:
        # Strictly increasing even if the wall clock stalls or steps back: equal updated_at would be ignored.
        self._last_ns = max(self._clock(), self._last_ns + 1)
        return self._last_ns

    @property
    def status(self) -> int:
        return self.state.status

    @property
    def ended(self) -> bool:
        return self.state.status in ENDED

    def snapshot(self) -> IngressState:
        copy = IngressState()
        copy.CopyFrom(self.state)
        return copy

    async def report(self) -> None:
        self.state.updated_at = self._tick()
        await self._sink.update_state(self.ingress_id, self.snapshot())

    async def publishing(self, room_id: str = "") -> None:
        """Tracks are in the room (sent per kind, as LiveKit does; repeated calls only refresh room_id)."""
        if self.ended:
            return
        if room_id:
            self.state.room_id = room_id
        self.state.status = IngressState.ENDPOINT_PUBLISHING
        await self.report()

    async def buffering(self) -> None:
        """Back to BUFFERING, e.g. while a publisher reconnects within the grace window."""
        if self.ended:
            return
        self.state.status = IngressState.ENDPOINT_BUFFERING
        await self.report()

    async def input(self, video: InputVideoState | None = None, audio: InputAudioState | None = None) -> None:
        """What came in (codec, size, rate; average bitrate), kept in the state like livekit/ingress does."""
        if self.ended:
            return
        if video is not None:
            self.state.video.CopyFrom(video)
        if audio is not None:
            self.state.audio.CopyFrom(audio)
        await self.report()

    async def end(self) -> None:
        """A clean end: INACTIVE for a reusable (push) ingress, COMPLETE for a single-use URL ingress."""
        if self.ended:
            return
        self.state.status = IngressState.ENDPOINT_INACTIVE if self.reusable else IngressState.ENDPOINT_COMPLETE
        self.state.ended_at = self._tick()
        await self.report()

    async def fail(self, message: str) -> None:
        """ERROR with ``message``; the first error of a session is the one that stays."""
        if self.ended:
            return
        self.state.status = IngressState.ENDPOINT_ERROR
        self.state.error = message
        self.state.ended_at = self._tick()
        await self.report()
