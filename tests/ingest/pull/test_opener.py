"""What PyAV opens for a URL ingress: pages refused in the reference's words, playlists checked, segments retried
and skipped, a live playlist that stops changing ended — against a real local HTTP server."""

from collections.abc import Iterator
from pathlib import Path

import pytest

from pyingress.ingest.pull.http import FetchError, FetchOptions, HttpClient, HttpFile
from pyingress.ingest.pull.opener import PullOpener, PullRefused, variant_urls
from tests.harness.media_server import MediaServer

MEDIA = "#EXTM3U\n#EXT-X-TARGETDURATION:1\n#EXTINF:1.0,\nseg0.ts\n#EXTINF:1.0,\nseg1.ts\n"


@pytest.fixture(scope="module")
def root(tmp_path_factory: pytest.TempPathFactory) -> Path:
    directory = tmp_path_factory.mktemp("opener")
    (directory / "live.m3u8").write_text(MEDIA)
    (directory / "vod.m3u8").write_text(MEDIA + "#EXT-X-ENDLIST\n")
    (directory / "seg0.ts").write_bytes(b"\x47" * 188)
    (directory / "empty.mp4").write_bytes(b"")
    (directory / "loop.m3u8").write_text("#EXTM3U\n#EXT-X-STREAM-INF:BANDWIDTH=1\nloop.m3u8\n")
    return directory


@pytest.fixture(scope="module")
def server(root: Path) -> Iterator[MediaServer]:
    with MediaServer(root) as running:
        yield running


class FakeTime:
    def __init__(self) -> None:
        self.now = 100.0
        self.slept: list[float] = []

    def clock(self) -> float:
        return self.now

    def sleep(self, seconds: float) -> None:
        self.slept.append(seconds)
        self.now += seconds


def opener(url: str, time: FakeTime | None = None, **options: object) -> PullOpener:
    time = time or FakeTime()
    client = HttpClient(FetchOptions(open_timeout=2, read_timeout=1))
    return PullOpener(client, url, clock=time.clock, sleep=time.sleep, **options)  # type: ignore[arg-type]


def test_a_web_page_is_refused_with_the_references_words(server: MediaServer) -> None:
    with pytest.raises(PullRefused) as refused:
        opener(server.url("html"))(server.url("html"), 1, {})
    assert refused.value.error.message == "unsupported mime type (text/html) for the source media"
    assert refused.value.error.code == "not_acceptable"


def test_an_empty_file_is_named(server: MediaServer) -> None:
    url = server.file_url("empty.mp4")
    with pytest.raises(FetchError, match=r"empty.mp4 is empty \(0 bytes\)"):
        opener(url)(url, 1, {})


def test_a_file_opens_as_a_seekable_body(server: MediaServer) -> None:
    url = server.file_url("seg0.ts")
    opened = opener(url)(url, 1, {})
    assert isinstance(opened, HttpFile) and opened.seekable()


def test_a_playlist_is_read_whole_and_live_is_told_from_vod(server: MediaServer) -> None:
    for name, live in (("live.m3u8", True), ("vod.m3u8", False)):
        url = server.file_url(name)
        pull = opener(url)
        assert pull(url, 1, {}).read() == MEDIA.encode() + (b"" if live else b"#EXT-X-ENDLIST\n")
        assert pull.hls and pull.live is live


def test_a_playlist_that_lists_itself_is_refused(server: MediaServer) -> None:
    url = server.file_url("loop.m3u8")
    with pytest.raises(FetchError, match="lists itself as a variant"):
        opener(url)(url, 1, {})
    with pytest.raises(FetchError, match="lists itself as a variant"):
        opener(server.url("self.m3u8"))(server.url("self.m3u8"), 1, {})


def test_a_live_playlist_that_stops_changing_ends_the_session(server: MediaServer) -> None:
    time = FakeTime()
    url = server.file_url("live.m3u8")
    pull = opener(url, time, live_stall_timeout=10)
    pull(url, 1, {})
    time.now += 9
    pull(url, 1, {})  # a reload of the same text, within the window
    time.now += 2
    with pytest.raises(FetchError, match=r"live HLS playlist .* has not changed for 11 s: the stream has stopped"):
        pull(url, 1, {})


def test_a_missing_segment_is_retried_then_skipped_and_too_many_end_it(server: MediaServer) -> None:
    time = FakeTime()
    url = server.file_url("live.m3u8")
    pull = opener(url, time, retries=2, retry_delay=0.5, max_skipped=2)
    pull(url, 1, {})
    assert pull(server.file_url("seg0.ts"), 1, {}).read(188) == b"\x47" * 188
    skipped = pull(server.file_url("seg1.ts"), 1, {})
    assert skipped.read(10) == b"" and pull.segments_skipped == 1 and time.slept == [0.5, 1.0]
    with pytest.raises(FetchError, match=r"2 HLS segments in a row could not be fetched; last: HTTP 404 Not Found"):
        pull(server.file_url("seg2.ts"), 1, {})


def test_a_forbidden_segment_is_not_retried(server: MediaServer) -> None:
    time = FakeTime()
    url = server.file_url("live.m3u8")
    pull = opener(url, time, retries=3)
    pull(url, 1, {})
    pull(server.url("status/403"), 1, {})
    assert time.slept == [] and pull.segments_skipped == 1


def test_variant_urls_are_resolved_against_the_playlist() -> None:
    text = (
        '#EXTM3U\n#EXT-X-MEDIA:TYPE=AUDIO,GROUP-ID=a,NAME=en,URI="audio/en.m3u8"\n'
        "#EXT-X-STREAM-INF:BANDWIDTH=1\nlow/index.m3u8\n#EXT-X-STREAM-INF:BANDWIDTH=2\nhttps://cdn/high.m3u8\n"
    )
    assert variant_urls(text, "http://h/live/master.m3u8") == [
        "http://h/live/audio/en.m3u8",
        "http://h/live/low/index.m3u8",
        "https://cdn/high.m3u8",
    ]
