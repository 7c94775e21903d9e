"""What the AddTrackRequests announce: exactly the planned layers and codec, the audio's stereo and DTX."""

from livekit.protocol import models
from livekit.protocol.ingress import IngressAudioEncodingPreset, IngressVideoEncodingPreset

from pyingress.media.layer_plan import PlannedLayer
from pyingress.media.presets import audio_preset, video_preset
from pyingress.publish.publication import AudioTrackPlan, VideoTrackPlan, add_track_requests

LOW, MEDIUM, HIGH = models.VideoQuality.LOW, models.VideoQuality.MEDIUM, models.VideoQuality.HIGH


def test_video_request_carries_top_size_layers_and_simulcast_codec() -> None:
    plan = VideoTrackPlan.from_encoding(video_preset(IngressVideoEncodingPreset.H264_720P_30FPS_3_LAYERS), name="cam")
    [request] = add_track_requests(None, None, plan, "cid-v")
    assert (request.cid, request.name, request.type, request.source) == (
        "cid-v",
        "cam",
        models.TrackType.VIDEO,
        models.TrackSource.CAMERA,
    )
    assert (request.width, request.height) == (1280, 720)
    layers = [(layer.quality, layer.width, layer.height, layer.bitrate) for layer in request.layers]
    assert layers == [(LOW, 320, 180, 237_500), (MEDIUM, 640, 360, 671_751), (HIGH, 1280, 720, 1_900_000)]
    [codec] = request.simulcast_codecs
    assert (codec.codec, codec.cid) == ("h264", "cid-v")
    assert codec.video_layer_mode == models.VideoLayer.Mode.ONE_SPATIAL_LAYER_PER_STREAM
    assert list(codec.layers) == list(request.layers)


def test_fitted_layers_and_vp8() -> None:
    encoding = video_preset(IngressVideoEncodingPreset.H264_1080P_30FPS_3_LAYERS)
    fitted = (PlannedLayer(LOW, 480, 270, 300_000), PlannedLayer(HIGH, 960, 540, 1_000_000))
    plan = VideoTrackPlan.from_encoding(encoding, fitted, source=models.TrackSource.SCREEN_SHARE)
    [request] = add_track_requests(None, None, plan, "v")
    assert (request.width, request.height, request.source) == (960, 540, models.TrackSource.SCREEN_SHARE)
    assert [layer.quality for layer in request.layers] == [LOW, HIGH]
    vp8 = VideoTrackPlan("vp8", fitted)
    assert add_track_requests(None, None, vp8, "v")[0].simulcast_codecs[0].codec == "vp8"
    # an ingress whose video source is unset (UNKNOWN) publishes as a camera, as livekit/ingress does
    assert VideoTrackPlan.from_encoding(encoding, source=models.TrackSource.UNKNOWN).source == models.TrackSource.CAMERA


def test_audio_request_stereo_and_dtx() -> None:
    stereo = AudioTrackPlan.from_encoding(audio_preset(IngressAudioEncodingPreset.OPUS_STEREO_96KBPS), name="mic")
    [request] = add_track_requests(stereo, "cid-a", None, None)
    assert (request.cid, request.name, request.type, request.source) == (
        "cid-a",
        "mic",
        models.TrackType.AUDIO,
        models.TrackSource.MICROPHONE,
    )
    assert request.stereo and not request.disable_dtx
    assert list(request.audio_features) == [models.AudioTrackFeature.TF_STEREO]

    mono = AudioTrackPlan(channels=1, bitrate=64_000, disable_dtx=True)
    [request] = add_track_requests(mono, "a", None, None)
    assert not request.stereo and request.disable_dtx
    assert list(request.audio_features) == [models.AudioTrackFeature.TF_NO_DTX]


def test_both_tracks_audio_first() -> None:
    plan = VideoTrackPlan("h264", (PlannedLayer(HIGH, 640, 360, 500_000),))
    requests = add_track_requests(AudioTrackPlan(), "a", plan, "v")
    assert [r.cid for r in requests] == ["a", "v"]
