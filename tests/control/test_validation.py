"""Every validation rule of reference ingress.md §2.5, each with LiveKit's exact message and code."""

import pytest
from livekit.protocol.ingress import (
    IngressAudioEncodingOptions,
    IngressAudioOptions,
    IngressInfo,
    IngressInput,
    IngressVideoEncodingOptions,
    IngressVideoOptions,
)
from livekit.protocol.models import AudioCodec, TrackSource, VideoCodec, VideoLayer, VideoQuality

from pyingress.control.errors import IngressError
from pyingress.control.validation import validate, validate_for_serialization

LOW, MEDIUM, HIGH = VideoQuality.LOW, VideoQuality.MEDIUM, VideoQuality.HIGH


def rtmp(**fields: object) -> IngressInfo:
    base: dict[str, object] = {
        "input_type": IngressInput.RTMP_INPUT,
        "stream_key": "k" * 12,
        "room_name": "room",
        "participant_identity": "id",
    }
    base.update(fields)
    return IngressInfo(**base)  # type: ignore[arg-type]


def layers(*specs: tuple[int, int, int]) -> IngressVideoOptions:
    return IngressVideoOptions(
        options=IngressVideoEncodingOptions(layers=[VideoLayer(quality=q, width=w, height=h) for q, w, h in specs])
    )


def audio_options(**fields: object) -> IngressAudioOptions:
    return IngressAudioOptions(options=IngressAudioEncodingOptions(**fields))  # type: ignore[arg-type]


CASES: list[tuple[str, IngressInfo | None, str]] = [
    ("missing info", None, "invalid ingress: missing IngressInfo"),
    ("no room (full validation)", rtmp(room_name=""), "invalid ingress: no room name"),
    ("unsupported input type", rtmp(input_type=3), "invalid ingress: unsupported input type"),
    ("rtmp without stream key", rtmp(stream_key=""), "invalid ingress: no stream key"),
    (
        "whip without stream key",
        rtmp(input_type=IngressInput.WHIP_INPUT, stream_key=""),
        "invalid ingress: no stream key",
    ),
    ("url without url", rtmp(input_type=IngressInput.URL_INPUT, stream_key=""), "invalid ingress: no source URL"),
    (
        "disabled url ingress",
        rtmp(input_type=IngressInput.URL_INPUT, stream_key="", url="http://x/a.mp4", enabled=False),
        "invalid ingress: disabled non reusable ingress",
    ),
    ("no identity", rtmp(participant_identity=""), "invalid ingress: no participant identity"),
    (
        "bypass on rtmp",
        rtmp(bypass_transcoding=True),
        "invalid transcoding bypass configuration: bypassing transcoding impossible with selected input type",
    ),
    (
        "bypass with video options",
        rtmp(input_type=IngressInput.WHIP_INPUT, bypass_transcoding=True, video=IngressVideoOptions(preset=1)),
        "invalid transcoding bypass configuration: "
        "video encoding options must be empty if transcoding bypass is selected",
    ),
    (
        "bypass with audio options",
        rtmp(input_type=IngressInput.WHIP_INPUT, bypass_transcoding=True, audio=IngressAudioOptions(preset=1)),
        "invalid transcoding bypass configuration: "
        "audio encoding options must be empty if transcoding bypass is selected",
    ),
    (
        "transcoding disabled on rtmp",
        rtmp(enable_transcoding=False),
        "invalid transcoding bypass configuration: bypassing transcoding impossible with selected input type",
    ),
    (
        "transcoding disabled on url",
        rtmp(input_type=IngressInput.URL_INPUT, stream_key="", url="http://x/a.mp4", enable_transcoding=False),
        "invalid transcoding bypass configuration: bypassing transcoding impossible with selected input type",
    ),
    (
        "whip pass-through (default) with video options",
        rtmp(input_type=IngressInput.WHIP_INPUT, video=IngressVideoOptions(preset=1)),
        "invalid transcoding bypass configuration: video encoding options must be empty if transcoding is disabled",
    ),
    (
        "whip pass-through with audio options",
        rtmp(input_type=IngressInput.WHIP_INPUT, enable_transcoding=False, audio=IngressAudioOptions(preset=0)),
        "invalid transcoding bypass configuration: audio encoding options must be empty if transcoding is disabled",
    ),
    (
        "video source microphone",
        rtmp(video=IngressVideoOptions(source=TrackSource.MICROPHONE)),
        "invalid video parameters: invalid track source",
    ),
    (
        "audio source camera",
        rtmp(audio=IngressAudioOptions(source=TrackSource.CAMERA)),
        "invalid audio parameters: invalid track source",
    ),
    ("unknown video preset", rtmp(video=IngressVideoOptions(preset=10)), "invalid video parameters: invalid preset"),
    ("unknown audio preset", rtmp(audio=IngressAudioOptions(preset=2)), "invalid audio parameters: invalid preset"),
    (
        "negative frame rate",
        rtmp(video=IngressVideoOptions(options=IngressVideoEncodingOptions(frame_rate=-1))),
        "invalid video parameters: invalid framerate",
    ),
    (
        "H264_MAIN",
        rtmp(video=IngressVideoOptions(options=IngressVideoEncodingOptions(video_codec=VideoCodec.H264_MAIN))),
        "invalid video parameters: video codec unsupported",
    ),
    (
        "H264_HIGH",
        rtmp(video=IngressVideoOptions(options=IngressVideoEncodingOptions(video_codec=VideoCodec.H264_HIGH))),
        "invalid video parameters: video codec unsupported",
    ),
    ("zero width", rtmp(video=layers((HIGH, 0, 720))), "invalid video parameters: invalid output media dimensions"),
    ("zero height", rtmp(video=layers((HIGH, 1280, 0))), "invalid video parameters: invalid output media dimensions"),
    ("odd width", rtmp(video=layers((HIGH, 1281, 720))), "invalid ingress: layer width must be even"),
    ("odd height", rtmp(video=layers((HIGH, 1280, 721))), "invalid ingress: layer height must be even"),
    (
        "duplicate quality",
        rtmp(video=layers((HIGH, 1280, 720), (HIGH, 640, 360))),
        "invalid video parameters: more than one layer with the same quality level",
    ),
    (
        "shrinking height",
        rtmp(video=layers((LOW, 640, 720), (HIGH, 1280, 360))),
        "invalid video parameters: video layers do not have increasing height with increasing quality",
    ),
    (
        "shrinking width",
        rtmp(video=layers((LOW, 1280, 360), (MEDIUM, 640, 360))),
        "invalid video parameters: video layers do not have increasing width with increasing quality",
    ),
    (
        "AAC audio",
        rtmp(audio=audio_options(audio_codec=AudioCodec.AAC)),
        "invalid audio parameters: audio codec unsupported",
    ),
    (
        "MP3 audio",
        rtmp(audio=audio_options(audio_codec=AudioCodec.AC_MP3)),
        "invalid audio parameters: audio codec unsupported",
    ),
    ("3 channels", rtmp(audio=audio_options(channels=3)), "invalid audio parameters: invalid audio channel count"),
]


@pytest.mark.parametrize(
    ("info", "message"), [(info, message) for _, info, message in CASES], ids=[name for name, _, _ in CASES]
)
def test_rule_refuses_with_livekit_message(info: IngressInfo | None, message: str) -> None:
    with pytest.raises(IngressError) as refused:
        validate(info)
    assert refused.value.message == message
    assert refused.value.twirp_code == "invalid_argument"
    assert refused.value.http_status == 400


def test_serialization_validation_allows_a_missing_room_for_push_inputs() -> None:
    validate_for_serialization(rtmp(room_name=""))
    validate_for_serialization(rtmp(input_type=IngressInput.WHIP_INPUT, room_name=""))


@pytest.mark.parametrize(
    "info",
    [
        rtmp(),
        rtmp(video=IngressVideoOptions(preset=9), audio=IngressAudioOptions(preset=1)),
        rtmp(video=layers((LOW, 320, 180), (MEDIUM, 640, 360), (HIGH, 1280, 720))),
        rtmp(video=layers((HIGH, 1280, 720), (LOW, 320, 180))),  # order in the request does not matter
        rtmp(video=layers((HIGH, 1280, 720), (MEDIUM, 1280, 720))),  # equal sizes are not shrinking
        rtmp(video=IngressVideoOptions(options=IngressVideoEncodingOptions(video_codec=VideoCodec.VP8))),
        rtmp(audio=audio_options(channels=2, audio_codec=AudioCodec.OPUS)),
        rtmp(input_type=IngressInput.WHIP_INPUT),
        rtmp(input_type=IngressInput.WHIP_INPUT, enable_transcoding=True, video=IngressVideoOptions(preset=1)),
        rtmp(input_type=IngressInput.URL_INPUT, stream_key="", url="srt://127.0.0.1:9000"),
        rtmp(
            video=IngressVideoOptions(source=TrackSource.SCREEN_SHARE),
            audio=IngressAudioOptions(source=TrackSource.SCREEN_SHARE_AUDIO),
        ),
    ],
)
def test_valid_ingresses_pass(info: IngressInfo) -> None:
    validate(info)
