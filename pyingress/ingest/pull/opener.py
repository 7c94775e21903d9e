"""Everything PyAV opens for one URL ingress — the URL itself, HLS playlists, segments — goes through ``PullOpener``.

FFmpeg's HLS demuxer reads the playlists and picks the segments; this opener decides what a failure means:

- **the URL itself** fails at once, in words (http.py); a web page (``text/html``) is refused with the reference's
  ``unsupported mime type (text/html) for the source media`` before FFmpeg guesses at it;
- **a playlist** is read whole (at most ``MAX_PLAYLIST`` bytes) and checked: one that lists itself as a variant is
  refused (FFmpeg would load it forever); a live one (no ``#EXT-X-ENDLIST``) that stops changing for
  ``live_stall_timeout`` means the producer has stopped: ERROR, not a wait without end.  A reload that fails is
  retried ``retries`` times, ``retry_delay`` apart, then ends the session naming the failure;
- **a segment** that cannot be fetched (404, 5xx, a stall) is retried the same way, then skipped — FFmpeg plays on
  with the next one, as a player would — and counted; ``max_skipped`` in a row end the session.

A failure that ends the session is raised here; PyAV keeps it and raises it again from the demuxer call that caused
the open, so the worker sees our words rather than FFmpeg's errno.
"""

import io
import logging
import time
from collections.abc import Callable
from urllib.parse import urljoin, urlsplit

from pyingress.control.errors import IngressError
from pyingress.ingest.pull.formats import PAGE_TYPES, unsupported_mime
from pyingress.ingest.pull.http import FetchError, HttpBody, HttpClient, HttpFile

log = logging.getLogger("pyingress.pull")

MAX_PLAYLIST = 4 << 20
# What PyAV reads from: a body being fetched, or one fetched whole (a playlist, a skipped segment's nothing).
MediaFile = HttpFile | io.BytesIO
PLAYLIST_TYPES = ("application/vnd.apple.mpegurl", "application/x-mpegurl", "audio/mpegurl", "audio/x-mpegurl")


def is_playlist(url: str, content_type: str) -> bool:
    path = urlsplit(url).path.lower()
    return content_type in PLAYLIST_TYPES or path.endswith((".m3u8", ".m3u"))


def variant_urls(text: str, base: str) -> list[str]:
    """The URIs a master playlist lists after ``#EXT-X-STREAM-INF`` (and in ``#EXT-X-MEDIA`` tags), resolved."""
    found: list[str] = []
    expect_uri = False
    for raw in text.splitlines():
        line = raw.strip()
        if line.startswith("#EXT-X-STREAM-INF"):
            expect_uri = True
        elif line.startswith("#EXT-X-MEDIA") and 'URI="' in line:
            found.append(urljoin(base, line.split('URI="', 1)[1].split('"', 1)[0]))
        elif line and not line.startswith("#") and expect_uri:
            found.append(urljoin(base, line))
            expect_uri = False
    return found


def _target_duration(text: str, default: float) -> float:
    for line in text.splitlines():
        if line.startswith("#EXT-X-TARGETDURATION:"):
            try:
                value = float(line.split(":", 1)[1].strip())
            except ValueError:
                return default
            return value if 0 < value <= 60 else default
    return default


class PullOpener:
    """The ``io_open`` PyAV calls for every URL it reads (main URL, playlists, segments, keys)."""

    def __init__(
        self,
        client: HttpClient,
        url: str,
        *,
        live_stall_timeout: float = 15.0,
        retries: int = 3,
        retry_delay: float = 0.5,
        max_skipped: int = 3,
        clock: Callable[[], float] = time.monotonic,
        sleep: Callable[[float], None] = time.sleep,
    ) -> None:
        self.client = client
        self.url = url
        self.live_stall_timeout = live_stall_timeout
        self.retries = retries
        self.retry_delay = retry_delay
        self.max_skipped = max_skipped
        self.clock = clock
        self.sleep = sleep
        self.hls = False  # the URL is a playlist
        self.live = False  # the last media playlist read has no end marker
        self.target_duration = 6.0  # its #EXT-X-TARGETDURATION (seconds), RFC 8216's usual value until read
        self.segments = 0
        self.segments_skipped = 0
        self.skipped_in_a_row = 0
        self.playlist_reloads = 0
        self._playlists: dict[str, tuple[bytes, float]] = {}  # url → (last text, when it last changed)
        self.main: HttpFile | None = None

    def __call__(self, url: str, flags: int, options: dict[str, str]) -> MediaFile:
        if not self._playlists and self.main is None and url == self.url:
            return self._open_main(url)
        if self.hls and (url in self._playlists or is_playlist(url, "")):
            return self._with_retries(url, self._open_playlist, "HLS playlist")
        return self._open_segment(url)

    # -- the URL itself --

    def _open_main(self, url: str) -> MediaFile:
        body = self.client.get(url)
        if body.content_type in PAGE_TYPES:
            body.close()
            raise PullRefused(unsupported_mime(body.content_type))
        if body.length == 0:
            body.close()
            raise FetchError(f"{url} is empty (0 bytes)")
        if is_playlist(body.url, body.content_type):
            self.hls = True
            return self._playlist(url, body)
        self.main = HttpFile(self.client, url, body)
        return self.main

    # -- playlists --

    def _open_playlist(self, url: str) -> MediaFile:
        self.playlist_reloads += 1
        return self._playlist(url, self.client.get(url))

    def _playlist(self, url: str, body: HttpBody) -> MediaFile:
        data = body.read_all(MAX_PLAYLIST)
        if not data.strip():
            raise FetchError(f"HLS playlist {url} is empty")
        text = data.decode("utf-8", errors="replace")
        if url != self.url and not text.lstrip("\ufeff").startswith("#EXTM3U"):
            raise FetchError(f"{url} is not an HLS playlist (no #EXTM3U)")
        if body.url in variant_urls(text, body.url) or url in variant_urls(text, body.url):
            raise FetchError(f"HLS playlist {url} lists itself as a variant", final=True)
        now = self.clock()
        previous = self._playlists.get(url)
        changed_at = now if previous is None or previous[0] != data else previous[1]
        self._playlists[url] = (data, changed_at)
        if "#EXTINF" in text:  # a media playlist (a master lists variants, not segments)
            self.live = "#EXT-X-ENDLIST" not in text
            self.target_duration = _target_duration(text, self.target_duration)
            if self.live and now - changed_at > self.live_stall_timeout:
                raise FetchError(
                    f"live HLS playlist {url} has not changed for {now - changed_at:.0f} s: the stream has stopped",
                    final=True,
                )
        return io.BytesIO(data)

    # -- segments --

    def _open_segment(self, url: str) -> MediaFile:
        self.segments += 1
        try:
            opened = self._with_retries(url, lambda u: HttpFile(self.client, u), "HLS segment" if self.hls else "")
        except FetchError as error:
            if not self.hls:
                raise
            self.segments_skipped += 1
            self.skipped_in_a_row += 1
            if self.skipped_in_a_row >= self.max_skipped:
                raise FetchError(
                    f"{self.skipped_in_a_row} HLS segments in a row could not be fetched; last: {error}"
                ) from None
            log.warning("skipping HLS segment %s: %s", url, error)
            return io.BytesIO(b"")  # FFmpeg moves on to the next segment
        self.skipped_in_a_row = 0
        return opened

    def _with_retries(self, url: str, open_: Callable[[str], MediaFile], what: str) -> MediaFile:
        attempt = 0
        while True:
            try:
                return open_(url)
            except FetchError as error:
                attempt += 1
                refused = error.status is not None and error.status < 500 and error.status != 404
                if error.final or refused or attempt > self.retries:
                    if attempt > 1:
                        raise FetchError(f"{error.message} ({attempt} tries)", error.status) from None
                    raise
                log.info("%s %s failed (%s); retry %d of %d", what or "fetch", url, error, attempt, self.retries)
                self.sleep(self.retry_delay * attempt)


class PullRefused(Exception):
    """The source is not media we take: carries the reference's IngressError (its message is the ingress error)."""

    def __init__(self, error: IngressError) -> None:
        super().__init__(error.message)
        self.error = error
