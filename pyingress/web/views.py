"""What the page is told about an ingress: its record flattened for display, where to push, and a test command.

Plain dicts for JSON; the page never sees protobuf.  Enum names lose LiveKit's prefixes (``ENDPOINT_PUBLISHING`` →
``PUBLISHING``, ``RTMP_INPUT`` → ``RTMP``) because the page shows them as they are.
"""

import shlex
from collections.abc import Sequence
from typing import Any

from livekit.protocol.ingress import IngressInfo, IngressInput, IngressState, IngressVideoEncodingPreset

from pyingress.control.transcoding import is_transcoded

KEY_PLACEHOLDER = "<stream key>"
FFMPEG_TEST_INPUT = (
    "ffmpeg -re -f lavfi -i testsrc2=size=1280x720:rate=30 -f lavfi -i sine=frequency=440 "
    "-c:v libx264 -preset veryfast -tune zerolatency -g 60 -c:a aac"
)


def status_name(status: int) -> str:
    return IngressState.Status.Name(status).removeprefix("ENDPOINT_")


def input_name(input_type: int) -> str:
    return IngressInput.Name(input_type).removesuffix("_INPUT")


def push_addresses(info: IngressInfo, door_addresses: Sequence[tuple[str, str]]) -> list[dict[str, str]]:
    """Where an encoder pushes this ingress: its own URL + key, and for RTMP keys the other doors that take them
    (RTMPS, SRT), from the doors' address templates."""
    if info.input_type == IngressInput.URL_INPUT or not info.stream_key:
        return []
    label = input_name(info.input_type)
    found = [{"label": label, "url": f"{info.url}/{info.stream_key}"}]
    if info.input_type == IngressInput.RTMP_INPUT:
        for door, template in door_addresses:
            if door in ("RTMPS", "SRT"):
                found.append({"label": door, "url": template.replace(KEY_PLACEHOLDER, info.stream_key)})
    return found


def ffmpeg_line(info: IngressInfo, pushes: Sequence[dict[str, str]]) -> str:
    """A test pattern pushed with Debian's ffmpeg, for RTMP keys (ffmpeg has no WHIP muxer before 8)."""
    if info.input_type != IngressInput.RTMP_INPUT or not pushes:
        return ""
    return f"{FFMPEG_TEST_INPUT} -f flv {shlex.quote(pushes[0]['url'])}"


def preset_name(info: IngressInfo) -> str:
    if not info.HasField("video"):
        return "default"
    video = info.video
    if video.WhichOneof("encoding_options") == "options":
        return "custom"
    if video.WhichOneof("encoding_options") == "preset":
        return str(IngressVideoEncodingPreset.Name(video.preset))
    return "default"


def ingress_view(info: IngressInfo, door_addresses: Sequence[tuple[str, str]]) -> dict[str, Any]:
    state = info.state
    pushes = push_addresses(info, door_addresses)
    view: dict[str, Any] = {
        "ingress_id": info.ingress_id,
        "name": info.name,
        "input": input_name(info.input_type),
        "url": info.url,
        "stream_key": info.stream_key,
        "room": info.room_name,
        "identity": info.participant_identity,
        "participant_name": info.participant_name,
        "enabled": not info.HasField("enabled") or info.enabled,
        "transcoding": is_transcoded(info),
        "preset": preset_name(info),
        "status": status_name(state.status),
        "error": state.error,
        "resource_id": state.resource_id,
        "started_at_ms": state.started_at // 1_000_000 if state.started_at else 0,
        "push": pushes,
        "ffmpeg": ffmpeg_line(info, pushes),
        "obs": {"server": info.url, "stream_key": info.stream_key} if pushes else None,
        "input_video": None,
        "input_audio": None,
    }
    if state.HasField("video") and state.video.mime_type:
        v = state.video
        view["input_video"] = {
            "codec": v.mime_type,
            "width": v.width,
            "height": v.height,
            "fps": round(v.framerate, 2),
            "bitrate": v.average_bitrate,
        }
    if state.HasField("audio") and state.audio.mime_type:
        a = state.audio
        view["input_audio"] = {
            "codec": a.mime_type,
            "channels": a.channels,
            "sample_rate": a.sample_rate,
            "bitrate": a.average_bitrate,
        }
    return view
