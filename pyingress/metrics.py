"""Prometheus metrics, served at ``/metrics`` on ``prometheus_port``: what an operator graphs and alerts on.

    pyingress_sessions{input}                          sessions running now, by input (RTMP_INPUT, …)
    pyingress_sessions_ended_total{input,result}       sessions ended, by how: ok or error
    pyingress_pipeline_events_total{name,track}        the media pipeline's counters summed over every session:
                                                       timeline discontinuities and wraparounds, frames out and
                                                       dropped late per layer, forced keyframes, worker CPU, …;
                                                       the room publisher's as room_*: frames_sent, the pacer's
                                                       dropped_late and resyncs, dropped_overflow, …
    pyingress_source_packets_dropped_total{input,kind} packets a front door dropped because the session fell
                                                       behind (RTP doors only: TCP doors push back instead)
    pyingress_source_keyframe_requests_total{input}    keyframes asked of senders, by the pipeline, the room or
                                                       a dropped layer (counted also when the door cannot ask)
    pyingress_srt_packets_total{resource_id,kind}      libsrt's receive counters per SRT session (listener or
                                                       caller): received, lost, retransmitted, dropped (too late
                                                       to play), undecrypted
    pyingress_srt_rtt_ms{resource_id}                  SRT round-trip time, per session while connected
    pyingress_srt_receive_buffer_ms{resource_id}       media waiting in libsrt's receive buffer (≈ the latency)
    pyingress_whip_rtp_total{event}                    WHIP's RTP receive path over every publisher: packets,
                                                       nacked (sequence numbers asked again), recovered (arrived
                                                       after a NACK), lost (given up), keyframe_requests (PLI/FIR
                                                       sent), frames_dropped (broken, or awaiting a keyframe)

LiveKit's own, by its names and labels (reference ingress.md §7), for boards and autoscalers built for
livekit/ingress:

    livekit_ingress_packet_latency_seconds{track,ingress_type}  packet in → encoded frame out, LiveKit's buckets
    livekit_node_cpu_load, livekit_ingress_available, livekit_ingress_requests, livekit_ingress_publish_status
                                                       per node, computed at each scrape (node_metrics.py)

``input`` is the IngressInput name on the session metrics, and on the source metrics the front door's protocol
(rtmp, rtmps, whip, …): what a ``MediaSource`` knows of itself.

The pipeline reports cumulative counters per session (``PipelineStats``); ``PipelineCounters`` turns each
session's report into increments, so the process-wide totals stay monotonic as sessions come and go.
"""

from collections.abc import Mapping

from prometheus_client import Counter, Gauge, Histogram

SESSIONS = Gauge("pyingress_sessions", "Ingress sessions running now", ["input"])
SESSIONS_ENDED = Counter("pyingress_sessions_ended", "Ingress sessions ended", ["input", "result"])
PIPELINE_EVENTS = Counter(
    "pyingress_pipeline_events",
    "Media pipeline counters summed over sessions (name: the counter; track: the layer or kind it is about, if any)",
    ["name", "track"],
)

SOURCE_PACKETS_DROPPED = Counter(
    "pyingress_source_packets_dropped",
    "Packets a front door dropped because its session fell behind (kind: audio or video)",
    ["input", "kind"],
)
SOURCE_KEYFRAME_REQUESTS = Counter(
    "pyingress_source_keyframe_requests", "Keyframes asked of senders, whether or not the door can ask", ["input"]
)

# libsrt's own statistics (srt_bistats), per SRT session: ingest/srt/stats.py feeds them from the SRT threads.
SRT_PACKETS = Counter(
    "pyingress_srt_packets",
    "SRT data packets per session (kind: received, lost, retransmitted, dropped, undecrypted)",
    ["resource_id", "kind"],
)
SRT_RTT = Gauge("pyingress_srt_rtt_ms", "SRT round-trip time per session (ms)", ["resource_id"])
SRT_RECEIVE_BUFFER = Gauge(
    "pyingress_srt_receive_buffer_ms", "Media in libsrt's receive buffer per session (ms)", ["resource_id"]
)

# WHIP publishers' RTP, summed (ingest/whip/receiver.py adds each publisher's growth once a second).
WHIP_RTP = Counter("pyingress_whip_rtp", "WHIP RTP receive events over every publisher", ["event"])

# 5 ms doubling to ~10 s: livekit/ingress's buckets (0.005 · 2^k, k = 0..11).
LATENCY_BUCKETS = tuple(0.005 * 2**k for k in range(12))
PACKET_LATENCY = Histogram(
    "livekit_ingress_packet_latency_seconds",
    "Packet in to encoded frame out, per output track (audio, HIGH, MEDIUM, LOW) and input type",
    ["track", "ingress_type"],
    buckets=LATENCY_BUCKETS,
)

_TRACKS = frozenset({"video", "audio", "LOW", "MEDIUM", "HIGH"})
_NOT_MONOTONIC = frozenset({"worker_max_rss_kb"})


def split_counter_name(key: str) -> tuple[str, str]:
    """``frames_out.HIGH`` → (``frames_out``, ``HIGH``); ``timeline.discontinuities`` → (that, "")."""
    name, _, track = key.rpartition(".")
    return (name, track) if name and track in _TRACKS else (key, "")


class PipelineCounters:
    """One session's view: feed it every stats report, it adds what grew since the last one."""

    def __init__(self) -> None:
        self._last: dict[str, int] = {}

    def update(self, counters: Mapping[str, int]) -> None:
        for key, value in counters.items():
            if key in _NOT_MONOTONIC:
                continue
            last = self._last.get(key, 0)
            grew = value - last if value >= last else value  # a new worker (reconnect) starts from zero again
            self._last[key] = value
            if grew > 0:
                PIPELINE_EVENTS.labels(*split_counter_name(key)).inc(grew)
