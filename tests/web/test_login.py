"""The dashboard's logins on their own: the guessing brake, bounded memory, expiry, loopback and origin checks."""

import pytest
from aiohttp import web
from aiohttp.test_utils import make_mocked_request

from pyingress.web import login as logins_module
from pyingress.web.login import DashboardLogins, Refused, is_loopback_host, same_origin


def _request(headers: dict[str, str] | None = None, cookie: str = "") -> web.Request:
    merged = {"Host": "127.0.0.1:8080", "Content-Type": "application/json", **(headers or {})}
    if cookie:
        merged["Cookie"] = f"{logins_module.COOKIE}={cookie}"
    return make_mocked_request("POST", "/dashboard/api/login", headers=merged)


def test_guessing_is_braked_per_address_for_a_minute() -> None:
    now = [0.0]
    logins = DashboardLogins({"devkey": "secret"}, clock=lambda: now[0])
    for _ in range(logins_module.MAX_FAILURES):
        with pytest.raises(Refused) as wrong:
            logins.login(_request(), "devkey", "guess")
        assert wrong.value.status == 401
    with pytest.raises(Refused) as braked:
        logins.login(_request(), "devkey", "secret")
    assert braked.value.status == 429  # even the right secret waits
    now[0] += logins_module.FAILURE_WINDOW_S
    session_id, login = logins.login(_request(), "devkey", "secret")
    assert login.api_key == "devkey" and logins.current(_request(cookie=session_id)) is login
    now[0] += logins_module.SESSION_TTL_S
    assert logins.current(_request(cookie=session_id)) is None


def test_sessions_are_bounded() -> None:
    logins = DashboardLogins({"devkey": "secret"}, dev_loopback=True)
    first, _ = logins.dev_login()
    for _ in range(logins_module.MAX_SESSIONS):
        logins.dev_login()
    assert logins.current(_request(cookie=first)) is None
    assert len(logins._sessions) == logins_module.MAX_SESSIONS


def test_loopback_hosts_and_origins() -> None:
    for host in ("127.0.0.1:8080", "localhost", "[::1]:8080", "127.0.0.2"):
        assert is_loopback_host(host), host
    for host in ("192.0.2.1:8080", "evil.example", "localhost.evil.example:80"):
        assert not is_loopback_host(host), host
    assert same_origin(_request({"Origin": "http://127.0.0.1:8080"}))
    assert same_origin(_request({"Origin": "https://127.0.0.1:8080"}))  # TLS in front
    assert same_origin(_request())  # not a browser
    assert not same_origin(_request({"Origin": "http://127.0.0.1:8999"}))
    assert not same_origin(_request({"Origin": "null"}))  # a sandboxed page
    assert not same_origin(_request({"Sec-Fetch-Site": "same-site"}))
