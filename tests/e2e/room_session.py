"""What the room end-to-end tests share: an RTMP ingress and its encoder, its state over the API, the room's view."""

import asyncio
import subprocess
import time
from pathlib import Path
from typing import Any

from livekit import api, rtc
from livekit.protocol.ingress import CreateIngressRequest, IngressInfo, IngressInput, IngressState, ListIngressRequest
from livekit.protocol.models import ParticipantInfo
from livekit.protocol.room import ListParticipantsRequest

from tests.harness.livekit_peer import LivekitPeer
from tests.harness.publishers import TestPattern, start_ffmpeg

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
