"""Admission: may a session start here?  The control plane's word on the ingress, and the CPU it would cost.

livekit/ingress measures idle CPU and keeps ``min_idle_ratio`` of the machine free (half of it for push
sessions, which have already arrived).  We reserve measured per-session costs instead of sampling load, so a
burst of publishers cannot all slip in before the load of the first shows up.

Check and reservation are one synchronous step (``CpuAdmission.reserve``), taken after the last ``await`` of the
lookup: two publishers arriving together at capacity cannot both pass a check and then both reserve, so the one
refused is refused before anything says BUFFERING for it (ERROR with LiveKit's message is stored instead).
"""

import asyncio
import contextlib
import logging
import os
from collections.abc import Callable
from dataclasses import dataclass, field

from livekit.protocol.ingress import IngressInfo, IngressInput, IngressState

from pyingress.config import CpuCostConfig
from pyingress.control.errors import INGRESS_DISABLED, INVALID_INGRESS_TYPE, SERVER_CAPACITY_EXCEEDED, IngressError
from pyingress.control.state import IngressControl, now_ns
from pyingress.control.transcoding import is_transcoded
from pyingress.control.validation import validate

log = logging.getLogger("pyingress.control")


def session_cost(info: IngressInfo, costs: CpuCostConfig) -> float:
    if info.input_type == IngressInput.WHIP_INPUT:
        return costs.whip_cpu_cost if is_transcoded(info) else costs.whip_bypass_transcoding_cpu_cost
    if info.input_type == IngressInput.URL_INPUT:
        return costs.url_cpu_cost
    return costs.rtmp_cpu_cost


@dataclass
class CpuAdmission:
    """The CPUs sessions have reserved here, by resource id."""

    costs: CpuCostConfig
    cpus: float = field(default_factory=lambda: float(len(os.sched_getaffinity(0))))
    reserved: dict[str, float] = field(default_factory=dict)  # resource id → CPUs

    @property
    def capacity(self) -> float:
        # Push sessions keep half of min_idle_ratio free, as livekit/ingress does for arrived publishers.
        return self.cpus * (1 - self.costs.min_idle_ratio / 2)

    @property
    def used(self) -> float:
        return sum(self.reserved.values())

    @property
    def spare(self) -> float:
        """CPUs still free for sessions (what a worker bids with for a pull session in livekit mode)."""
        return max(0.0, self.capacity - self.used)

    def check(self, cost: float) -> None:
        if self.used + cost > self.capacity + 1e-9:
            raise SERVER_CAPACITY_EXCEEDED

    def reserve(self, resource_id: str, cost: float) -> None:
        """Check and reserve in one step (no await in between): raises SERVER_CAPACITY_EXCEEDED when full."""
        self.check(cost)
        self.reserved[resource_id] = cost

    def release(self, resource_id: str) -> None:
        self.reserved.pop(resource_id, None)


async def admit_session(
    control: IngressControl,
    *,
    stream_key: str,
    input_type: int,
    resource_id: str = "",
    state: IngressState | None = None,
    accept: Callable[[IngressInfo], None] | None = None,
    info: IngressInfo | None = None,
) -> IngressInfo:
    """Start-of-session admission for a push input (RTMP/WHIP/SRT), as livekit/ingress does it (ingress.md §1.3).

    Looks the stream key up (unknown → not_found, nothing stored), marks the ingress BUFFERING, then refuses a
    disabled ingress ("session is disabled"), an invalid one (``validate``), one whose type does not match the
    endpoint ("invalid ingress type"), or one ``accept`` refuses (raise IngressError; ``accept`` runs after the
    last await before the state is stored, so a capacity reservation made in it is atomic with its check).  A
    refusal after the lookup is stored as ERROR with its message; success is stored as BUFFERING.  Returns the
    IngressInfo carrying the stored state.

    ``state`` is the session's own BUFFERING state (e.g. ``SessionState.snapshot()``), so that admission and the
    session's later reports share one ``started_at``; without it a new one is made from ``resource_id``.  ``info``
    is the ingress the caller just looked the key up to (one lookup per publish, not two: in livekit mode each is
    a psrpc round trip to livekit-server).
    """
    if info is None:
        info = await control.get_ingress_info(stream_key=stream_key)
    if state is None:
        state = IngressState(started_at=now_ns(), resource_id=resource_id)
    info.state.CopyFrom(state)
    info.state.status = IngressState.Status.ENDPOINT_BUFFERING
    error: IngressError | None = None
    try:
        if info.HasField("enabled") and not info.enabled:
            raise INGRESS_DISABLED
        validate(info)
        if info.input_type != input_type:
            raise INVALID_INGRESS_TYPE
        if accept is not None:
            accept(info)
    except IngressError as exc:
        error = exc
        info.state.status = IngressState.Status.ENDPOINT_ERROR
        info.state.error = exc.message
        info.state.ended_at = now_ns()
    info.state.updated_at = max(now_ns(), info.state.updated_at + 1)
    # Shielded: a store write in a thread (or a psrpc request on the bus) lands even if our caller is cancelled
    # (the door's admission timeout, shutdown); then BUFFERING must not stay behind with no session.
    stored = asyncio.ensure_future(control.update_state(info.ingress_id, info.state))
    try:
        await asyncio.shield(stored)
    except IngressError as exc:
        log.warning("could not store the admission state of %s: %s", info.ingress_id, exc)
    except asyncio.CancelledError:
        if error is None:
            _end_when_stored(control, info, stored)
        raise
    if error is not None:
        raise error
    return info


_UNDOING: set[asyncio.Task[None]] = set()  # strong references until they are done


def _end_when_stored(control: IngressControl, info: IngressInfo, stored: "asyncio.Future[None]") -> None:
    """The publisher went away while its BUFFERING was being stored: once that lands, store INACTIVE after it."""
    ended = IngressState()
    ended.CopyFrom(info.state)
    ended.status = IngressState.Status.ENDPOINT_INACTIVE
    ended.ended_at = now_ns()
    ended.updated_at = max(ended.ended_at, info.state.updated_at + 1)

    async def undo() -> None:
        with contextlib.suppress(Exception):
            await stored
        try:
            await control.update_state(info.ingress_id, ended)
        except IngressError as exc:  # a newer session owns the record: nothing of ours to end
            log.info("abandoned admission of %s not ended: %s", info.ingress_id, exc.message)

    task = asyncio.get_running_loop().create_task(undo(), name=f"abandoned-admission-{info.ingress_id}")
    _UNDOING.add(task)
    task.add_done_callback(_UNDOING.discard)


class Admission:
    """What the session manager asks before a session may start: the ingress is good and the CPU is there."""

    def __init__(self, control: IngressControl, capacity: CpuAdmission) -> None:
        self.control = control
        self.capacity = capacity

    async def admit_push(
        self, stream_key: str, input_type: int, resource_id: str, info: IngressInfo | None = None
    ) -> IngressInfo:
        """A publisher's session: the stream key's ingress, stored BUFFERING with ``resource_id``'s CPU reserved.

        Refusals raise IngressError with LiveKit's message and reserve nothing; the caller releases the
        reservation (``release``) when the session ends or could not be started after all."""

        def reserve(info: IngressInfo) -> None:
            self.capacity.reserve(resource_id, session_cost(info, self.capacity.costs))

        try:
            return await admit_session(
                self.control,
                stream_key=stream_key,
                input_type=input_type,
                resource_id=resource_id,
                accept=reserve,
                info=info,
            )
        except BaseException:
            self.release(resource_id)  # a refusal, or the caller went away while the state was being stored
            raise

    def admit_pull(self, info: IngressInfo, resource_id: str) -> None:
        """A URL ingress's session: reserve its CPU or raise SERVER_CAPACITY_EXCEEDED (its state is the session's)."""
        self.capacity.reserve(resource_id, session_cost(info, self.capacity.costs))

    def release(self, resource_id: str) -> None:
        self.capacity.release(resource_id)

    @property
    def spare(self) -> float:
        return self.capacity.spare
