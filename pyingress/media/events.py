"""What the pipeline tells its session, besides frames: tracks to publish, input state, stats, failure, end.

Events cross the worker-process boundary as JSON (never pickle: a compromised decoder must not be able to run
code in the parent), so each event is a small frozen dataclass of plain values.
"""

import json
from dataclasses import asdict, dataclass, field
from typing import Any

from pyingress.media.input_state import InputAudio, InputVideo
from pyingress.media.layer_plan import PlannedLayer


@dataclass(frozen=True)
class VideoLayersReady:
    """The first video frame was decoded: publish one video track with these simulcast layers (LOW→HIGH)."""

    codec: str  # "h264" or "vp8"
    frame_rate: float  # the cap; the output is at most this
    source_width: int  # display size the layers were fitted to
    source_height: int
    layers: tuple[PlannedLayer, ...]


@dataclass(frozen=True)
class AudioTrackReady:
    codec: str  # "opus"
    channels: int
    bitrate: int
    disable_dtx: bool
    sample_rate: int = 48_000


@dataclass(frozen=True)
class InputStateChanged:
    video: InputVideo | None
    audio: InputAudio | None


@dataclass(frozen=True)
class PipelineStats:
    """Counters since the start, named ``what`` or ``what.track`` (track: video, audio, LOW, MEDIUM, HIGH)."""

    counters: dict[str, int] = field(default_factory=dict)

    def get(self, name: str) -> int:
        return self.counters.get(name, 0)


@dataclass(frozen=True)
class StatsUpdated:
    stats: PipelineStats
    video: InputVideo | None = None  # with the running average bitrate
    audio: InputAudio | None = None


@dataclass(frozen=True)
class UpstreamKeyframeNeeded:
    """Pass-through only: a layer needs an IDR and only the publisher can make one (the session asks the source)."""

    quality: int | None  # the publisher's layer (VideoQuality, as StreamDescription.layer); None: its only layer


@dataclass(frozen=True)
class PipelineFailed:
    message: str


@dataclass(frozen=True)
class SpliceReached:
    """URL pull: the media reached an MPEG-TS SCTE-35 splice_insert (at its splice time, or at once when
    immediate); the session sets ``ingress.outOfNetwork.eventID`` from it (ingest/pull/scte35.py)."""

    event_id: int  # splice_event_id, 32 bits
    out_of_network: bool  # False: back into the network, or the event cancelled


@dataclass(frozen=True)
class PipelineEnded:
    """Everything pushed before ``end()`` has been delivered."""


PipelineEvent = (
    VideoLayersReady
    | AudioTrackReady
    | InputStateChanged
    | StatsUpdated
    | UpstreamKeyframeNeeded
    | PipelineFailed
    | SpliceReached
    | PipelineEnded
)


def event_to_json(event: PipelineEvent) -> bytes:
    return json.dumps({"type": type(event).__name__, **asdict(event)}).encode()


def _video(raw: dict[str, Any] | None) -> InputVideo | None:
    return InputVideo(**raw) if raw is not None else None


def _audio(raw: dict[str, Any] | None) -> InputAudio | None:
    return InputAudio(**raw) if raw is not None else None


def event_from_json(data: bytes) -> PipelineEvent:
    raw = json.loads(data)
    if not isinstance(raw, dict):  # the worker is not trusted: a JSON number is not an event (found by fuzzing)
        raise ValueError(f"a pipeline event is a JSON object, not {type(raw).__name__}")
    kind = raw.pop("type")
    if kind == "VideoLayersReady":
        raw["layers"] = tuple(PlannedLayer(**layer) for layer in raw["layers"])
        return VideoLayersReady(**raw)
    if kind == "AudioTrackReady":
        return AudioTrackReady(**raw)
    if kind == "InputStateChanged":
        return InputStateChanged(_video(raw["video"]), _audio(raw["audio"]))
    if kind == "StatsUpdated":
        return StatsUpdated(PipelineStats(raw["stats"]["counters"]), _video(raw["video"]), _audio(raw["audio"]))
    if kind == "UpstreamKeyframeNeeded":
        return UpstreamKeyframeNeeded(raw["quality"])
    if kind == "PipelineFailed":
        return PipelineFailed(raw["message"])
    if kind == "SpliceReached":
        event_id, out = raw["event_id"], raw["out_of_network"]
        if type(event_id) is not int or not 0 <= event_id < 1 << 32 or type(out) is not bool:
            raise ValueError("SpliceReached: event_id is a 32-bit count, out_of_network a boolean")
        return SpliceReached(event_id, out)
    if kind == "PipelineEnded":
        return PipelineEnded()
    raise ValueError(f"unknown pipeline event {kind!r}")
