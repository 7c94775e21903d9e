"""The pull HTTP client against a real local server: bodies, ranges, redirects, TLS, and every failure in words."""

import io
from collections.abc import Iterator
from pathlib import Path

import pytest

from pyingress.ingest.pull.http import FetchError, FetchOptions, HttpClient, HttpFile
from tests.harness.media_server import MediaServer
from tests.harness.ports import free_port

DATA = bytes(range(256)) * 4096  # 1 MiB, every offset recognisable


@pytest.fixture(scope="module")
def root(tmp_path_factory: pytest.TempPathFactory) -> Path:
    directory = tmp_path_factory.mktemp("http-files")
    (directory / "data.bin").write_bytes(DATA)
    (directory / "empty.bin").write_bytes(b"")
    return directory


@pytest.fixture(scope="module")
def server(root: Path) -> Iterator[MediaServer]:
    with MediaServer(root) as running:
        yield running


@pytest.fixture(scope="module")
def tls_server(root: Path) -> Iterator[MediaServer]:
    with MediaServer(root, tls=True) as running:
        yield running


def client(**options: object) -> HttpClient:
    return HttpClient(FetchOptions(**{"open_timeout": 2.0, "read_timeout": 1.0, **options}))  # type: ignore[arg-type]


def failure(url: str, **options: object) -> FetchError:
    with pytest.raises(FetchError) as failed:
        file = HttpFile(client(**options), url)
        while file.read(1 << 20):
            pass
    return failed.value


def test_a_file_reads_whole_with_its_type_and_size(server: MediaServer) -> None:
    file = HttpFile(client(), server.file_url("data.bin"))
    assert (file.content_type, file.size, file.seekable()) == ("application/octet-stream", len(DATA), True)
    chunks = []
    while chunk := file.read(65536):
        chunks.append(chunk)
    assert b"".join(chunks) == DATA and file.tell() == len(DATA)


def test_seeking_asks_for_a_range_and_short_seeks_read_on(server: MediaServer) -> None:
    http = client()
    file = HttpFile(http, server.file_url("data.bin"))
    assert file.read(10) == DATA[:10]
    file.seek(1000)  # short: read on in the same response
    assert file.read(10) == DATA[1000:1010] and http.requests == 1
    file.seek(900_000)
    assert file.read(100) == DATA[900_000:900_100] and http.requests == 2
    file.seek(-16, io.SEEK_END)
    assert file.read(100) == DATA[-16:]
    file.seek(5, io.SEEK_SET)
    assert file.read(5) == DATA[5:10]


def test_a_server_without_ranges_is_not_seekable(server: MediaServer) -> None:
    assert not HttpFile(client(), server.url("noranges/data.bin")).seekable()


def test_connections_are_reused_for_the_next_request(server: MediaServer) -> None:
    http = client()
    for _ in range(3):
        body = http.get(server.file_url("empty.bin"))
        assert body.read(10) == b""
    assert len(http._idle) == 1


def test_redirects_are_followed(server: MediaServer) -> None:
    file = HttpFile(client(), server.url("redirect/3/data.bin"))
    assert file.final_url == server.file_url("data.bin") and file.read(4) == DATA[:4]


@pytest.mark.parametrize(
    ("path", "options", "message"),
    [
        ("status/404", {}, "HTTP 404 Not Found from {base}/status/404"),
        ("status/403", {}, "HTTP 403 Forbidden from {base}/status/403"),
        ("status/500", {}, "HTTP 500 Internal Server Error from {base}/status/500"),
        ("loop", {}, "redirect loop: {base}/loop redirects back to itself"),
        ("redirect/5/data.bin", {"max_redirects": 2}, "too many redirects (more than 2) from {base}/redirect/5"),
        ("stall/data.bin?after=1000", {}, "127.0.0.1:{port} stopped sending: no data for 1 s after 1000 bytes"),
        ("lie/data.bin", {}, "{base}/lie/data.bin ended early: the connection closed after 1048576 of 2097152"),
        ("slow/data.bin?delay=5", {}, "no answer from 127.0.0.1:{port} within 2 s for {base}/slow/data.bin"),
    ],
)
def test_failures_are_named(server: MediaServer, path: str, options: dict[str, object], message: str) -> None:
    error = failure(server.url(path), **options)
    assert str(error).startswith(message.format(base=server.base_url, port=server.port)), str(error)


def test_a_status_error_carries_its_status(server: MediaServer) -> None:
    assert failure(server.url("status/404")).status == 404


def test_refused_and_unresolvable_hosts_are_named() -> None:
    port = free_port()
    assert str(failure(f"http://127.0.0.1:{port}/x.mp4")) == f"connection refused by 127.0.0.1:{port}"
    assert str(failure("http://nonexistent.invalid/x.mp4")).startswith("cannot resolve host nonexistent.invalid: ")


def test_other_schemes_are_refused() -> None:
    assert str(failure("ftp://127.0.0.1/x.mp4")) == "unsupported URL scheme 'ftp': ftp://127.0.0.1/x.mp4"


def test_https_is_verified_against_the_system_cas_or_the_configured_file(tls_server: MediaServer) -> None:
    url = tls_server.file_url("data.bin")
    error = failure(url)
    assert str(error).startswith("TLS certificate of 127.0.0.1 not trusted: self-signed certificate"), str(error)
    assert tls_server.cert_path is not None
    file = HttpFile(client(ca_file=str(tls_server.cert_path)), url)
    assert file.read(4) == DATA[:4]


def test_plain_http_to_a_tls_port_is_a_named_failure(tls_server: MediaServer) -> None:
    error = failure(tls_server.file_url("data.bin").replace("https://", "http://"))
    assert "127.0.0.1" in str(error), str(error)


def test_a_read_after_a_failure_sees_an_end_not_a_second_error(server: MediaServer) -> None:
    file = HttpFile(client(), server.url("stall/data.bin?after=1000"))
    assert len(file.read(1000)) == 1000
    with pytest.raises(FetchError):
        file.read(1000)
    assert file.read(1000) == b"" and file.failed is not None
