"""libsrt's statistics of one SRT session into Prometheus (metrics.py: pyingress_srt_*), from the SRT threads.

prometheus_client's metrics are thread-safe, so the reading thread updates them directly; nothing crosses to the
event loop.  libsrt's counters are totals per connection: a reconnect starts them from zero again, so what grew
since the last sample is added, as ``metrics.PipelineCounters`` does for the pipeline.
"""

import contextlib

from pyingress.ingest.srt.libsrt import ReceiveStats
from pyingress.metrics import SRT_PACKETS, SRT_RECEIVE_BUFFER, SRT_RTT

KINDS = ("received", "lost", "retransmitted", "dropped", "undecrypted")


def _counts(stats: ReceiveStats) -> tuple[int, ...]:
    return (
        stats.packets_received,
        stats.packets_lost,
        stats.packets_retransmitted,
        stats.packets_dropped,
        stats.packets_undecrypted,
    )


class SrtStatsExport:
    def __init__(self, resource_id: str) -> None:
        self.resource_id = resource_id
        self._last = (0,) * len(KINDS)
        self.totals = dict.fromkeys(KINDS, 0)  # over every connection of the session, for logs and tests

    def update(self, stats: ReceiveStats) -> None:
        counts = _counts(stats)
        for kind, value, last in zip(KINDS, counts, self._last, strict=True):
            grew = value - last if value >= last else value  # a new connection counts from zero
            if grew > 0:
                SRT_PACKETS.labels(self.resource_id, kind).inc(grew)
                self.totals[kind] += grew
        self._last = counts
        SRT_RTT.labels(self.resource_id).set(stats.rtt_ms)
        SRT_RECEIVE_BUFFER.labels(self.resource_id).set(stats.receive_buffer_ms)

    def connection_ended(self) -> None:
        """The next sample comes from a new connection, whose counters start at zero."""
        self._last = (0,) * len(KINDS)

    def remove(self) -> None:
        """The session is over: its series go (per-session labels must not pile up)."""
        for metric in (SRT_RTT, SRT_RECEIVE_BUFFER):
            with contextlib.suppress(KeyError):
                metric.remove(self.resource_id)
        for kind in KINDS:
            with contextlib.suppress(KeyError):
                SRT_PACKETS.remove(self.resource_id, kind)
