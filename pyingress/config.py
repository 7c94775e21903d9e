"""Service configuration: livekit/ingress's YAML keys and defaults, plus pyingress's own.

Loaded from ``--config FILE`` / ``INGRESS_CONFIG_FILE`` or ``INGRESS_CONFIG_BODY`` (YAML text, wins), with
``LIVEKIT_API_KEY`` / ``LIVEKIT_API_SECRET`` / ``LIVEKIT_WS_URL`` pre-filling the keys they name (the file
overrides them), as livekit/ingress does (ingress.md §4).  Every key is checked at start: an unknown key, a
wrong type or a bad port stops the service with a message naming the key, never a surprise later.
"""

import os
from collections.abc import Mapping
from dataclasses import dataclass, field, fields, is_dataclass
from pathlib import Path
from typing import Any, TypeVar, Union, get_args, get_origin, get_type_hints

import yaml

DEV_API_KEY = "devkey"
DEV_API_SECRET = "secret"


class ConfigError(ValueError):
    """A configuration problem, phrased for the operator: ``<key>: <problem>``."""


@dataclass
class RedisConfig:
    address: str = ""
    username: str = ""
    password: str = ""
    db: int = 0
    use_tls: bool = False
    sentinel_master_name: str = ""
    sentinel_username: str = ""
    sentinel_password: str = ""
    sentinel_addresses: list[str] = field(default_factory=list)
    cluster_addresses: list[str] = field(default_factory=list)
    dial_timeout: int = 0
    read_timeout: int = 0
    write_timeout: int = 0
    max_redirects: int = 0
    pool_timeout: str = ""
    pool_size: int = 0


@dataclass
class LoggingConfig:
    level: str = "info"
    json: bool = False
    sample: bool = False
    component_levels: dict[str, str] = field(default_factory=dict)
    sample_initial: int = 0
    sample_interval: int = 0
    item_sample_seconds: int = 0
    item_sample_initial: int = 0
    item_sample_interval: int = 0


@dataclass
class CpuCostConfig:
    # CPUs reserved per session. livekit/ingress leaves these at 0 in code and documents 2.0 for its GStreamer
    # pipeline; ours are measured: a 1080p30 3-layer ladder + Opus costs 0.73-0.86 CPU-s per media second live
    # (reference feasibility.md §6), so 0.8 lets a 2-core machine take two sessions and refuse the third.
    rtmp_cpu_cost: float = 0.8
    whip_cpu_cost: float = 0.8
    whip_bypass_transcoding_cpu_cost: float = 0.1
    url_cpu_cost: float = 0.8
    min_idle_ratio: float = 0.3


@dataclass
class WebhookConfig:
    api_key: str = ""
    urls: list[str] = field(default_factory=list)


@dataclass
class RtmpConfig:
    """RTMP/RTMPS listener settings beyond livekit/ingress's ``rtmp_port`` (which has no TLS: ingress.md §1.4)."""

    rtmps_port: int = 0  # 0: RTMPS off; needs cert_file and key_file
    cert_file: str = ""
    key_file: str = ""
    handshake_timeout: float = 10.0
    publish_timeout: float = 30.0  # a connection that has not published by then is closed
    read_timeout: float = 30.0
    max_connections: int = 1000
    max_connections_per_ip: int = 32
    max_chunk_size: int = 1 << 24
    max_message_size: int = 8 << 20


@dataclass
class UrlPullConfig:
    """URL_INPUT ingresses (files and HLS over HTTP(S)): how the demux worker fetches (pyingress/ingest/pull/)."""

    ca_file: str = ""  # PEM CAs to trust for https:// URLs instead of the system's
    open_timeout: float = 10.0  # resolve + connect + TLS + response headers, per request (redirects included)
    read_timeout: float = 10.0  # the longest silence within a response body
    live_stall_timeout: float = 15.0  # a live HLS playlist that has not changed this long has stopped: ERROR


@dataclass
class SrtConfig:
    """The SRT listener (``srt_port``) and SRT pulls (``srt://`` URL ingresses): pyingress/ingest/srt/."""

    # Server-wide SRT passphrase (AES, 10-79 characters): every publisher must encrypt with it, or its handshake
    # is refused. Empty: no encryption required (and none accepted: libsrt enforces both ways).
    passphrase: str = ""
    pbkeylen: int = 16  # AES key length of the encryption above: 16, 24 or 32 bytes
    latency: int = 120  # ms: the receiver latency we ask for (libsrt's live default); the larger side's wins
    read_timeout: float = 10.0  # s: a connected publisher (or pulled server) that sends nothing this long is dropped
    # s: an srt:// URL ingress without media this long — unreachable, or dropped and not back — ends in ERROR
    # "source encoder not ready" (livekit/ingress's media watchdog: one minute)
    pull_media_timeout: float = 60.0
    base_url: str = ""  # the address encoders push to; default srt://<public_host>:<srt_port>


@dataclass
class RoomServerConfig:
    """The local livekit-server that ``serve`` starts while no ``ws_url`` is configured (a dev room server)."""

    binary: str = ""  # empty: .cache/bin/server of a checkout, then `livekit-server`/`server` on PATH
    port: int = 7880
    rtc_tcp_port: int = 7881
    rtc_udp_port: int = 7882


@dataclass
class Config:
    # livekit/ingress keys
    api_key: str = ""
    api_secret: str = ""
    ws_url: str = ""
    redis: RedisConfig = field(default_factory=RedisConfig)
    rtmp_port: int = 1935
    whip_port: int = 8080
    http_relay_port: int = 9090
    health_port: int = 0
    prometheus_port: int = 0
    debug_handler_port: int = 0
    logging: LoggingConfig = field(default_factory=LoggingConfig)
    development: bool = False
    rtc_config: dict[str, Any] = field(default_factory=dict)
    cpu_cost: CpuCostConfig = field(default_factory=CpuCostConfig)
    enable_stream_latency_reduction: bool = False
    whip_proxy_enabled: bool = False
    service_name: str = "ingress"
    node_id: str = ""

    # pyingress's own keys
    # standalone: pyingress owns the API and store; livekit: psrpc worker of livekit-server.  Not given: livekit when
    # ``redis`` is configured (a livekit/ingress config file runs unchanged), else standalone.
    mode: str = ""
    bind_address: str = "0.0.0.0"
    store_path: str = "pyingress.sqlite3"
    rtmp_base_url: str = ""  # IngressInfo.url for RTMP; default rtmp://<host>:<rtmp_port>/live
    whip_base_url: str = ""  # IngressInfo.url for WHIP; default http://<host>:<whip_port>/w
    public_host: str = "127.0.0.1"  # host used to build the default base URLs
    rtmp: RtmpConfig = field(default_factory=RtmpConfig)
    srt_port: int = 8890  # SRT listener (UDP) for pushes to RTMP ingresses' stream keys; negative: off
    srt: SrtConfig = field(default_factory=SrtConfig)
    # Beyond LiveKit: a publisher that drops and comes back on the same key within this window continues the
    # same session (same participant, a short freeze for subscribers). 0 ends the session at once, as LiveKit does.
    reconnect_grace_seconds: float = 5.0
    # SIGTERM/SIGQUIT drain: running sessions go on until their publishers end, at most this long (0: no bound,
    # as livekit/ingress, whose helm chart gives a pod 3 h to drain).
    drain_timeout: float = 0.0
    webhook: WebhookConfig = field(default_factory=WebhookConfig)
    room_server: RoomServerConfig = field(default_factory=RoomServerConfig)
    url_pull: UrlPullConfig = field(default_factory=UrlPullConfig)

    @property
    def default_rtmp_base_url(self) -> str:
        return self.rtmp_base_url or f"rtmp://{self.public_host}:{self.rtmp_port}/live"

    @property
    def default_whip_base_url(self) -> str:
        return self.whip_base_url or f"http://{self.public_host}:{self.whip_port}/w"

    @property
    def default_srt_base_url(self) -> str:
        return self.srt.base_url or f"srt://{self.public_host}:{self.srt_port}"


_PORT_KEYS = (
    "rtmp_port",
    "whip_port",
    "srt_port",
    "http_relay_port",
    "health_port",
    "prometheus_port",
    "debug_handler_port",
)
_LOG_LEVELS = ("debug", "info", "warn", "warning", "error")
_MODES = ("standalone", "livekit")

T = TypeVar("T")


def _type_name(tp: Any) -> str:
    origin = get_origin(tp)
    if origin is list:
        return "a list"
    if origin is dict:
        return "a mapping"
    if is_dataclass(tp):
        return "a mapping"
    return {int: "an integer", float: "a number", bool: "a boolean", str: "a string"}.get(tp, str(tp))


def _coerce(path: str, tp: Any, value: Any) -> Any:
    """Check ``value`` against the declared type; ints are accepted where floats are expected, nothing else."""
    origin = get_origin(tp)
    if origin is Union:
        tp = next(arg for arg in get_args(tp) if arg is not type(None))
        origin = get_origin(tp)
    if isinstance(tp, type) and is_dataclass(tp):
        if not isinstance(value, dict):
            raise ConfigError(f"{path}: expected {_type_name(tp)}, got {value!r}")
        return _build(tp, value, path + ".")
    if origin is list:
        if not isinstance(value, list):
            raise ConfigError(f"{path}: expected a list, got {value!r}")
        (item_tp,) = get_args(tp)
        return [_coerce(f"{path}[{i}]", item_tp, item) for i, item in enumerate(value)]
    if origin is dict:
        if not isinstance(value, dict):
            raise ConfigError(f"{path}: expected a mapping, got {value!r}")
        return dict(value)
    if tp is bool:
        if not isinstance(value, bool):
            raise ConfigError(f"{path}: expected a boolean, got {value!r}")
        return value
    if tp is int:
        if isinstance(value, bool) or not isinstance(value, int):
            raise ConfigError(f"{path}: expected an integer, got {value!r}")
        return value
    if tp is float:
        if isinstance(value, bool) or not isinstance(value, int | float):
            raise ConfigError(f"{path}: expected a number, got {value!r}")
        return float(value)
    if tp is str:
        if not isinstance(value, str | int | float) or isinstance(value, bool):
            raise ConfigError(f"{path}: expected a string, got {value!r}")
        return str(value)
    return value


def _build(cls: type[T], data: dict[str, Any], prefix: str = "") -> T:
    hints = get_type_hints(cls)
    known = {f.name for f in fields(cls)}  # type: ignore[arg-type]
    for key in data:
        if key not in known:
            raise ConfigError(f"{prefix}{key}: unknown key")
    values = {key: _coerce(prefix + key, hints[key], value) for key, value in data.items() if value is not None}
    return cls(**values)


def _redis_configured(redis: RedisConfig) -> bool:
    return bool(redis.address or redis.sentinel_addresses or redis.cluster_addresses)


def _check(config: Config) -> None:
    for key in _PORT_KEYS:
        port = getattr(config, key)
        # livekit/ingress: 0 means default/off, a negative value disables the listener.
        if port > 65535:
            raise ConfigError(f"{key}: {port} is not a valid port (use 1-65535, 0 for the default, -1 to disable)")
    for key in ("port", "rtc_tcp_port", "rtc_udp_port"):
        port = getattr(config.room_server, key)
        if not 0 < port <= 65535:
            raise ConfigError(f"room_server.{key}: {port} is not a valid port (use 1-65535)")
    if config.rtmp_port == 0:
        config.rtmp_port = 1935
    if config.whip_port == 0:
        config.whip_port = 8080
    if config.srt_port == 0:
        config.srt_port = 8890
    if config.api_key and not config.api_secret:
        raise ConfigError("api_secret: required when api_key is set")
    if config.api_secret and not config.api_key:
        raise ConfigError("api_key: required when api_secret is set")
    if config.logging.level.lower() not in _LOG_LEVELS:
        raise ConfigError(f"logging.level: {config.logging.level!r} is not one of {', '.join(_LOG_LEVELS)}")
    if not config.mode:
        config.mode = "livekit" if _redis_configured(config.redis) else "standalone"
    if config.mode not in _MODES:
        raise ConfigError(f"mode: {config.mode!r} is not one of {', '.join(_MODES)}")
    if config.mode == "livekit" and not _redis_configured(config.redis):
        raise ConfigError("redis: required in livekit mode (the same Redis as livekit-server)")
    if config.webhook.urls and not (config.webhook.api_key or config.api_key):
        raise ConfigError("webhook.api_key: required to sign webhooks when webhook.urls is set")
    if config.rtmp.rtmps_port and not (config.rtmp.cert_file and config.rtmp.key_file):
        raise ConfigError("rtmp.cert_file: rtmp.rtmps_port needs rtmp.cert_file and rtmp.key_file")
    if not 0 <= config.rtmp.rtmps_port <= 65535:
        raise ConfigError(f"rtmp.rtmps_port: {config.rtmp.rtmps_port} is not a valid port (0 turns RTMPS off)")
    if config.reconnect_grace_seconds < 0:
        raise ConfigError(f"reconnect_grace_seconds: {config.reconnect_grace_seconds} must not be negative")
    if config.drain_timeout < 0:
        raise ConfigError(f"drain_timeout: {config.drain_timeout} must not be negative (0: wait for every session)")
    for key in ("open_timeout", "read_timeout", "live_stall_timeout"):
        if getattr(config.url_pull, key) <= 0:
            raise ConfigError(f"url_pull.{key}: {getattr(config.url_pull, key)} must be positive (seconds)")
    if config.url_pull.ca_file and not Path(config.url_pull.ca_file).is_file():
        raise ConfigError(f"url_pull.ca_file: {config.url_pull.ca_file} is not a readable file")
    _check_srt(config.srt)
    for key in ("min_idle_ratio",):
        value = getattr(config.cpu_cost, key)
        if not 0 <= value < 1:
            raise ConfigError(f"cpu_cost.{key}: {value} must be in [0, 1)")


def _check_srt(srt: SrtConfig) -> None:
    # libsrt's own bounds for SRTO_PASSPHRASE and SRTO_PBKEYLEN (docs/API/API-socket-options.md).
    if srt.passphrase and not 10 <= len(srt.passphrase) <= 79:
        raise ConfigError(f"srt.passphrase: must be 10 to 79 characters, not {len(srt.passphrase)} (empty: off)")
    if srt.pbkeylen not in (16, 24, 32):
        raise ConfigError(f"srt.pbkeylen: {srt.pbkeylen} is not an AES key length (16, 24 or 32)")
    if not 0 <= srt.latency <= 60_000:
        raise ConfigError(f"srt.latency: {srt.latency} must be 0 to 60000 (ms)")
    if srt.read_timeout <= 0:
        raise ConfigError(f"srt.read_timeout: {srt.read_timeout:g} must be positive (seconds)")
    if srt.pull_media_timeout <= 0:
        raise ConfigError(f"srt.pull_media_timeout: {srt.pull_media_timeout:g} must be positive (seconds)")
    if srt.base_url and not srt.base_url.startswith("srt://"):
        raise ConfigError(f"srt.base_url: {srt.base_url!r} must start with srt://")


def parse_config(text: str, env: Mapping[str, str] | None = None, development: bool = False) -> Config:
    """Build a checked Config from YAML text and the environment; raises ConfigError naming the bad key."""
    environ: Mapping[str, str] = os.environ if env is None else env
    try:
        data = yaml.safe_load(text) if text.strip() else {}
    except yaml.YAMLError as exc:
        raise ConfigError(f"could not parse config: {exc}") from None
    if data is None:
        data = {}
    if not isinstance(data, dict):
        raise ConfigError("could not parse config: the top level must be a mapping of keys")
    merged: dict[str, Any] = {}
    for key, var in (
        ("api_key", "LIVEKIT_API_KEY"),
        ("api_secret", "LIVEKIT_API_SECRET"),
        ("ws_url", "LIVEKIT_WS_URL"),
    ):
        if environ.get(var):
            merged[key] = environ[var]
    merged.update(data)
    config = _build(Config, merged)
    if development:
        config.development = True
    if config.development and not config.api_key and not config.api_secret:
        # The same dev keys as `livekit-server --dev`, so a dev ingress and a dev room server trust each other.
        config.api_key, config.api_secret = DEV_API_KEY, DEV_API_SECRET
    _check(config)
    return config


def load_config(path: str | None = None, development: bool = False, env: Mapping[str, str] | None = None) -> Config:
    """The service's configuration from a file, INGRESS_CONFIG_BODY, or only the environment and defaults."""
    environ: Mapping[str, str] = os.environ if env is None else env
    body = environ.get("INGRESS_CONFIG_BODY", "")
    path = path or environ.get("INGRESS_CONFIG_FILE") or None
    if not body and path:
        try:
            body = Path(path).read_text()
        except OSError as exc:
            raise ConfigError(f"could not read config file {path}: {exc.strerror}") from None
    return parse_config(body, env=environ, development=development)
