"""What the room end-to-end tests share: an RTMP ingress and its encoder, its state over the API, the room's view, and
the deployment they run against (standalone or livekit mode, see ``Deployment``)."""

import asyncio
import subprocess
import time
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any, Literal

from livekit import api, rtc
from livekit.protocol.ingress import CreateIngressRequest, IngressInfo, IngressInput, IngressState, ListIngressRequest
from livekit.protocol.models import ParticipantInfo
from livekit.protocol.room import ListParticipantsRequest

from tests.control.webhook_receiver import Received, WebhookSink
from tests.harness.livekit_peer import API_KEY, API_SECRET, LivekitPeer
from tests.harness.publishers import TestPattern, start_ffmpeg
from tests.harness.pyingress_peer import PyingressPeer

Q_LOW, Q_MEDIUM, Q_HIGH = (
    rtc.VideoQuality.VIDEO_QUALITY_LOW,
    rtc.VideoQuality.VIDEO_QUALITY_MEDIUM,
    rtc.VideoQuality.VIDEO_QUALITY_HIGH,
)
INACTIVE, BUFFERING, PUBLISHING, ERROR = (
    IngressState.ENDPOINT_INACTIVE,
    IngressState.ENDPOINT_BUFFERING,
    IngressState.ENDPOINT_PUBLISHING,
    IngressState.ENDPOINT_ERROR,
)


def status_name(status: int) -> str:
    return IngressState.Status.Name(status)


async def create_rtmp_ingress(client: api.LiveKitAPI, room: str, identity: str, **fields: Any) -> IngressInfo:
    request = CreateIngressRequest(
        input_type=IngressInput.RTMP_INPUT, name=room, room_name=room, participant_identity=identity, **fields
    )
    return await client.ingress.create_ingress(request)


async def ingress_state(client: api.LiveKitAPI, ingress_id: str) -> IngressState:
    listed = await client.ingress.list_ingress(ListIngressRequest(ingress_id=ingress_id))
    return listed.items[0].state


async def wait_status(
    client: api.LiveKitAPI, ingress_id: str, status: int, timeout: float = 30, interval: float = 0.1
) -> IngressState:
    deadline = time.monotonic() + timeout
    state = await ingress_state(client, ingress_id)
    while state.status != status and time.monotonic() < deadline:
        await asyncio.sleep(interval)
        state = await ingress_state(client, ingress_id)
    assert state.status == status, f"expected {status_name(status)}, got {state}"
    return state


async def record_statuses(client: api.LiveKitAPI, ingress_id: str, statuses: list[str], interval: float = 0.02) -> None:
    """Append every status change seen while polling every ``interval`` s, until cancelled."""
    while True:
        name = status_name((await ingress_state(client, ingress_id)).status)
        if not statuses or statuses[-1] != name:
            statuses.append(name)
        await asyncio.sleep(interval)


def push(pattern: TestPattern, info: IngressInfo, log_path: Path) -> subprocess.Popen[bytes]:
    """Debian ffmpeg pushing ``pattern`` to the ingress's URL and stream key."""
    return start_ffmpeg(pattern, f"{info.url}/{info.stream_key}", log_path)


def stop_encoder(encoder: subprocess.Popen[bytes]) -> None:
    if encoder.poll() is None:
        encoder.terminate()
        try:
            encoder.wait(timeout=10)
        except subprocess.TimeoutExpired:
            encoder.kill()
            encoder.wait()


async def room_participants(livekit: LivekitPeer, room: str) -> list[ParticipantInfo]:
    """The room's participants as the server's RoomService lists them (its own view, not a subscriber's)."""
    async with livekit.api() as client:
        listed = await client.room.list_participants(ListParticipantsRequest(room=room))
    return list(listed.participants)


Mode = Literal["standalone", "livekit"]


class Webhooks:
    """The webhooks a test's Ingress service sent, as ``sink`` received them from now on.

    ``ingress_only``: keep only the ``ingress_*`` events.  In livekit mode the sender is livekit-server, which is the
    room server too and also sends its room, participant and track events to the same URLs; those are not the
    Ingress service's.  In standalone pyingress is the only sender and every event counts.
    """

    def __init__(self, sink: WebhookSink, ingress_only: bool) -> None:
        self.sink = sink
        self.ingress_only = ingress_only
        self._first, self._first_refused = len(sink.received), len(sink.refused)

    @property
    def received(self) -> list[Received]:
        received = self.sink.received[self._first :]
        return [r for r in received if r.event.event.startswith("ingress_")] if self.ingress_only else received

    @property
    def refused(self) -> list[str]:
        return self.sink.refused[self._first_refused :]

    async def wait_for(self, count: int, timeout: float) -> list[Received]:
        deadline = time.monotonic() + timeout
        while len(self.received) < count:
            if time.monotonic() > deadline:
                raise AssertionError(f"{len(self.received)} of {count} webhooks within {timeout} s: {self.received}")
            await asyncio.sleep(0.02)
        return self.received


class Deployment:
    """pyingress deployed one way for one test, the same test body for both (the ``deployment`` fixture).

    standalone: pyingress serves the Ingress API itself (``api_url`` is its HTTP port), keeps the records and sends
    the webhooks; it publishes into ``livekit``.  livekit: ``livekit`` (a livekit-server v1.13.5 with Redis) serves
    the Ingress API, keeps the records and sends the webhooks; the worker is `pyingress serve` in ``mode: livekit``
    on that Redis, on the RTMP port livekit-server's ``ingress.rtmp_base_url`` names, so an IngressInfo's URL leads
    to it.  Either way the test pushes to ``info.url`` and watches the room on ``livekit``.
    """

    api_key = API_KEY
    api_secret = API_SECRET

    def __init__(
        self,
        mode: Mode,
        livekit: LivekitPeer,
        start_worker: Callable[[dict[str, Any]], PyingressPeer],
        webhook_sink: Callable[[], Awaitable[WebhookSink]],
    ) -> None:
        self.mode = mode
        self.livekit = livekit
        self._start_worker = start_worker
        self._webhook_sink = webhook_sink
        self.worker: PyingressPeer | None = None
        self._webhooks: Webhooks | None = None

    async def start(self, config: dict[str, Any] | None = None, *, webhooks: bool = False) -> PyingressPeer:
        """Start the worker with the test's ``config`` on top of the harness's (e.g. ``reconnect_grace_seconds``);
        ``webhooks``: have the Ingress service send its webhooks to a sink the test reads as ``self.webhooks``."""
        assert self.worker is None, "one worker per test"
        config = dict(config or {})
        if webhooks:
            sink = await self._webhook_sink()
            self._webhooks = Webhooks(sink, ingress_only=self.mode == "livekit")
            if self.mode == "standalone":  # in livekit mode livekit-server was started with the sink's URL
                config["webhook"] = {"api_key": self.api_key, "urls": [sink.url]}
        self.worker = self._start_worker(config)
        return self.worker

    @property
    def api_url(self) -> str:
        """The Ingress API's base URL: pyingress's own HTTP port in standalone, livekit-server's in livekit mode."""
        if self.mode == "livekit":
            return self.livekit.http_url
        assert self.worker is not None, "start() first: in standalone the worker serves the API"
        return self.worker.http_url

    @property
    def webhooks(self) -> Webhooks:
        assert self._webhooks is not None, "start(webhooks=True) first"
        return self._webhooks

    def api(self) -> api.LiveKitAPI:
        """A `livekit-api` client of the Ingress API (use as ``async with``)."""
        return api.LiveKitAPI(self.api_url, self.api_key, self.api_secret)

    def stop(self) -> None:
        if self.worker is not None:
            self.worker.stop()
