"""What a running session is doing, for the dashboard's live figures: read from the session objects in memory, never
from the store."""

from typing import Any, Protocol

from livekit.protocol.ingress import IngressInfo, IngressState

from pyingress.web.views import status_name


class SessionStateView(Protocol):
    @property
    def state(self) -> IngressState: ...


class RunningSession(Protocol):
    @property
    def info(self) -> IngressInfo: ...

    @property
    def resource_id(self) -> str: ...

    @property
    def state(self) -> SessionStateView: ...


def session_stats(session: RunningSession) -> dict[str, Any]:
    state = session.state.state
    figures: dict[str, Any] = {
        "ingress_id": session.info.ingress_id,
        "resource_id": session.resource_id,
        "status": status_name(state.status),
        "input_video": None,
        "input_audio": None,
    }
    if state.video.mime_type:
        figures["input_video"] = {
            "codec": state.video.mime_type,
            "width": state.video.width,
            "height": state.video.height,
            "fps": round(state.video.framerate, 2),
            "bitrate": state.video.average_bitrate,
        }
    if state.audio.mime_type:
        figures["input_audio"] = {
            "codec": state.audio.mime_type,
            "channels": state.audio.channels,
            "sample_rate": state.audio.sample_rate,
            "bitrate": state.audio.average_bitrate,
        }
    return figures
