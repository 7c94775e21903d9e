"""LiveKit's node metrics: the CPU load arithmetic and the availability rule (reference ingress.md §4, §7)."""

from collections.abc import Mapping, Sequence

from livekit.protocol.ingress import IngressInput

from pyingress.config import CpuCostConfig
from pyingress.control.admission import CpuAdmission
from pyingress.node_metrics import CpuLoad, NodeMetrics, RunningSession, read_proc_stat


class _Sessions:
    """The manager's counters as node metrics read them (the manager itself is tested in tests/session)."""

    def __init__(self) -> None:
        self.accepting = True
        self.publish_outcomes: Mapping[tuple[int, str], int] = {(IngressInput.RTMP_INPUT, "success"): 2}

    def running_sessions(self) -> Sequence[RunningSession]:
        return []


def test_cpu_load_is_the_busy_share_between_two_readings() -> None:
    readings = iter([(100, 1000), (150, 1200), (150, 1200)])
    load = CpuLoad(lambda: next(readings))
    assert load.sample() == 0.75  # 200 ticks, 50 of them idle
    assert load.sample() == 0.0  # no ticks passed: nothing to say


def test_the_real_proc_stat_reads() -> None:
    idle, total = read_proc_stat()
    assert 0 < idle < total


def test_available_needs_room_for_the_costliest_session_beyond_the_full_idle_ratio() -> None:
    capacity = CpuAdmission(CpuCostConfig(), cpus=2.0)  # 2 × (1 − 0.3) = 1.4 CPUs for sessions; the dearest: 0.8
    sessions = _Sessions()
    node = NodeMetrics("NE_test", sessions, capacity, CpuLoad(lambda: (0, 0)))
    assert node.available()
    capacity.reserve("RT_one", 0.8)
    assert not node.available()  # 0.6 left: a second RTMP session would still be admitted (half ratio), not sought
    capacity.release("RT_one")
    sessions.accepting = False  # draining
    assert not node.available()
