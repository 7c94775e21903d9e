"""The url_pull keys: defaults, and a bad value refused naming the key."""

from pathlib import Path

import pytest

from pyingress.config import ConfigError, parse_config


def test_url_pull_defaults() -> None:
    pull = parse_config("", env={}).url_pull
    assert (pull.ca_file, pull.open_timeout, pull.read_timeout, pull.live_stall_timeout) == ("", 10.0, 10.0, 15.0)


def test_url_pull_keys_are_read(tmp_path: Path) -> None:
    ca = tmp_path / "ca.pem"
    ca.write_text("-----BEGIN CERTIFICATE-----\n")
    pull = parse_config(f"url_pull: {{ca_file: {ca}, open_timeout: 3, read_timeout: 2.5}}", env={}).url_pull
    assert (pull.ca_file, pull.open_timeout, pull.read_timeout) == (str(ca), 3.0, 2.5)


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("url_pull: {read_timeout: 0}", "url_pull.read_timeout: 0.0 must be positive"),
        ("url_pull: {open_timeout: -1}", "url_pull.open_timeout: -1.0 must be positive"),
        ("url_pull: {ca_file: /nonexistent/ca.pem}", "url_pull.ca_file: /nonexistent/ca.pem is not a readable file"),
        ("url_pull: {timeout: 3}", "url_pull.timeout: unknown key"),
    ],
)
def test_bad_url_pull_keys_are_refused(text: str, message: str) -> None:
    with pytest.raises(ConfigError) as refused:
        parse_config(text, env={})
    assert str(refused.value).startswith(message)
