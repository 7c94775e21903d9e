"""libsrt's statistics into Prometheus: what grew per sample, a reconnect counting from zero, series removed."""

from prometheus_client import REGISTRY

from pyingress.ingest.srt.libsrt import ReceiveStats
from pyingress.ingest.srt.stats import SrtStatsExport


def _stats(received: int, lost: int = 0, retransmitted: int = 0, rtt: float = 1.5) -> ReceiveStats:
    return ReceiveStats(
        packets_received=received,
        packets_lost=lost,
        packets_retransmitted=retransmitted,
        packets_dropped=0,
        packets_undecrypted=0,
        bytes_received=received * 1316,
        rtt_ms=rtt,
        receive_rate_mbps=5.0,
        receive_buffer_ms=118,
        latency_ms=120,
    )


def _value(name: str, **labels: str) -> float | None:
    return REGISTRY.get_sample_value(name, labels)


def test_counters_add_what_grew_across_connections_and_go_with_the_session() -> None:
    export = SrtStatsExport("RT_stats_test")
    export.update(_stats(100, lost=3, retransmitted=2))
    export.update(_stats(250, lost=5, retransmitted=4, rtt=2.5))
    export.connection_ended()
    export.update(_stats(40, lost=1))  # a new connection: libsrt's totals start again
    assert _value("pyingress_srt_packets_total", resource_id="RT_stats_test", kind="received") == 290
    assert _value("pyingress_srt_packets_total", resource_id="RT_stats_test", kind="lost") == 6
    assert _value("pyingress_srt_packets_total", resource_id="RT_stats_test", kind="retransmitted") == 4
    assert _value("pyingress_srt_rtt_ms", resource_id="RT_stats_test") == 1.5
    assert _value("pyingress_srt_receive_buffer_ms", resource_id="RT_stats_test") == 118
    assert export.totals["received"] == 290
    export.remove()
    export.remove()  # idempotent
    assert _value("pyingress_srt_packets_total", resource_id="RT_stats_test", kind="received") is None
    assert _value("pyingress_srt_rtt_ms", resource_id="RT_stats_test") is None
