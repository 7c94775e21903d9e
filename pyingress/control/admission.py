"""CPU admission: each session reserves the CPUs its kind costs; a session that does not fit is refused.

livekit/ingress measures idle CPU and keeps ``min_idle_ratio`` of the machine free (half of it for push
sessions, which have already arrived).  We reserve measured per-session costs instead of sampling load, so a
burst of publishers cannot all slip in before the load of the first shows up.
"""

import os
from dataclasses import dataclass, field

from livekit.protocol.ingress import IngressInfo, IngressInput

from pyingress.config import CpuCostConfig
from pyingress.control.errors import SERVER_CAPACITY_EXCEEDED
from pyingress.control.transcoding import is_transcoded


def session_cost(info: IngressInfo, costs: CpuCostConfig) -> float:
    if info.input_type == IngressInput.WHIP_INPUT:
        return costs.whip_cpu_cost if is_transcoded(info) else costs.whip_bypass_transcoding_cpu_cost
    if info.input_type == IngressInput.URL_INPUT:
        return costs.url_cpu_cost
    return costs.rtmp_cpu_cost


@dataclass
class CpuAdmission:
    costs: CpuCostConfig
    cpus: float = field(default_factory=lambda: float(len(os.sched_getaffinity(0))))
    reserved: dict[str, float] = field(default_factory=dict)  # resource id → CPUs

    @property
    def capacity(self) -> float:
        # Push sessions keep half of min_idle_ratio free, as livekit/ingress does for arrived publishers.
        return self.cpus * (1 - self.costs.min_idle_ratio / 2)

    @property
    def used(self) -> float:
        return sum(self.reserved.values())

    def check(self, cost: float) -> None:
        if self.used + cost > self.capacity + 1e-9:
            raise SERVER_CAPACITY_EXCEEDED

    def reserve(self, resource_id: str, cost: float) -> None:
        self.check(cost)
        self.reserved[resource_id] = cost

    def release(self, resource_id: str) -> None:
        self.reserved.pop(resource_id, None)
