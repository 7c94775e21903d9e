"""A local HTTP(S) server for URL pull tests: real files with Range support, and the ways servers go wrong.

It runs aiohttp on its own thread and event loop, so blocking clients in the test's thread (the HTTP client's unit
tests) and pyingress subprocesses alike can use it.  Paths:

    /files/<path>            a file under ``root`` (Range, Accept-Ranges, a content type by extension)
    /noranges/<path>         the same without Range support (200 and the whole body to every request)
    /status/<code>           an empty answer with that status
    /html                    a text/html page
    /redirect/<n>/<path>     n redirects, then /files/<path>
    /loop                    redirects to itself
    /stall/<path>?after=N    the headers and N bytes of a file, then silence (the connection stays open)
    /lie/<path>              a Content-Length 1 MiB larger than the file, the file, then a close
    /slow/<path>?delay=S     the file after S seconds of silence before the headers
    /self.m3u8               an HLS master playlist whose only variant is itself
    /counts                  JSON: requests per path so far

HTTPS: ``tls=True`` serves the same paths with a self-signed certificate for 127.0.0.1/localhost
(``cert_path`` is the CA file a client must trust).
"""

import asyncio
import contextlib
import ssl
import threading
from collections import Counter
from pathlib import Path

from aiohttp import web

from tests.harness.ports import free_port
from tests.harness.tls import self_signed_cert

CONTENT_TYPES = {
    ".mp4": "video/mp4",
    ".m4a": "audio/mp4",
    ".mov": "video/quicktime",
    ".mkv": "video/x-matroska",
    ".webm": "video/webm",
    ".ogg": "audio/ogg",
    ".mp3": "audio/mpeg",
    ".ts": "video/mp2t",
    ".m3u8": "application/vnd.apple.mpegurl",
    ".flv": "video/x-flv",
    ".wav": "audio/wav",
    ".txt": "text/plain",
    ".bin": "application/octet-stream",
}


class MediaServer:
    def __init__(self, root: Path, tls: bool = False) -> None:
        self.root = root
        self.port = free_port()
        self.tls = tls
        self.cert_path: Path | None = None
        self.counts: Counter[str] = Counter()
        self._loop: asyncio.AbstractEventLoop | None = None
        self._runner: web.AppRunner | None = None
        self._thread: threading.Thread | None = None
        self._stop: asyncio.Event | None = None
        self._stalled: set[web.StreamResponse] = set()

    @property
    def base_url(self) -> str:
        return f"{'https' if self.tls else 'http'}://127.0.0.1:{self.port}"

    def url(self, path: str) -> str:
        return f"{self.base_url}/{path.lstrip('/')}"

    def file_url(self, name: str) -> str:
        return self.url(f"files/{name}")

    def start(self) -> "MediaServer":
        ready = threading.Event()
        self._thread = threading.Thread(target=self._run, args=(ready,), name="media-server", daemon=True)
        self._thread.start()
        if not ready.wait(15):
            raise RuntimeError("the media server did not start")
        return self

    def stop(self) -> None:
        if self._loop is not None and self._stop is not None:
            self._loop.call_soon_threadsafe(self._stop.set)
        if self._thread is not None:
            self._thread.join(timeout=10)

    def __enter__(self) -> "MediaServer":
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    # -- inside the server's thread --

    def _run(self, ready: threading.Event) -> None:
        loop = asyncio.new_event_loop()
        self._loop = loop
        try:
            loop.run_until_complete(self._serve(ready))
        finally:
            loop.close()

    async def _serve(self, ready: threading.Event) -> None:
        self._stop = asyncio.Event()
        app = web.Application()
        app.router.add_get("/files/{path:.+}", self._file)
        app.router.add_get("/noranges/{path:.+}", self._no_ranges)
        app.router.add_get("/status/{code}", self._status)
        app.router.add_get("/html", self._html)
        app.router.add_get("/redirect/{count}/{path:.+}", self._redirect)
        app.router.add_get("/loop", self._loop_redirect)
        app.router.add_get("/stall/{path:.+}", self._stall)
        app.router.add_get("/lie/{path:.+}", self._lie)
        app.router.add_get("/slow/{path:.+}", self._slow)
        app.router.add_get("/self.m3u8", self._self_playlist)
        app.router.add_get("/counts", self._counts)
        app.middlewares.append(self._count)
        context = None
        if self.tls:
            directory = self.root / ".tls"
            directory.mkdir(exist_ok=True)
            cert, key = self_signed_cert(directory)
            self.cert_path = cert
            context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
            context.load_cert_chain(cert, key)
        self._runner = web.AppRunner(app, handler_cancellation=True, shutdown_timeout=0.5)
        await self._runner.setup()
        site = web.TCPSite(self._runner, "127.0.0.1", self.port, ssl_context=context)
        await site.start()
        ready.set()
        await self._stop.wait()
        for response in list(self._stalled):
            with contextlib.suppress(Exception):
                response.force_close()
        await self._runner.cleanup()

    @web.middleware
    async def _count(self, request: web.Request, handler):  # type: ignore[no-untyped-def]
        self.counts[request.path] += 1
        return await handler(request)

    def _path(self, request: web.Request) -> Path:
        path = (self.root / request.match_info["path"]).resolve()
        if not path.is_relative_to(self.root.resolve()) or not path.is_file():
            raise web.HTTPNotFound()
        return path

    @staticmethod
    def _type(path: Path) -> str:
        return CONTENT_TYPES.get(path.suffix, "application/octet-stream")

    async def _file(self, request: web.Request) -> web.StreamResponse:
        path = self._path(request)
        return web.FileResponse(path, headers={"Content-Type": self._type(path)})

    async def _no_ranges(self, request: web.Request) -> web.StreamResponse:
        path = self._path(request)
        return web.Response(body=path.read_bytes(), content_type=self._type(path))

    async def _status(self, request: web.Request) -> web.Response:
        return web.Response(status=int(request.match_info["code"]), text="nope\n")

    async def _html(self, request: web.Request) -> web.Response:
        return web.Response(text="<!doctype html><html><body>Not a video</body></html>\n", content_type="text/html")

    async def _redirect(self, request: web.Request) -> web.Response:
        count, path = int(request.match_info["count"]), request.match_info["path"]
        target = f"/redirect/{count - 1}/{path}" if count > 1 else f"/files/{path}"
        raise web.HTTPFound(target)

    async def _loop_redirect(self, request: web.Request) -> web.Response:
        raise web.HTTPFound("/loop")

    async def _stall(self, request: web.Request) -> web.StreamResponse:
        path = self._path(request)
        data = path.read_bytes()
        after = int(request.query.get("after", "65536"))
        response = web.StreamResponse(headers={"Content-Type": self._type(path)})
        response.content_length = len(data)
        await response.prepare(request)
        await response.write(data[:after])
        self._stalled.add(response)
        try:
            await asyncio.sleep(3600)
        finally:
            self._stalled.discard(response)
        return response

    async def _lie(self, request: web.Request) -> web.StreamResponse:
        path = self._path(request)
        data = path.read_bytes()
        response = web.StreamResponse(headers={"Content-Type": self._type(path)})
        response.content_length = len(data) + (1 << 20)
        await response.prepare(request)
        await response.write(data)
        if request.transport is not None:
            request.transport.close()
        return response

    async def _slow(self, request: web.Request) -> web.StreamResponse:
        await asyncio.sleep(float(request.query.get("delay", "30")))
        return await self._file(request)

    async def _self_playlist(self, request: web.Request) -> web.Response:
        text = "#EXTM3U\n#EXT-X-STREAM-INF:BANDWIDTH=1000000\nself.m3u8\n"
        return web.Response(text=text, content_type="application/vnd.apple.mpegurl")

    async def _counts(self, request: web.Request) -> web.Response:
        return web.json_response(dict(self.counts))
