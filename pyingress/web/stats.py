"""What a running session is doing, for the dashboard's live figures: read from the session objects in memory, never
from the store, and turned into rates between two samples.

Per session: the input as the session measured it (codec, size, frame rate, and the bitrate and packet rate of the
last interval from the packets it fed), the output track (codec; per layer its size, target bitrate, frames per
second out and whether anyone watches it), the media worker's CPU (its own getrusage, as a share of one core),
the added latency packet in → frame out over the last samples (p50/p95 per output track), and for a URL ingress
how far its file has played (beyond the reference: IngressState has no field for it).
"""

import collections
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Protocol

from livekit.protocol.ingress import IngressInfo, IngressState

from pyingress.media.events import PipelineStats, VideoLayersReady
from pyingress.media.latency import LatencyRecorder, percentile
from pyingress.web.views import status_name

# Latency over the newest samples of each track: about two seconds of a 30 fps layer.
RECENT_SAMPLES = 60


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

    @property
    def received(self) -> Mapping[str, int]: ...

    @property
    def pipeline_stats(self) -> PipelineStats: ...

    @property
    def latency(self) -> LatencyRecorder | None: ...

    @property
    def video_output(self) -> VideoLayersReady | None: ...

    @property
    def active_layers(self) -> frozenset[int] | None: ...

    @property
    def progress(self) -> tuple[float, float | None] | None: ...


@dataclass(frozen=True)
class _Sample:
    at: float
    received: dict[str, int]
    counters: dict[str, int]


def _rate(now: Mapping[str, int], before: Mapping[str, int], name: str, seconds: float) -> float:
    return max(0, now.get(name, 0) - before.get(name, 0)) / seconds


def _input(state: IngressState) -> tuple[dict[str, Any] | None, dict[str, Any] | None]:
    video = audio = None
    if state.video.mime_type:
        video = {
            "codec": state.video.mime_type,
            "width": state.video.width,
            "height": state.video.height,
            "fps": round(state.video.framerate, 2),
            "bitrate": state.video.average_bitrate,
        }
    if state.audio.mime_type:
        audio = {
            "codec": state.audio.mime_type,
            "channels": state.audio.channels,
            "sample_rate": state.audio.sample_rate,
            "bitrate": state.audio.average_bitrate,
        }
    return video, audio


def _latency(recorder: LatencyRecorder | None) -> dict[str, dict[str, float]]:
    if recorder is None:
        return {}
    found = {}
    for track in recorder.tracks():
        recent = sorted(recorder.samples(track)[-RECENT_SAMPLES:])
        if recent:
            found[track] = {"p50_ms": round(percentile(recent, 0.5), 1), "p95_ms": round(percentile(recent, 0.95), 1)}
    return found


def _progress(progress: tuple[float, float | None] | None) -> dict[str, float | None] | None:
    """Media seconds played and the file's duration (None: live or not known)."""
    if progress is None:
        return None
    position, duration = progress
    return {"position_s": round(position, 1), "duration_s": None if duration is None else round(duration, 1)}


class SessionSampler:
    """Figures of the running sessions, with rates since earlier calls.

    What the session counts itself (packets and bytes fed) is exact at any moment: its rates cover the interval
    since the previous call.  The pipeline's counters come from its worker once a second, so over one 2 s interval
    they would alias (one, two or three reports' worth); their rates cover the ``WORKER_WINDOW`` oldest samples
    kept instead, which bounds that error to a tenth."""

    WORKER_WINDOW = 5  # intervals: 10 s at one call per 2 s

    def __init__(self, clock: Callable[[], float] = time.monotonic) -> None:
        self._clock = clock
        self._history: dict[str, collections.deque[_Sample]] = {}

    def sample(self, sessions: Sequence[RunningSession]) -> list[dict[str, Any]]:
        now = self._clock()
        figures = []
        history: dict[str, collections.deque[_Sample]] = {}
        for session in sessions:
            sample = _Sample(now, dict(session.received), dict(session.pipeline_stats.counters))
            kept = self._history.get(session.resource_id) or collections.deque(maxlen=self.WORKER_WINDOW)
            figures.append(self._figures(session, sample, kept[-1] if kept else None, kept[0] if kept else None))
            kept.append(sample)
            history[session.resource_id] = kept
        self._history = history  # ended sessions are forgotten
        return figures

    def _figures(
        self, session: RunningSession, now: _Sample, before: _Sample | None, oldest: _Sample | None
    ) -> dict[str, Any]:
        video, audio = _input(session.state.state)
        seconds = now.at - before.at if before is not None else 0.0
        rates = before is not None and seconds > 0.2
        worker_seconds = now.at - oldest.at if oldest is not None else 0.0
        figures: dict[str, Any] = {
            "ingress_id": session.info.ingress_id,
            "resource_id": session.resource_id,
            "room": session.info.room_name,
            "identity": session.info.participant_identity,
            "status": status_name(session.state.state.status),
            "input_video": video,
            "input_audio": audio,
            "in": None,
            "output": None,
            "cpu_percent": None,
            "latency": _latency(session.latency),
            "viewers": None,
            "progress": _progress(session.progress),
        }
        if rates and before is not None:
            r, b = now.received, before.received
            figures["in"] = {
                "video_bps": round(_rate(r, b, "bytes.video", seconds) * 8),
                "audio_bps": round(_rate(r, b, "bytes.audio", seconds) * 8),
                "video_pps": round(_rate(r, b, "packets.video", seconds), 1),
            }
        if oldest is not None and worker_seconds > 0.2 and "worker_cpu_ms" in now.counters:
            cpu = _rate(now.counters, oldest.counters, "worker_cpu_ms", worker_seconds) / 10  # ms/s → % of a core
            figures["cpu_percent"] = round(cpu, 1)
        output = session.video_output
        if output is not None:
            active = session.active_layers
            layers = []
            for layer in sorted(output.layers, key=lambda planned: -planned.quality):
                name = layer.quality_name
                fps = None
                if oldest is not None and worker_seconds > 0.2:
                    fps = _rate(now.counters, oldest.counters, f"frames_out.{name}", worker_seconds)
                layers.append(
                    {
                        "quality": name,
                        "width": layer.width,
                        "height": layer.height,
                        "bitrate": layer.bitrate,
                        "fps": None if fps is None or f"frames_out.{name}" not in now.counters else round(fps, 1),
                        "watched": None if active is None else layer.quality in active,
                    }
                )
            figures["output"] = {"codec": output.codec, "layers": layers}
        return figures


def session_stats(session: RunningSession) -> dict[str, Any]:
    """One session's figures without rates (a page that just connected gets the rest at the next tick)."""
    return SessionSampler()._figures(session, _Sample(0.0, {}, {}), None, None)
