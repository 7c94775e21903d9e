"""Consistency checks on an IngressInfo, with livekit/protocol's exact messages (ingress.md §2.5).

Two levels, as in LiveKit: ``validate_for_serialization`` is what CreateIngress/UpdateIngress apply to RTMP and
WHIP ingresses (a room may still be missing), ``validate`` is the full check run for URL ingresses at creation and
for every ingress again when a session starts.
"""

from livekit.protocol.ingress import (
    IngressAudioEncodingOptions,
    IngressAudioEncodingPreset,
    IngressAudioOptions,
    IngressInfo,
    IngressInput,
    IngressVideoEncodingOptions,
    IngressVideoEncodingPreset,
    IngressVideoOptions,
)
from livekit.protocol.models import AudioCodec, TrackSource, VideoCodec, VideoLayer, VideoQuality

from pyingress.control.errors import (
    invalid_audio_params,
    invalid_ingress,
    invalid_transcoding_bypass,
    invalid_video_params,
)

_PUSH_INPUTS = (IngressInput.RTMP_INPUT, IngressInput.WHIP_INPUT)
_VIDEO_SOURCES = (TrackSource.UNKNOWN, TrackSource.CAMERA, TrackSource.SCREEN_SHARE)
_AUDIO_SOURCES = (TrackSource.UNKNOWN, TrackSource.MICROPHONE, TrackSource.SCREEN_SHARE_AUDIO)
_VIDEO_CODECS = (VideoCodec.DEFAULT_VC, VideoCodec.H264_BASELINE, VideoCodec.VP8)
_AUDIO_CODECS = (AudioCodec.DEFAULT_AC, AudioCodec.OPUS)


def validate(info: IngressInfo | None) -> None:
    """Full validation: everything ``validate_for_serialization`` checks, and a room name."""
    if info is None:
        raise invalid_ingress("missing IngressInfo")
    # LiveKit requires the room up front; moving an active ingress to another room is not supported.
    if not info.room_name:
        raise invalid_ingress("no room name")
    validate_for_serialization(info)


def validate_for_serialization(info: IngressInfo | None) -> None:
    """The checks a stored ingress must pass even while sparse (room may be empty for push inputs)."""
    if info is None:
        raise invalid_ingress("missing IngressInfo")
    if info.input_type not in (*_PUSH_INPUTS, IngressInput.URL_INPUT):
        raise invalid_ingress("unsupported input type")
    if info.input_type in _PUSH_INPUTS:
        if not info.stream_key:
            raise invalid_ingress("no stream key")
    else:
        if not info.url:
            raise invalid_ingress("no source URL")
        if info.HasField("enabled") and not info.enabled:
            raise invalid_ingress("disabled non reusable ingress")
    if not info.participant_identity:
        raise invalid_ingress("no participant identity")
    _validate_bypass_transcoding(info)
    _validate_enable_transcoding(info)
    if info.HasField("video"):
        validate_video_options(info.video)
    if info.HasField("audio"):
        validate_audio_options(info.audio)


def _has_encoding_options(options: IngressVideoOptions | IngressAudioOptions) -> bool:
    return options.WhichOneof("encoding_options") is not None


def _validate_bypass_transcoding(info: IngressInfo) -> None:
    # The deprecated field, still honoured for ingresses created by older clients.
    if not info.bypass_transcoding:
        return
    if info.input_type != IngressInput.WHIP_INPUT:
        raise invalid_transcoding_bypass("bypassing transcoding impossible with selected input type")
    if info.HasField("video") and _has_encoding_options(info.video):
        raise invalid_transcoding_bypass("video encoding options must be empty if transcoding bypass is selected")
    if info.HasField("audio") and _has_encoding_options(info.audio):
        raise invalid_transcoding_bypass("audio encoding options must be empty if transcoding bypass is selected")


def _validate_enable_transcoding(info: IngressInfo) -> None:
    explicit = info.enable_transcoding if info.HasField("enable_transcoding") else None
    if info.input_type == IngressInput.WHIP_INPUT:
        enabled = bool(explicit)
    else:
        if explicit is False:
            raise invalid_transcoding_bypass("bypassing transcoding impossible with selected input type")
        enabled = True
    if enabled:
        return
    if info.HasField("video") and _has_encoding_options(info.video):
        raise invalid_transcoding_bypass("video encoding options must be empty if transcoding is disabled")
    if info.HasField("audio") and _has_encoding_options(info.audio):
        raise invalid_transcoding_bypass("audio encoding options must be empty if transcoding is disabled")


def validate_video_options(options: IngressVideoOptions) -> None:
    if options.source not in _VIDEO_SOURCES:
        raise invalid_video_params("invalid track source")
    kind = options.WhichOneof("encoding_options")
    if kind == "preset":
        if options.preset not in IngressVideoEncodingPreset.values():
            raise invalid_video_params("invalid preset")
    elif kind == "options":
        validate_video_encoding_options(options.options)


def validate_video_encoding_options(options: IngressVideoEncodingOptions | None) -> None:
    if options is None:
        raise invalid_video_params("empty options")
    if options.frame_rate < 0:
        raise invalid_video_params("invalid framerate")
    if options.video_codec not in _VIDEO_CODECS:
        raise invalid_video_params("video codec unsupported")
    by_quality: dict[int, VideoLayer] = {}
    for layer in options.layers:
        if layer.width == 0 or layer.height == 0:
            raise invalid_video_params("invalid output media dimensions")
        if layer.width % 2:
            raise invalid_ingress("layer width must be even")
        if layer.height % 2:
            raise invalid_ingress("layer height must be even")
        if layer.quality in by_quality:
            raise invalid_video_params("more than one layer with the same quality level")
        by_quality[layer.quality] = layer
    previous_width = previous_height = 0
    for quality in (VideoQuality.LOW, VideoQuality.MEDIUM, VideoQuality.HIGH):
        found = by_quality.get(quality)
        if found is None:
            continue
        if found.height < previous_height:
            raise invalid_video_params("video layers do not have increasing height with increasing quality")
        if found.width < previous_width:
            raise invalid_video_params("video layers do not have increasing width with increasing quality")
        previous_width, previous_height = found.width, found.height


def validate_audio_options(options: IngressAudioOptions) -> None:
    if options.source not in _AUDIO_SOURCES:
        raise invalid_audio_params("invalid track source")
    kind = options.WhichOneof("encoding_options")
    if kind == "preset":
        if options.preset not in IngressAudioEncodingPreset.values():
            raise invalid_audio_params("invalid preset")
    elif kind == "options":
        validate_audio_encoding_options(options.options)


def validate_audio_encoding_options(options: IngressAudioEncodingOptions | None) -> None:
    if options is None:
        raise invalid_audio_params("empty options")
    if options.audio_codec not in _AUDIO_CODECS:
        raise invalid_audio_params("audio codec unsupported")
    if options.channels > 2:
        raise invalid_audio_params("invalid audio channel count")
