"""LiveKit's node metrics for this ingress node, computed at each scrape (reference ingress.md §7, §4):

    livekit_node_cpu_load{node_id,node_type="INGRESS"}             1 − idle/total CPU since the last scrape
    livekit_ingress_available{node_id}                             1 while a session of any kind would be taken
    livekit_ingress_requests{node_id,type,transcoding}             sessions running, by input and transcoding
    livekit_ingress_publish_status{node_id,type,status}            publishes admitted or refused, since start

Names, labels and meanings are livekit/ingress's, so a board or the helm chart's autoscaling built for it works
unchanged.  ``livekit_ingress_publish_status`` is a Go counter without the ``_total`` suffix the Python client would
add to a counter, so it is exposed untyped under the exact name.  The packet latency histogram is in metrics.py.

Availability follows livekit/ingress: the node is available while it is not draining and the CPUs left after the
reserved sessions and the full ``min_idle_ratio`` exceed the costliest session kind (push admission itself keeps
only half the ratio free: a publisher that already arrived is worth taking).
"""

from collections.abc import Callable, Iterator, Mapping, Sequence
from typing import Protocol

from livekit.protocol.ingress import IngressInfo, IngressInput
from prometheus_client import REGISTRY
from prometheus_client.core import GaugeMetricFamily, Metric, UnknownMetricFamily
from prometheus_client.registry import Collector

from pyingress.control.admission import CpuAdmission
from pyingress.control.transcoding import is_transcoded

TYPES = {IngressInput.RTMP_INPUT: "rtmp", IngressInput.WHIP_INPUT: "whip", IngressInput.URL_INPUT: "url"}
PUBLISH_STATUSES = ("success", "4xx", "5xx", "internal")


class RunningSession(Protocol):
    @property
    def info(self) -> IngressInfo: ...


class Sessions(Protocol):
    """What the node metrics read of the session manager."""

    @property
    def publish_outcomes(self) -> Mapping[tuple[int, str], int]: ...

    @property
    def accepting(self) -> bool: ...

    def running_sessions(self) -> Sequence[RunningSession]: ...


def read_proc_stat() -> tuple[int, int]:
    """(idle, total) CPU ticks of the whole machine since boot (idle includes iowait, as ``top`` counts it)."""
    with open("/proc/stat") as stat:
        fields = [int(value) for value in stat.readline().split()[1:]]
    return fields[3] + fields[4], sum(fields[:8])


class CpuLoad:
    """The machine's CPU load between two readings: 1 − idle/total (LiveKit's ``livekit_node_cpu_load``)."""

    def __init__(self, read: Callable[[], tuple[int, int]] = read_proc_stat) -> None:
        self._read = read
        self._last = read()

    def sample(self) -> float:
        idle, total = self._read()
        last_idle, last_total = self._last
        self._last = (idle, total)
        if total <= last_total:
            return 0.0
        return max(0.0, min(1.0, 1 - (idle - last_idle) / (total - last_total)))


class NodeMetrics(Collector):
    """A service component: registered with the process's Prometheus registry while the service runs."""

    def __init__(self, node_id: str, sessions: Sessions, capacity: CpuAdmission, cpu: CpuLoad | None = None) -> None:
        self.node_id = node_id
        self.sessions = sessions
        self.capacity = capacity
        self.cpu = cpu or CpuLoad()

    def available(self) -> bool:
        costs = self.capacity.costs
        largest = max(
            costs.rtmp_cpu_cost, costs.whip_cpu_cost, costs.whip_bypass_transcoding_cpu_cost, costs.url_cpu_cost
        )
        free = self.capacity.cpus * (1 - costs.min_idle_ratio) - self.capacity.used
        return self.sessions.accepting and free > largest

    def collect(self) -> Iterator[Metric]:
        node = [self.node_id]
        cpu = GaugeMetricFamily("livekit_node_cpu_load", "CPU load of the node", labels=["node_id", "node_type"])
        cpu.add_metric([self.node_id, "INGRESS"], self.cpu.sample())
        yield cpu
        available = GaugeMetricFamily(
            "livekit_ingress_available", "1 while the node takes sessions", labels=["node_id"]
        )
        available.add_metric(node, 1.0 if self.available() else 0.0)
        yield available
        running = {(kind, transcoding): 0 for kind in TYPES.values() for transcoding in ("true", "false")}
        for session in self.sessions.running_sessions():
            kind = TYPES.get(session.info.input_type)
            if kind is not None:
                running[(kind, "true" if is_transcoded(session.info) else "false")] += 1
        requests = GaugeMetricFamily(
            "livekit_ingress_requests", "Ingress sessions running", labels=["node_id", "type", "transcoding"]
        )
        for (kind, transcoding), count in sorted(running.items()):
            requests.add_metric([self.node_id, kind, transcoding], count)
        yield requests
        published = UnknownMetricFamily(
            "livekit_ingress_publish_status", "Publishes by outcome (a counter)", labels=["node_id", "type", "status"]
        )
        outcomes = self.sessions.publish_outcomes
        for input_type in (IngressInput.RTMP_INPUT, IngressInput.WHIP_INPUT):
            for status in PUBLISH_STATUSES:
                published.add_metric([self.node_id, TYPES[input_type], status], outcomes.get((input_type, status), 0))
        yield published

    async def start(self) -> None:
        REGISTRY.register(self)

    async def close(self) -> None:
        REGISTRY.unregister(self)
