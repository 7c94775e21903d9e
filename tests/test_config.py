"""Configuration: livekit/ingress keys and defaults, env pre-fill, and a clear refusal of bad files."""

import subprocess
import sys
from pathlib import Path

import pytest

from pyingress.config import Config, ConfigError, load_config, parse_config


def test_defaults_match_livekit_ingress() -> None:
    config = parse_config("", env={})
    assert (config.rtmp_port, config.whip_port, config.http_relay_port) == (1935, 8080, 9090)
    assert (config.health_port, config.prometheus_port) == (0, 0)
    assert config.logging.level == "info" and config.development is False
    assert config.cpu_cost.min_idle_ratio == 0.3
    assert config.mode == "standalone"
    assert config.default_rtmp_base_url == "rtmp://127.0.0.1:1935/live"
    assert config.default_whip_base_url == "http://127.0.0.1:8080/w"


def test_env_prefills_and_file_overrides() -> None:
    env = {"LIVEKIT_API_KEY": "k", "LIVEKIT_API_SECRET": "s", "LIVEKIT_WS_URL": "ws://lk:7880"}
    config = parse_config("ws_url: ws://other:7880\n", env=env)
    assert (config.api_key, config.api_secret, config.ws_url) == ("k", "s", "ws://other:7880")


def test_dev_mode_uses_the_livekit_dev_keys() -> None:
    config = parse_config("", env={}, development=True)
    assert (config.api_key, config.api_secret, config.development) == ("devkey", "secret", True)


def test_zero_ports_mean_default_and_negative_disables() -> None:
    config = parse_config("rtmp_port: 0\nwhip_port: -1\n", env={})
    assert config.rtmp_port == 1935 and config.whip_port == -1


def test_full_file_with_nested_keys() -> None:
    text = """
api_key: key
api_secret: a-long-enough-secret
ws_url: wss://example.livekit
redis: {address: 127.0.0.1:6379, db: 2}
health_port: 7888
prometheus_port: 7889
logging: {level: debug, json: true}
cpu_cost: {rtmp_cpu_cost: 1.5, whip_bypass_transcoding_cpu_cost: 0.1, min_idle_ratio: 0.2}
store_path: /var/lib/pyingress/ingress.sqlite3
rtmp_base_url: rtmps://ingest.example.com/live
webhook: {api_key: key, urls: [http://127.0.0.1:9/hook]}
"""
    config = parse_config(text, env={})
    assert config.redis.address == "127.0.0.1:6379" and config.redis.db == 2
    assert config.cpu_cost.rtmp_cpu_cost == 1.5 and config.logging.json is True
    assert config.default_rtmp_base_url == "rtmps://ingest.example.com/live"
    assert config.webhook.urls == ["http://127.0.0.1:9/hook"]


def test_a_livekit_ingress_config_file_runs_in_livekit_mode_unchanged() -> None:
    # livekit/ingress's own keys only, no `mode`: Redis means "a worker of livekit-server".
    text = "api_key: key\napi_secret: secret\nws_url: ws://lk:7880\nredis: {address: redis:6379}\nrtmp_port: 1935\n"
    assert parse_config(text, env={}).mode == "livekit"
    assert parse_config("redis: {cluster_addresses: [a:7000, b:7000]}", env={}).mode == "livekit"
    assert parse_config("mode: standalone\nredis: {address: redis:6379}", env={}).mode == "standalone"


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("rtmp_prot: 1935", "rtmp_prot: unknown key"),
        ("redis: {adress: x}", "redis.adress: unknown key"),
        ("rtmp_port: abc", "rtmp_port: expected an integer, got 'abc'"),
        ("whip_port: 8080.5", "whip_port: expected an integer, got 8080.5"),
        ("development: maybe", "development: expected a boolean, got 'maybe'"),
        ("cpu_cost: 2", "cpu_cost: expected a mapping, got 2"),
        ("webhook: {urls: http://x}", "webhook.urls: expected a list, got 'http://x'"),
        ("rtmp_port: 70000", "rtmp_port: 70000 is not a valid port"),
        ("health_port: 65536", "health_port: 65536 is not a valid port"),
        ("api_key: devkey", "api_secret: required when api_key is set"),
        ("api_secret: secret", "api_key: required when api_secret is set"),
        ("logging: {level: loud}", "logging.level: 'loud' is not one of"),
        ("mode: cluster", "mode: 'cluster' is not one of standalone, livekit"),
        ("mode: livekit", "redis: required in livekit mode"),
        ("webhook: {urls: [http://x]}", "webhook.api_key: required to sign webhooks"),
        ("cpu_cost: {min_idle_ratio: 1.5}", "cpu_cost.min_idle_ratio: 1.5 must be in [0, 1)"),
        ("- a\n- b", "could not parse config: the top level must be a mapping"),
        ("a: [", "could not parse config:"),
    ],
)
def test_bad_config_is_refused_naming_the_key(text: str, message: str) -> None:
    with pytest.raises(ConfigError) as refused:
        parse_config(text, env={})
    assert str(refused.value).startswith(message)


def test_config_body_env_wins_over_file(tmp_path: Path) -> None:
    path = tmp_path / "c.yaml"
    path.write_text("rtmp_port: 1111\n")
    assert load_config(str(path), env={}).rtmp_port == 1111
    assert load_config(str(path), env={"INGRESS_CONFIG_BODY": "rtmp_port: 2222"}).rtmp_port == 2222
    assert load_config(None, env={"INGRESS_CONFIG_FILE": str(path)}).rtmp_port == 1111


def test_missing_file_is_a_config_error() -> None:
    with pytest.raises(ConfigError, match=r"could not read config file /nonexistent\.yaml"):
        load_config("/nonexistent.yaml", env={})


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("unknown_key: 1\n", "unknown_key: unknown key"),
        ("rtmp_port: nope\n", "rtmp_port: expected an integer"),
        ("whip_port: 99999\n", "whip_port: 99999 is not a valid port"),
        ("api_key: k\n", "api_secret: required when api_key is set"),
    ],
)
def test_serve_fails_at_start_with_a_clear_message(tmp_path: Path, text: str, message: str) -> None:
    path = tmp_path / "bad.yaml"
    path.write_text(text)
    result = subprocess.run(
        [sys.executable, "-m", "pyingress", "serve", "--config", str(path)], capture_output=True, text=True, timeout=60
    )
    assert result.returncode == 2
    assert f"pyingress: bad configuration: {message}" in result.stderr


def test_config_is_a_plain_dataclass() -> None:
    assert isinstance(parse_config("", env={}), Config)


def test_srt_keys_default_and_are_checked() -> None:
    config = parse_config("", env={})
    assert config.srt_port == 8890 and config.srt.passphrase == "" and config.srt.latency == 120
    assert config.default_srt_base_url == "srt://127.0.0.1:8890"
    config = parse_config("srt_port: 0\nsrt:\n  passphrase: a-long-secret\n  base_url: srt://edge:9000\n", env={})
    assert config.srt_port == 8890 and config.srt.passphrase == "a-long-secret"
    assert config.default_srt_base_url == "srt://edge:9000"
    assert parse_config("srt_port: -1\n", env={}).srt_port == -1


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("srt_port: 70000\n", "srt_port: 70000 is not a valid port"),
        ("srt:\n  passphrase: short\n", "srt.passphrase: must be 10 to 79 characters, not 5"),
        ("srt:\n  pbkeylen: 20\n", "srt.pbkeylen: 20 is not an AES key length"),
        ("srt:\n  latency: -5\n", "srt.latency: -5 must be 0 to 60000"),
        ("srt:\n  read_timeout: 0\n", "srt.read_timeout: 0 must be positive"),
        ("srt:\n  pull_media_timeout: -1\n", "srt.pull_media_timeout: -1 must be positive"),
        ("srt:\n  base_url: rtmp://x\n", "srt.base_url: 'rtmp://x' must start with srt://"),
        ("srt:\n  latncy: 5\n", "srt.latncy: unknown key"),
    ],
)
def test_bad_srt_keys_are_refused_naming_the_key(text: str, message: str) -> None:
    with pytest.raises(ConfigError, match=message.replace(".", r"\.")):
        parse_config(text, env={})
