"""The Prometheus totals: monotonic across sessions, restarts of a session's worker, and gauge-like counters."""

import re

from prometheus_client import REGISTRY

from pyingress import metrics
from pyingress.metrics import PipelineCounters, split_counter_name


def _total(name: str, track: str = "") -> float:
    value = REGISTRY.get_sample_value("pyingress_pipeline_events_total", {"name": name, "track": track})
    return value or 0.0


def test_counter_names_split_into_counter_and_track() -> None:
    assert split_counter_name("frames_out.HIGH") == ("frames_out", "HIGH")
    assert split_counter_name("late_frames_dropped.LOW") == ("late_frames_dropped", "LOW")
    assert split_counter_name("packets_before_keyframe") == ("packets_before_keyframe", "")
    assert split_counter_name("timeline.discontinuities") == ("timeline.discontinuities", "")


def test_sessions_add_what_grew_and_a_restarted_worker_counts_from_zero() -> None:
    base_frames, base_jumps = _total("frames_out", "HIGH"), _total("timeline.discontinuities")
    first, second = PipelineCounters(), PipelineCounters()
    first.update({"frames_out.HIGH": 30, "timeline.discontinuities": 1, "worker_max_rss_kb": 100_000})
    first.update({"frames_out.HIGH": 60, "timeline.discontinuities": 1, "worker_max_rss_kb": 90_000})
    second.update({"frames_out.HIGH": 10})
    first.update({"frames_out.HIGH": 5})  # a new worker after a reconnect: its 5 are new frames
    assert _total("frames_out", "HIGH") - base_frames == 60 + 10 + 5
    assert _total("timeline.discontinuities") - base_jumps == 1
    assert (
        REGISTRY.get_sample_value("pyingress_pipeline_events_total", {"name": "worker_max_rss_kb", "track": ""}) is None
    )


def test_the_module_docstring_lists_every_metric_it_registers() -> None:
    listed = set(re.findall(r"^\s+(pyingress_\w+)\{", metrics.__doc__ or "", re.MULTILINE))
    registered = {
        family.name + ("_total" if family.type == "counter" else "")
        for family in REGISTRY.collect()
        if family.name.startswith("pyingress_")
    }
    assert "pyingress_source_packets_dropped_total" in listed and "pyingress_source_keyframe_requests_total" in listed
    assert listed == registered
