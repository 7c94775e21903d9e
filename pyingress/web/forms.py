"""The create form's fields as an Ingress API request.  Only the shape is checked here (the form's own choices); the
values are the API's to judge, with LiveKit's validation and messages."""

from typing import Any

from livekit.protocol.ingress import (
    CreateIngressRequest,
    IngressInput,
    IngressVideoEncodingOptions,
    IngressVideoEncodingPreset,
    IngressVideoOptions,
)

from pyingress.web.login import Refused

INPUTS = {"RTMP": IngressInput.RTMP_INPUT, "WHIP": IngressInput.WHIP_INPUT, "URL": IngressInput.URL_INPUT}


def create_request(body: dict[str, Any]) -> CreateIngressRequest:
    """The form's fields as a CreateIngressRequest; the API validates the rest with LiveKit's messages."""
    input_name = str(body.get("input_type", "RTMP")).upper()
    if input_name not in INPUTS:
        raise Refused(400, f"unknown input type {input_name!r}")
    request = CreateIngressRequest(
        input_type=INPUTS[input_name],
        name=str(body.get("name", "")),
        room_name=str(body.get("room_name", "")),
        participant_identity=str(body.get("participant_identity", "")),
        participant_name=str(body.get("participant_name", "")),
        url=str(body.get("url", "")),
    )
    if isinstance(body.get("enable_transcoding"), bool):
        request.enable_transcoding = body["enable_transcoding"]
    preset = str(body.get("video_preset", "") or "")
    if preset == "custom":
        request.video.CopyFrom(IngressVideoOptions(options=custom_video(body.get("video_options"))))
    elif preset and preset != "default":
        if preset not in IngressVideoEncodingPreset.keys():  # noqa: SIM118 (a protobuf enum: no __contains__)
            raise Refused(400, f"unknown video preset {preset!r}")
        request.video.CopyFrom(IngressVideoOptions(preset=preset))  # the enum by name
    return request


def custom_video(raw: Any) -> IngressVideoEncodingOptions:
    """The form's custom layers; their values are checked by the API (LiveKit's validation and messages)."""
    if not isinstance(raw, dict) or not isinstance(raw.get("layers"), list):
        raise Refused(400, "custom video needs its layers")
    codec = str(raw.get("codec", "H264_BASELINE"))
    if codec not in ("H264_BASELINE", "VP8"):
        raise Refused(400, f"unknown video codec {codec!r}")
    options = IngressVideoEncodingOptions(video_codec=codec, frame_rate=_number(raw.get("frame_rate", 30)))  # by name
    for layer in raw["layers"]:
        quality = str(layer.get("quality", "")) if isinstance(layer, dict) else ""
        if quality not in ("LOW", "MEDIUM", "HIGH"):
            raise Refused(400, f"unknown layer quality {quality!r}")
        options.layers.add(
            quality=quality,  # by name
            width=int(_number(layer.get("width"))),
            height=int(_number(layer.get("height"))),
            bitrate=int(_number(layer.get("bitrate"))),
        )
    return options


def _number(value: Any) -> float:
    if isinstance(value, bool) or not isinstance(value, int | float) or value < 0 or value > 1e9:
        raise Refused(400, f"not a number the form could send: {value!r}")
    return float(value)
