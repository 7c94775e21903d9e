"""The one place that decides what runs: the service built from its config.

    room connection → control plane (for the mode) → media workers → session manager → front doors

Each part gets what it needs through its constructor; nothing is set on the service afterwards, and nothing below
this module imports it.  A mode that is not built yet is refused here, before anything starts, with a message
that names it.
"""

from pyingress.config import Config, ConfigError
from pyingress.control.admission import Admission, CpuAdmission
from pyingress.control.ids import new_node_id
from pyingress.control.standalone import StandaloneControlPlane, open_standalone_control
from pyingress.control.state import SessionRegistry
from pyingress.ingest.door import FrontDoor
from pyingress.ingest.pull.door import PullSettings, UrlPullDoor
from pyingress.ingest.rtmp.front_door import RtmpFrontDoor
from pyingress.ingest.srt.caller import SrtPullDoor, SrtPullSettings
from pyingress.ingest.srt.front_door import SrtFrontDoor
from pyingress.ingest.whip.front_door import WhipFrontDoor
from pyingress.media.launcher import WorkerLauncher, default_launcher
from pyingress.node_metrics import NodeMetrics
from pyingress.room_server import RoomConnection, RoomServerOptions
from pyingress.service import IngressService
from pyingress.session.manager import PullDoor, SessionManager
from pyingress.web.dashboard import Dashboard
from pyingress.web.progress import ProgressApi

# The modes pyingress runs in today; config.py knows every mode a config may name.
BUILT_MODES = ("standalone", "livekit")


class MediaWorkers:
    """The zygote that forks each transcoded session's worker: started first, so PyAV is imported once, before
    the first publisher waits for it (milliseconds per session instead of a new interpreter)."""

    def __init__(self, launcher: WorkerLauncher) -> None:
        self.launcher = launcher

    async def start(self) -> None:
        self.launcher.start()

    async def close(self) -> None:
        self.launcher.close()


def room_connection(config: Config) -> RoomConnection:
    rs = config.room_server
    local = RoomServerOptions(
        port=rs.port,
        rtc_tcp_port=rs.rtc_tcp_port,
        rtc_udp_port=rs.rtc_udp_port,
        api_key=config.api_key,
        api_secret=config.api_secret,
        rtmp_base_url=config.default_rtmp_base_url,
        whip_base_url=config.default_whip_base_url,
        binary=rs.binary,
    )
    return RoomConnection(config.ws_url, local)


def push_doors(config: Config, sessions: SessionManager) -> list[FrontDoor]:
    doors: list[FrontDoor] = []
    if RtmpFrontDoor.wanted(config):
        doors.append(RtmpFrontDoor(config, sessions))
    if WhipFrontDoor.wanted(config):
        doors.append(WhipFrontDoor(config, sessions))
    if SrtFrontDoor.wanted(config):
        doors.append(SrtFrontDoor(config, sessions))
    return doors


def pull_doors(config: Config) -> dict[str, PullDoor]:
    """URL scheme → the door that pulls it: files and HLS over HTTP(S), a demux worker per ingress; SRT in caller
    mode, a thread per ingress."""
    door = UrlPullDoor(PullSettings.from_config(config))
    doors: dict[str, PullDoor] = dict.fromkeys(UrlPullDoor.schemes, door)
    doors["srt"] = SrtPullDoor(SrtPullSettings.from_config(config))
    return doors


def dashboard(
    config: Config,
    plane: StandaloneControlPlane,
    sessions: SessionManager,
    room: RoomConnection,
    doors: list[FrontDoor],
) -> Dashboard:
    """The web dashboard at ``/`` of the HTTP listener (standalone only: in livekit mode the records are
    livekit-server's and so is the place to manage them)."""
    addresses = [address for door in doors for address in door.addresses()]
    return Dashboard(config, plane.api, plane.control.changes, sessions, room, addresses)


def progress_api(config: Config, sessions: SessionManager) -> ProgressApi:
    """How far a file has played, for ``pyingress ingress watch`` (IngressState has no field for it)."""
    return ProgressApi(sessions, {config.api_key: config.api_secret} if config.api_key else {})


def build_service(config: Config) -> IngressService:
    """The service for ``config``; raises ConfigError for a mode that cannot run yet."""
    if config.mode not in BUILT_MODES:
        raise ConfigError(
            f"mode: {config.mode!r} is not available yet; pyingress runs as {' or '.join(BUILT_MODES)} "
            "(the livekit mode, as livekit-server's ingress worker over Redis, is in progress)"
        )
    if config.mode == "livekit":
        return build_livekit_worker(config)
    room = room_connection(config)
    control = open_standalone_control(config)
    try:
        registry = SessionRegistry()
        capacity = CpuAdmission(config.cpu_cost)
        sessions = SessionManager(
            config,
            control,
            registry,
            Admission(control, capacity),
            room,
            pull_doors=pull_doors(config),
        )
        plane = StandaloneControlPlane.around(
            config, control, registry, start_pull=sessions.start_pull if sessions.pulls else None
        )
        node_id = config.node_id or new_node_id()
        doors = push_doors(config, sessions)
        return IngressService(
            config,
            node_id=node_id,
            room=room,
            control_plane=plane,
            workers=MediaWorkers(default_launcher()),
            sessions=sessions,
            node=NodeMetrics(node_id, sessions, capacity),
            front_doors=doors,
            http_parts=[dashboard(config, plane, sessions, room, doors), progress_api(config, sessions)]
            if config.whip_port > 0
            else [],
        )
    except BaseException:  # e.g. an RTMPS certificate that does not load: the store opened above is closed
        control.store.close()
        raise


def build_livekit_worker(config: Config) -> IngressService:
    """livekit mode: one of livekit-server's ingress workers.  livekit-server owns the records (psrpc over its
    Redis, ``control/livekit_plane.py``); no local store, no Ingress API here; the sessions and doors are the
    standalone ones."""
    if not config.ws_url:
        raise ConfigError("ws_url: required in livekit mode (the livekit-server whose rooms sessions publish into)")
    # Here, not at the top: the psrpc plane brings redis-py, 6 MB of a standalone service's memory for nothing.
    from pyingress.control.livekit_plane import BusSessionRegistry, LivekitControlPlane, open_livekit_control

    room = room_connection(config)
    bus, control = open_livekit_control(config)
    registry = BusSessionRegistry()
    capacity = CpuAdmission(config.cpu_cost)
    sessions = SessionManager(
        config,
        control,
        registry,
        Admission(control, capacity),
        room,
        pull_doors=pull_doors(config),
    )
    node_id = config.node_id or new_node_id()
    return IngressService(
        config,
        node_id=node_id,
        node=NodeMetrics(node_id, sessions, capacity),
        room=room,
        control_plane=LivekitControlPlane(bus, control, registry, sessions),
        workers=MediaWorkers(default_launcher()),
        sessions=sessions,
        front_doors=push_doors(config, sessions),
    )
