"""A scrape of a `pyingress serve` /metrics page, as Prometheus would read it."""

import urllib.request

from prometheus_client.parser import text_string_to_metric_families

Metrics = dict[tuple[str, tuple[tuple[str, str], ...]], float]


def scrape(port: int) -> Metrics:
    """Every sample on ``http://127.0.0.1:port/metrics``, keyed by (name, sorted labels)."""
    with urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=5) as response:
        text = response.read().decode()
    return {
        (sample.name, tuple(sorted(sample.labels.items()))): sample.value
        for family in text_string_to_metric_families(text)
        for sample in family.samples
    }
