"""HTTP(S) for URL pull, in the demux worker: files PyAV can seek in, and every failure in words.

FFmpeg could fetch the URL itself, but then a failure reaches us as an errno ("Input/output error" for a redirect
loop, a TLS failure or a reset alike), HTTPS trusts whatever CA store the wheel's GnuTLS was built to look for, and
nothing tells a stalled body from a slow one.  So the demux worker hands PyAV ``HttpFile`` objects (through
``av.open(io_open=…)``, which routes the main URL, HLS playlists and segments alike through one opener) and fetches
with the standard library:

- explicit timeouts: ``open_timeout`` bounds name resolution, connect, TLS and the response headers (across
  redirects); ``read_timeout`` bounds the silence between two reads of a body;
- redirects followed (301, 302, 303, 307, 308) up to ``max_redirects``, a loop named as one;
- HTTPS verified against the system's CAs (Python's ``ssl`` default context) or ``ca_file`` when configured;
- seeking by ``Range`` requests (an MP4 whose index is at the end is read index first), a small forward seek by
  reading on;
- a body that ends before its ``Content-Length`` is a truncated download, never a clean end of the media.

Every failure is a ``FetchError`` whose message names the URL and the cause; the worker reports it as the ingress
error.  Connections are kept per origin and reused for the next request (HLS: a playlist and its segments).
"""

import http.client
import io
import queue
import socket
import ssl
import threading
import time
from dataclasses import dataclass
from urllib.parse import urljoin, urlsplit

_REDIRECTS = (301, 302, 303, 307, 308)
# A forward seek shorter than this reads on instead of a new request (FFmpeg's http protocol does the same).
SHORT_SEEK = 256 * 1024


class FetchError(Exception):
    """A fetch that failed, in words for the ingress error: what was asked for and what went wrong."""

    def __init__(self, message: str, status: int | None = None, final: bool = False) -> None:
        super().__init__(message)
        self.message = message
        self.status = status  # the HTTP status when the server answered with an error
        self.final = final  # asking again cannot help (a verdict on what was read, not a failed fetch)

    def __str__(self) -> str:
        return self.message


@dataclass(frozen=True)
class FetchOptions:
    open_timeout: float = 10.0
    read_timeout: float = 10.0
    max_redirects: int = 10  # Go's http.Client, which livekit-server's own fetches use, stops after 10 too
    ca_file: str = ""  # "" → the system's CAs
    user_agent: str = "pyingress"

    def to_json(self) -> dict[str, object]:
        return {
            "open_timeout": self.open_timeout,
            "read_timeout": self.read_timeout,
            "max_redirects": self.max_redirects,
            "ca_file": self.ca_file,
            "user_agent": self.user_agent,
        }

    @classmethod
    def from_json(cls, raw: dict[str, object]) -> "FetchOptions":
        return cls(
            open_timeout=float(raw["open_timeout"]),  # type: ignore[arg-type]
            read_timeout=float(raw["read_timeout"]),  # type: ignore[arg-type]
            max_redirects=int(raw["max_redirects"]),  # type: ignore[call-overload]
            ca_file=str(raw["ca_file"]),
            user_agent=str(raw["user_agent"]),
        )


def _origin(url: str) -> tuple[str, str, int]:
    parts = urlsplit(url)
    scheme = parts.scheme.lower()
    if scheme not in ("http", "https"):
        raise FetchError(f"unsupported URL scheme {scheme!r}: {url}")
    if not parts.hostname:
        raise FetchError(f"no host in URL {url}")
    try:
        port = parts.port or (443 if scheme == "https" else 80)
    except ValueError:
        raise FetchError(f"bad port in URL {url}") from None
    return scheme, parts.hostname, port


def _target(url: str) -> str:
    parts = urlsplit(url)
    return (parts.path or "/") + (f"?{parts.query}" if parts.query else "")


def resolve(host: str, port: int, timeout: float) -> list[tuple[int, tuple[str, int]]]:
    """getaddrinfo with a deadline: the C resolver has none of its own, and a dead DNS server blocks for long."""
    answer: queue.Queue[list[tuple[int, tuple[str, int]]] | BaseException] = queue.Queue(1)

    def lookup() -> None:
        try:
            infos = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM)
            answer.put([(family, (str(addr[0]), int(addr[1]))) for family, _, _, _, addr in infos])
        except BaseException as error:
            answer.put(error)

    threading.Thread(target=lookup, name="resolve", daemon=True).start()
    try:
        result = answer.get(timeout=timeout)
    except queue.Empty:
        raise FetchError(f"cannot resolve host {host}: no answer within {timeout:g} s") from None
    if isinstance(result, socket.gaierror):
        raise FetchError(f"cannot resolve host {host}: {result.strerror}") from None
    if isinstance(result, BaseException):
        raise FetchError(f"cannot resolve host {host}: {result}") from None
    return result


class _Connection(http.client.HTTPConnection):
    """One connection to an origin, connected through our resolver with the open deadline."""

    def __init__(self, scheme: str, host: str, port: int, context: ssl.SSLContext | None) -> None:
        super().__init__(host, port)
        self.scheme = scheme
        self.context = context

    def open(self, deadline: float) -> None:
        remaining = max(0.01, deadline - time.monotonic())
        last: OSError | None = None
        for family, address in resolve(self.host, self.port, remaining):
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                break
            sock = socket.socket(family, socket.SOCK_STREAM)
            sock.settimeout(remaining)
            try:
                sock.connect(address)
            except OSError as error:
                sock.close()
                last = error
                continue
            sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
            self.sock = self._tls(sock) if self.context is not None else sock
            return
        where = f"{self.host}:{self.port}"
        if isinstance(last, ConnectionRefusedError):
            raise FetchError(f"connection refused by {where}")
        if last is None or isinstance(last, TimeoutError):
            raise FetchError(f"cannot connect to {where}: no answer within the open timeout")
        raise FetchError(f"cannot connect to {where}: {last.strerror or last}")

    def _tls(self, sock: socket.socket) -> socket.socket:
        assert self.context is not None
        try:
            return self.context.wrap_socket(sock, server_hostname=self.host)
        except ssl.SSLCertVerificationError as error:
            sock.close()
            raise FetchError(f"TLS certificate of {self.host} not trusted: {error.verify_message}") from None
        except (ssl.SSLError, OSError) as error:
            sock.close()
            reason = getattr(error, "reason", None) or str(error)
            if isinstance(error, TimeoutError):
                reason = "no answer"
            raise FetchError(f"TLS handshake with {self.host}:{self.port} failed: {reason}") from None


class HttpClient:
    """GET with redirects, timeouts and TLS as configured; idle connections kept per origin for the next GET."""

    def __init__(self, options: FetchOptions) -> None:
        self.options = options
        self._context: ssl.SSLContext | None = None
        self._idle: dict[tuple[str, str, int], _Connection] = {}
        self.requests = 0
        # When a request was last sent or body bytes last arrived: a demuxer waiting on the network is not hung.
        self.last_activity = time.monotonic()

    def _tls_context(self) -> ssl.SSLContext:
        if self._context is None:
            try:
                self._context = ssl.create_default_context(cafile=self.options.ca_file or None)
            except (OSError, ssl.SSLError) as error:
                raise FetchError(f"cannot load CA file {self.options.ca_file}: {error}") from None
        return self._context

    def get(self, url: str, offset: int = 0) -> "HttpBody":
        """The body of ``url`` from byte ``offset``, after redirects; raises FetchError."""
        deadline = time.monotonic() + self.options.open_timeout
        seen = [url]
        current = url
        while True:
            response, connection = self._request(current, offset, deadline)
            if response.status in _REDIRECTS:
                location = response.getheader("Location")
                self._finish(connection, response)
                if not location:
                    raise FetchError(f"HTTP {response.status} redirect without a Location from {current}")
                following = urljoin(current, location)
                if following in seen:
                    raise FetchError(f"redirect loop: {following} redirects back to itself")
                if len(seen) > self.options.max_redirects:
                    raise FetchError(f"too many redirects (more than {self.options.max_redirects}) from {url}")
                seen.append(following)
                current = following
                continue
            if response.status >= 400:
                self._finish(connection, response)
                reason = response.reason or http.client.responses.get(response.status, "")
                raise FetchError(f"HTTP {response.status} {reason} from {current}".replace("  ", " "), response.status)
            if response.status not in (200, 206):
                self._finish(connection, response)
                raise FetchError(f"unexpected HTTP {response.status} {response.reason} from {current}")
            connection.sock.settimeout(self.options.read_timeout)
            return HttpBody(self, current, offset, response, connection)

    def _request(self, url: str, offset: int, deadline: float) -> tuple[http.client.HTTPResponse, _Connection]:
        origin = _origin(url)
        headers = {"User-Agent": self.options.user_agent, "Accept": "*/*", "Accept-Encoding": "identity"}
        if offset:
            headers["Range"] = f"bytes={offset}-"
        for attempt in (0, 1):
            connection = self._idle.pop(origin, None)
            reused = connection is not None
            if connection is None:
                scheme, host, port = origin
                connection = _Connection(scheme, host, port, self._tls_context() if scheme == "https" else None)
                connection.open(deadline)
            try:
                connection.sock.settimeout(max(0.01, deadline - time.monotonic()))
                connection.request("GET", _target(url), headers=headers)
                self.requests += 1
                self.last_activity = time.monotonic()
                return connection.getresponse(), connection
            except (http.client.RemoteDisconnected, ConnectionResetError, BrokenPipeError) as error:
                connection.close()
                if reused and attempt == 0:
                    continue  # the server closed an idle connection meanwhile: once more on a fresh one
                raise FetchError(f"{_host(url)} closed the connection before answering {url}") from error
            except TimeoutError:
                connection.close()
                raise FetchError(
                    f"no answer from {_host(url)} within {self.options.open_timeout:g} s for {url}"
                ) from None
            except http.client.HTTPException as error:
                connection.close()
                raise FetchError(f"bad HTTP answer from {_host(url)} for {url}: {error!r}") from None
            except OSError as error:
                connection.close()
                raise FetchError(f"request to {_host(url)} failed: {error.strerror or error}") from None
        raise AssertionError("unreachable")

    def _finish(self, connection: _Connection, response: http.client.HTTPResponse) -> None:
        """Done with ``response``: keep its connection if the body is read to the end and the server allows it."""
        try:
            connection.sock.settimeout(self.options.read_timeout)
            if response.length is not None and response.length <= 64 * 1024:
                response.read()
        except OSError:
            response.close()
        if response.isclosed() and not response.will_close and connection.sock is not None:
            origin = (connection.scheme, connection.host, connection.port)
            old = self._idle.pop(origin, None)
            if old is not None:
                old.close()
            self._idle[origin] = connection
        else:
            connection.close()

    def close(self) -> None:
        for connection in self._idle.values():
            connection.close()
        self._idle.clear()


def _host(url: str) -> str:
    parts = urlsplit(url)
    return parts.netloc or url


class HttpBody:
    """One response body being read: counts bytes, tells a truncated body and a stall apart from the end."""

    def __init__(
        self,
        client: HttpClient,
        url: str,
        offset: int,
        response: http.client.HTTPResponse,
        connection: _Connection,
    ) -> None:
        self.client = client
        self.url = url
        self.response = response
        self.connection = connection
        self.content_type = (response.getheader("Content-Type") or "").split(";")[0].strip().lower()
        self.accepts_ranges = response.getheader("Accept-Ranges", "").lower() == "bytes" or response.status == 206
        self.start = offset if response.status == 206 else 0  # a 200 to a Range request starts at byte 0
        self.length = response.length  # bytes of this body, None when chunked or until close
        self.size = self._total_size()
        self.read_bytes = 0
        self.done = False

    def _total_size(self) -> int | None:
        if self.response.status == 206:
            content_range = self.response.getheader("Content-Range", "")
            total = content_range.rpartition("/")[2]
            return int(total) if total.isdigit() else None
        return self.response.length

    def read(self, size: int) -> bytes:
        if self.done:
            return b""
        try:
            data = self.response.read1(size)
        except TimeoutError:
            raise FetchError(
                f"{_host(self.url)} stopped sending: no data for {self.client.options.read_timeout:g} s "
                f"after {self.start + self.read_bytes} bytes of {self.url}"
            ) from None
        except http.client.IncompleteRead:
            data = b""
        except (OSError, http.client.HTTPException) as error:
            raise FetchError(f"reading {self.url} failed after {self.read_bytes} bytes: {error}") from None
        self.read_bytes += len(data)
        self.client.last_activity = time.monotonic()
        if not data and size:
            if self.length is not None and self.read_bytes < self.length:
                raise FetchError(
                    f"{self.url} ended early: the connection closed after {self.start + self.read_bytes} of "
                    f"{self.start + self.length} bytes"
                )
            if self.response.chunked and not self.response.isclosed():
                raise FetchError(f"{self.url} ended early: the chunked body stopped after {self.read_bytes} bytes")
            self.done = True
            self.client._finish(self.connection, self.response)
        return data

    def read_all(self, limit: int) -> bytes:
        """The whole body, refused beyond ``limit`` bytes (a playlist, not a movie)."""
        chunks = io.BytesIO()
        while chunk := self.read(64 * 1024):
            chunks.write(chunk)
            if chunks.tell() > limit:
                self.close()
                raise FetchError(f"{self.url} is larger than {limit} bytes: not a playlist")
        return chunks.getvalue()

    def close(self) -> None:
        if not self.done:
            self.done = True
            self.connection.close()  # an unread rest of the body: the connection cannot serve another request


class HttpFile:
    """A file-like object over one URL for PyAV: ``read``, and ``seek``/``tell`` by Range requests when the server
    takes them (PyAV asks ``seekable()`` once, when the file is opened)."""

    def __init__(self, client: HttpClient, url: str, body: HttpBody | None = None) -> None:
        self.client = client
        self.url = url
        first = body if body is not None else client.get(url)
        self._body: HttpBody | None = first
        self.final_url = first.url
        self.content_type = first.content_type
        self.size = first.size
        self._seekable = first.accepts_ranges
        self.pos = 0
        # FFmpeg reads again after a failed read; PyAV would then stash a second exception over the first.  The
        # first failure is the one to report, so later reads see an end instead.
        self.failed: FetchError | None = None

    def readable(self) -> bool:
        return True

    def seekable(self) -> bool:
        return self._seekable

    def tell(self) -> int:
        return self.pos

    def read(self, size: int = -1) -> bytes:
        if size < 0:
            size = 1 << 20
        if self.failed is not None or (self.size is not None and self.pos >= self.size):
            return b""
        try:
            if self._body is None:
                self._body = self._open_at(self.pos)
            data = self._body.read(size)
        except FetchError as error:
            self.failed = error
            raise
        self.pos += len(data)
        return data

    def _open_at(self, position: int) -> HttpBody:
        body = self.client.get(self.final_url, offset=position)
        skip = position - body.start
        while skip > 0:  # the server ignored the Range: read up to the position
            chunk = body.read(min(skip, 1 << 16))
            if not chunk:
                raise FetchError(f"{self.final_url} ended before byte {position}")
            skip -= len(chunk)
        return body

    def seek(self, offset: int, whence: int = io.SEEK_SET) -> int:
        if whence == io.SEEK_CUR:
            offset += self.pos
        elif whence == io.SEEK_END:
            if self.size is None:
                raise FetchError(f"cannot seek from the end of {self.url}: its size is unknown")
            offset += self.size
        if offset < 0:
            raise FetchError(f"seek to a negative position in {self.url}")
        if offset == self.pos:
            return offset
        body = self._body
        if body is not None and 0 < offset - self.pos <= SHORT_SEEK and not body.done:
            while self.pos < offset:
                chunk = body.read(min(offset - self.pos, 1 << 16))
                if not chunk:
                    break
                self.pos += len(chunk)
            if self.pos == offset:
                return offset
        if body is not None:
            body.close()
        self._body = None  # the next read asks for the rest from the new position
        self.pos = offset
        return offset

    def close(self) -> None:
        if self._body is not None:
            self._body.close()
            self._body = None
