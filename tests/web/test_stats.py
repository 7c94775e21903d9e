"""The session figures' arithmetic: rates of what the session fed over the last interval, the worker's counters over
a longer window (they arrive once a second), latency over the newest samples, layers with what is watched."""

from dataclasses import dataclass, field

from livekit.protocol.ingress import IngressInfo, IngressState, InputVideoState

from pyingress.media.events import PipelineStats, VideoLayersReady
from pyingress.media.latency import LatencyRecorder
from pyingress.media.layer_plan import PlannedLayer
from pyingress.web.stats import SessionSampler, session_stats


@dataclass
class _State:
    state: IngressState


@dataclass
class _Session:
    """The figures a running IngressSession exposes, set by hand."""

    info: IngressInfo
    resource_id: str
    state: _State
    received: dict[str, int] = field(default_factory=dict)
    counters: dict[str, int] = field(default_factory=dict)
    latency: LatencyRecorder | None = None
    video_output: VideoLayersReady | None = None
    active_layers: frozenset[int] | None = None
    progress: tuple[float, float | None] | None = None

    @property
    def pipeline_stats(self) -> PipelineStats:
        return PipelineStats(dict(self.counters))


def _session() -> _Session:
    state = IngressState(
        status=IngressState.ENDPOINT_PUBLISHING,
        video=InputVideoState(mime_type="video/H264", width=1280, height=720, framerate=30, average_bitrate=2_000_000),
    )
    layers = (PlannedLayer(0, 320, 180, 180_000), PlannedLayer(2, 1280, 720, 1_700_000))
    return _Session(
        IngressInfo(ingress_id="IN_a", room_name="r", participant_identity="p"),
        "RT_a",
        _State(state),
        latency=LatencyRecorder(),
        video_output=VideoLayersReady("h264", 30.0, 1280, 720, layers),
    )


def test_rates_between_samples() -> None:
    now = [100.0]
    sampler = SessionSampler(clock=lambda: now[0])
    session = _session()
    (first,) = sampler.sample([session])
    assert first["in"] is None and first["cpu_percent"] is None  # nothing to compare with yet
    video = {"codec": "video/H264", "width": 1280, "height": 720, "fps": 30, "bitrate": 2_000_000}
    assert first["input_video"] == video
    for step in range(1, 7):  # six intervals of 2 s: 1 MB/s of video, 30 packets/s, 300 ms CPU/s, 30 frames/s
        now[0] += 2.0
        session.received = {"bytes.video": 2_000_000 * step, "packets.video": 60 * step, "bytes.audio": 32_000 * step}
        # The worker reports once a second: its counters lag and step in whole seconds.
        session.counters = {"worker_cpu_ms": 600 * step - 300, "frames_out.HIGH": 60 * step - 30}
        (figures,) = sampler.sample([session])
    assert figures["in"] == {"video_bps": 8_000_000, "audio_bps": 128_000, "video_pps": 30.0}
    assert figures["cpu_percent"] == 30.0
    high, low = figures["output"]["layers"]
    assert (high["quality"], high["width"], high["fps"], high["watched"]) == ("HIGH", 1280, 30.0, None)
    assert low["fps"] is None  # the worker has not counted that layer's frames
    session.active_layers = frozenset({2})
    now[0] += 2.0
    (figures,) = sampler.sample([session])
    assert [layer["watched"] for layer in figures["output"]["layers"]] == [True, False]
    assert sampler.sample([]) == [] and sampler._history == {}  # an ended session is forgotten


def test_latency_over_the_newest_samples() -> None:
    session = _session()
    assert session.latency is not None
    for ms in [500.0] * 100 + [10.0] * 60:  # a start-up backlog, then steady
        session.latency.frame_out("HIGH", 0, int(ms * 1e6))
    assert session_stats(session)["latency"] == {"HIGH": {"p50_ms": 10.0, "p95_ms": 10.0}}


def test_progress_of_a_file_and_of_a_live_stream() -> None:
    session = _session()
    assert session_stats(session)["progress"] is None  # a push ingress says nothing of the kind
    session.progress = (12.345, 60.0)
    assert session_stats(session)["progress"] == {"position_s": 12.3, "duration_s": 60.0}
    session.progress = (7.0, None)
    assert session_stats(session)["progress"] == {"position_s": 7.0, "duration_s": None}
