"""Who may use the dashboard: a login with an API key and its secret, kept in a server-side session.

The dashboard is an admin surface over the Ingress API, so it takes the API's own credentials.  A successful login
gets a random session id in a cookie that scripts cannot read (HttpOnly), that no other site's request carries
(SameSite=Strict) and that only travels over HTTPS when the page came over HTTPS (Secure).  Every state-changing
request must also be same-origin JSON carrying the session's CSRF token in a header, which a cross-site form or a
cross-site ``fetch`` cannot produce: the cookie alone is never enough.

``--dev`` on loopback skips the form (the page says so): a request from a loopback address *to* a loopback host
name gets a session of its own at once.  Checking the Host header as well as the peer address keeps a DNS-rebound
site (evil.example resolving to 127.0.0.1) out: its requests name its own host.
"""

import hmac
import ipaddress
import secrets
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from urllib.parse import urlsplit

from aiohttp import web

COOKIE = "pyingress_dashboard"
CSRF_HEADER = "X-CSRF-Token"
SESSION_TTL_S = 12 * 3600
MAX_SESSIONS = 1000
# Failed logins per client address within FAILURE_WINDOW_S before it is told to wait: a guessing brake.
MAX_FAILURES = 10
FAILURE_WINDOW_S = 60.0
_LOOPBACK_NAMES = ("localhost", "127.0.0.1", "[::1]", "::1")


@dataclass
class Login:
    api_key: str
    csrf: str
    expires_at: float
    dev: bool = False  # made without the form: --dev on loopback


class Refused(Exception):
    """A request the dashboard refuses: HTTP ``status`` with ``message``."""

    def __init__(self, status: int, message: str) -> None:
        super().__init__(message)
        self.status = status
        self.message = message


def is_loopback_address(address: str | None) -> bool:
    if not address:
        return False
    try:
        return ipaddress.ip_address(address.split("%", 1)[0]).is_loopback
    except ValueError:
        return False


def is_loopback_host(host: str) -> bool:
    """The Host header names this machine's loopback (port ignored)."""
    name = host.rsplit(":", 1)[0] if not host.endswith("]") else host
    if name in _LOOPBACK_NAMES:
        return True
    return is_loopback_address(name.strip("[]"))


def same_origin(request: web.Request) -> bool:
    """The browser says the request comes from this site.  Browsers send Origin on every POST (and
    Sec-Fetch-Site); a client that sends neither is not a browser a foreign page could drive.  Hosts are compared
    without the scheme, which a TLS terminator in front changes."""
    fetch_site = request.headers.get("Sec-Fetch-Site")
    if fetch_site is not None and fetch_site not in ("same-origin", "none"):
        return False
    origin = request.headers.get("Origin")
    return origin is None or urlsplit(origin).netloc == request.host


class DashboardLogins:
    """Server-side sessions of the dashboard, by the random id in their cookie."""

    def __init__(
        self,
        keys: Mapping[str, str],
        *,
        dev_loopback: bool = False,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.keys = dict(keys)
        self.dev_loopback = dev_loopback
        self._clock = clock
        self._sessions: dict[str, Login] = {}
        self._failures: dict[str, list[float]] = {}

    def secret_of(self, api_key: str) -> str:
        return self.keys.get(api_key, "")

    def dev_allowed(self, request: web.Request) -> bool:
        """``--dev``, a loopback peer asking for a loopback host: the login form may be skipped."""
        return (
            self.dev_loopback
            and bool(self.keys)
            and is_loopback_address(request.remote)
            and is_loopback_host(request.host)
        )

    def current(self, request: web.Request) -> Login | None:
        session_id = request.cookies.get(COOKIE, "")
        login = self._sessions.get(session_id) if session_id else None
        if login is None:
            return None
        if login.expires_at <= self._clock():
            del self._sessions[session_id]
            return None
        return login

    def require(self, request: web.Request, *, changes_state: bool) -> Login:
        """The request's login; raises Refused 401 without one, 403 for a state change that is not same-origin
        JSON with the session's CSRF token."""
        login = self.current(request)
        if login is None:
            raise Refused(401, "login required")
        if changes_state:
            check_state_change(request)
            token = request.headers.get(CSRF_HEADER, "")
            if not hmac.compare_digest(token.encode(), login.csrf.encode()):
                raise Refused(403, "missing or wrong CSRF token")
        return login

    def login(self, request: web.Request, api_key: str, api_secret: str) -> tuple[str, Login]:
        """Check the key and secret; returns (session id, login) or raises Refused (401, or 429 when guessing)."""
        check_state_change(request)
        peer = request.remote or ""
        now = self._clock()
        recent = [t for t in self._failures.get(peer, []) if now - t < FAILURE_WINDOW_S]
        if len(recent) >= MAX_FAILURES:
            raise Refused(429, "too many failed logins: wait a minute")
        secret = self.keys.get(api_key, "")
        # Compared in constant time even for an unknown key, so the answer's timing does not tell keys apart.
        ok = hmac.compare_digest(api_secret.encode(), (secret or secrets.token_hex(16)).encode()) and bool(secret)
        if not ok:
            if len(self._failures) >= MAX_SESSIONS:  # bounded too: forget addresses whose window has passed
                self._failures = {
                    p: times for p, times in self._failures.items() if times and now - times[-1] < FAILURE_WINDOW_S
                }
            self._failures[peer] = [*recent, now]
            raise Refused(401, "wrong API key or secret")
        self._failures.pop(peer, None)
        return self._new(api_key, dev=False)

    def dev_login(self) -> tuple[str, Login]:
        return self._new(next(iter(self.keys)), dev=True)

    def _new(self, api_key: str, dev: bool) -> tuple[str, Login]:
        self._expire()
        while len(self._sessions) >= MAX_SESSIONS:  # bounded: the oldest login goes first
            del self._sessions[next(iter(self._sessions))]
        session_id = secrets.token_urlsafe(32)
        login = Login(api_key, secrets.token_urlsafe(32), self._clock() + SESSION_TTL_S, dev)
        self._sessions[session_id] = login
        return session_id, login

    def logout(self, request: web.Request) -> None:
        self._sessions.pop(request.cookies.get(COOKIE, ""), None)

    def still_valid(self, login: Login) -> bool:
        return any(s is login for s in self._sessions.values()) and login.expires_at > self._clock()

    def _expire(self) -> None:
        now = self._clock()
        for session_id in [s for s, login in self._sessions.items() if login.expires_at <= now]:
            del self._sessions[session_id]


def check_state_change(request: web.Request) -> None:
    """Same-origin JSON only: a cross-site form cannot send ``application/json``, and a cross-site ``fetch`` that
    does is preflighted (and refused, no CORS here) or carries a foreign Origin."""
    if request.content_type != "application/json":
        raise Refused(415, "expected application/json")
    if not same_origin(request):
        raise Refused(403, "cross-site request refused")


def set_cookie(response: web.StreamResponse, request: web.Request, session_id: str) -> None:
    response.set_cookie(
        COOKIE,
        session_id,
        max_age=SESSION_TTL_S,
        path="/",
        httponly=True,
        samesite="Strict",
        secure=request.secure,
    )


def clear_cookie(response: web.StreamResponse) -> None:
    response.del_cookie(COOKIE, path="/")
