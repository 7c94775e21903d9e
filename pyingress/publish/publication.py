"""What a session publishes and how the publisher reports on it: track plans, options, events, counters.

The track plans carry exactly what the pipeline encodes (codec, the layers fitted to the source); the AddTrackRequests
announcing them are built here.
"""

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Protocol, cast

from livekit.protocol import models, rtc

from pyingress.control.errors import IngressError
from pyingress.media.presets import AudioEncoding, VideoEncoding


class Layer(Protocol):
    """One encoded simulcast layer: presets' ``LayerSpec`` or the layer plan's ``PlannedLayer``."""

    @property
    def quality(self) -> int: ...  # livekit VideoQuality
    @property
    def width(self) -> int: ...
    @property
    def height(self) -> int: ...
    @property
    def bitrate(self) -> int: ...


@dataclass(frozen=True)
class VideoTrackPlan:
    """The one video track: its codec and exactly the layers the pipeline encodes."""

    codec: str  # "h264" (constrained baseline, Annex-B) | "vp8"
    layers: tuple[Layer, ...]
    name: str = ""
    source: int = models.TrackSource.CAMERA

    @classmethod
    def from_encoding(
        cls,
        encoding: VideoEncoding,
        layers: Sequence[Layer] | None = None,
        name: str = "",
        source: int = models.TrackSource.CAMERA,
    ) -> "VideoTrackPlan":
        """From the resolved encoding; ``layers`` are the ones fitted to the source when they differ."""
        codec = "vp8" if encoding.codec == models.VideoCodec.VP8 else "h264"
        return cls(codec, tuple(layers if layers is not None else encoding.layers), name, source or cls.source)

    @property
    def top(self) -> Layer:
        return max(self.layers, key=lambda layer: layer.quality)


@dataclass(frozen=True)
class AudioTrackPlan:
    channels: int = 2
    bitrate: int = 96_000
    disable_dtx: bool = False
    name: str = ""
    source: int = models.TrackSource.MICROPHONE

    @classmethod
    def from_encoding(
        cls, encoding: AudioEncoding, name: str = "", source: int = models.TrackSource.MICROPHONE
    ) -> "AudioTrackPlan":
        return cls(encoding.channels, encoding.bitrate, encoding.disable_dtx, name, source or cls.source)


@dataclass(frozen=True)
class PublisherOptions:
    max_late: float = 0.1  # frames later than this on the session clock are dropped (issue 6)
    resync_after: float = 0.5  # a track late this long re-anchors the clock (see pacing.py)
    max_lead: float = 5.0  # a frame due further ahead means a timestamp jump: re-anchor
    join_timeout: float = 15.0  # one join attempt: websocket, tracks published, offer/answer, connected
    publish_timeout: float = 60.0  # track watchdog: published within this, else retryable failure
    media_timeout: float = 60.0  # media watchdog: nothing written for this long → "source encoder not ready"
    max_rejoins: int = 3
    rejoin_backoff: float = 1.0  # seconds before the first rejoin, doubling: 1, 2, 4 s cover a server restart
    dynacast: bool = True
    # Hold each frame until its media time comes due on the session clock (pacing.py).  Off for pass-through:
    # its frames arrive paced by the publisher's own sender, and holding them only adds latency (measured with
    # bench/whip.py: p50 3.7 ms, p95 8.9 ms of a WHIP frame's 11 ms p95).  Late frames are still dropped.
    pace: bool = True
    # ICE: None = automatic.  A loopback ws_url gets host candidate 127.0.0.1 only and no STUN/TURN (they cannot
    # help there and would delay gathering); otherwise aioice's interfaces and the servers from the join.
    host_addresses: tuple[str, ...] | None = None
    use_server_ice_servers: bool | None = None


# Events reported through ``on_event``.


@dataclass(frozen=True)
class Published:
    """Tracks published and media flowing (the session is PUBLISHING); again after every rejoin."""

    room_sid: str
    room_name: str
    participant_sid: str
    audio_track_sid: str
    video_track_sid: str


@dataclass(frozen=True)
class Reconnecting:
    reason: str
    how: str  # "resume" | "rejoin"
    attempt: int


@dataclass(frozen=True)
class Disconnected:
    """The publisher ended: ``error`` None after ``close()``, else why (an IngressError to report)."""

    error: IngressError | None
    reason: str


PublisherEvent = Published | Reconnecting | Disconnected


@dataclass
class PublisherStats:
    frames_written: int = 0
    bytes_written: int = 0
    frames_sent: int = 0
    dropped_late: int = 0
    dropped_waiting_keyframe: int = 0
    dropped_paused: int = 0  # layers nobody subscribes to (dynacast)
    dropped_disconnected: int = 0  # no connected peer (joining, reconnecting)
    dropped_overflow: int = 0
    dropped_superseded: int = 0  # queued behind a keyframe a receiver asked for (sent first, they were moot)
    resyncs: int = 0
    resumes: int = 0
    rejoins: int = 0
    keyframe_requests: int = 0


def add_track_requests(
    audio: AudioTrackPlan | None, audio_cid: str | None, video: VideoTrackPlan | None, video_cid: str | None
) -> list[rtc.AddTrackRequest]:
    """AddTrackRequests for the tracks (protocol.md §5.3 step 3, shaped like the Go SDK's, §5.4).

    Audio: Opus from the microphone source unless named otherwise, stereo and DTX as configured (both the
    deprecated flags and ``audio_features``).  Video: the top layer's size, every layer in ``layers`` and once more
    in ``simulcast_codecs`` under the codec, one spatial layer per RTP stream.
    """
    requests = []
    if audio is not None and audio_cid:
        features = []
        if audio.channels > 1:
            features.append(models.AudioTrackFeature.TF_STEREO)
        if audio.disable_dtx:
            features.append(models.AudioTrackFeature.TF_NO_DTX)
        requests.append(
            rtc.AddTrackRequest(
                cid=audio_cid,
                name=audio.name,
                type=models.TrackType.AUDIO,
                source=cast(models.TrackSource, audio.source),
                disable_dtx=audio.disable_dtx,
                stereo=audio.channels > 1,
                audio_features=features,
            )
        )
    if video is not None and video_cid:
        layers = [
            models.VideoLayer(
                quality=cast(models.VideoQuality, layer.quality),
                width=layer.width,
                height=layer.height,
                bitrate=layer.bitrate,
            )
            for layer in sorted(video.layers, key=lambda layer: layer.quality)
        ]
        top = video.top
        requests.append(
            rtc.AddTrackRequest(
                cid=video_cid,
                name=video.name,
                type=models.TrackType.VIDEO,
                source=cast(models.TrackSource, video.source),
                width=top.width,
                height=top.height,
                layers=layers,
                simulcast_codecs=[
                    rtc.SimulcastCodec(
                        codec=video.codec,
                        cid=video_cid,
                        layers=layers,
                        video_layer_mode=models.VideoLayer.Mode.ONE_SPATIAL_LAYER_PER_STREAM,
                    )
                ],
            )
        )
    return requests
