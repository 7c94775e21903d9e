"""The StartIngress bid of a livekit-mode worker: its spare CPUs after the session, or −1 when it should not get
the URL ingress (draining or stopping, no pull door for the scheme, not enough CPU, not a URL ingress)."""

from dataclasses import dataclass, field
from types import SimpleNamespace
from typing import Any

import pytest
from livekit.protocol.ingress import IngressInfo, IngressInput, IngressState

from pyingress.config import Config, CpuCostConfig, RedisConfig
from pyingress.control.admission import Admission, CpuAdmission
from pyingress.control.livekit_plane import BusSessionRegistry, LivekitControlPlane, open_livekit_control
from pyingress.control.psrpc import messages


@dataclass
class Sessions:
    """The parts of the session manager the plane uses: a pull started for ingress ids, states it reports."""

    admission: Admission
    accepting: bool = True
    pull_doors: dict[str, Any] = field(default_factory=lambda: {"http": object(), "https": object()})
    started: list[str] = field(default_factory=list)
    running: dict[str, Any] = field(default_factory=dict)

    async def start_pull(self, info: IngressInfo) -> None:
        self.started.append(info.ingress_id)
        state = IngressState(status=IngressState.ENDPOINT_BUFFERING, resource_id=f"UR_{len(self.started)}")
        self.running[info.ingress_id] = SimpleNamespace(state=SimpleNamespace(snapshot=lambda: state))

    def session_of(self, ingress_id: str) -> Any:
        return self.running.get(ingress_id)


def _plane(cpus: float = 2.0, reserved: float = 0.0) -> tuple[LivekitControlPlane, Sessions]:
    costs = CpuCostConfig(url_cpu_cost=0.8, min_idle_ratio=0.3)
    capacity = CpuAdmission(costs, cpus=cpus)
    if reserved:
        capacity.reserve("RT_busy", reserved)
    # Nothing connects until start(): the bus and client are only built.
    bus, control = open_livekit_control(Config(mode="livekit", redis=RedisConfig(address="127.0.0.1:1")))
    sessions = Sessions(Admission(control, capacity))
    return LivekitControlPlane(bus, control, BusSessionRegistry(), sessions), sessions  # type: ignore[arg-type]


def _bid(plane: LivekitControlPlane, url: str = "http://media/clip.mp4", kind: int = IngressInput.URL_INPUT) -> float:
    return plane._start_affinity(messages.StartIngressRequest(info=IngressInfo(input_type=kind, url=url)))


def test_an_idle_worker_bids_its_spare_cpus_after_the_session() -> None:
    plane, _ = _plane(cpus=2.0)
    assert _bid(plane) == pytest.approx(2.0 * (1 - 0.15) - 0.8)  # capacity 1.7, the session's 0.8 out


def test_a_worker_that_should_not_take_it_does_not_bid() -> None:
    plane, sessions = _plane(cpus=2.0, reserved=1.0)  # 0.7 left < 0.8
    assert _bid(plane) == -1
    plane, sessions = _plane(cpus=2.0)
    assert _bid(plane, url="srt://host:9000") == -1  # no pull door for srt here
    assert _bid(plane, kind=IngressInput.RTMP_INPUT) == -1
    sessions.accepting = False  # SIGTERM drain
    assert _bid(plane) == -1


def test_a_session_that_fits_exactly_still_bids_above_zero() -> None:
    # psrpc only takes bids above 0: a worker that can take it must not bid 0.
    plane, _ = _plane(cpus=2.0, reserved=0.9)  # 0.8 left, exactly the cost
    assert 0 < _bid(plane) < 0.01


async def test_a_retried_start_of_an_ingress_already_running_here_answers_its_state_again() -> None:
    plane, sessions = _plane()
    request = messages.StartIngressRequest(info=IngressInfo(ingress_id="IN_u", input_type=IngressInput.URL_INPUT))
    first = await plane._start_ingress(request)
    again = await plane._start_ingress(request)
    assert sessions.started == ["IN_u"]
    assert first.state.resource_id == again.state.resource_id == "UR_1"
