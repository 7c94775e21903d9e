"""SRT publishers as users run them: Debian ffmpeg (``-f mpegts srt://…``, it links libsrt) and ``srt-live-transmit``
(Debian srt-tools) fed MPEG-TS by ffmpeg on its stdin."""

import shutil
import subprocess
from pathlib import Path

from tests.harness.processes import PEER_LOGS, PeerError
from tests.harness.publishers import TestPattern, ffmpeg_command, start_ffmpeg

SRT_LIVE_TRANSMIT = "srt-live-transmit"


def access_streamid(stream_key: str) -> str:
    """The SRT access-control form pyingress documents (libsrt docs/features/access-control.md)."""
    return f"#!::r={stream_key},m=publish"


def ffmpeg_srt_url(
    port: int, streamid: str, passphrase: str = "", latency_ms: int = 120, host: str = "127.0.0.1"
) -> str:
    """ffmpeg's srt:// URL: ``latency`` in microseconds (libavformat/libsrt.c); Debian's FFmpeg 5.1 passes ``streamid``
    as written (newer FFmpeg URL-decodes it, and pyingress takes both)."""
    url = f"srt://{host}:{port}?mode=caller&latency={latency_ms * 1000}&pkt_size=1316&streamid={streamid}"
    return url + (f"&passphrase={passphrase}" if passphrase else "")


def start_ffmpeg_srt(
    pattern: TestPattern,
    port: int,
    streamid: str,
    log_path: Path,
    passphrase: str = "",
    latency_ms: int = 120,
    host: str = "127.0.0.1",
) -> subprocess.Popen[bytes]:
    return start_ffmpeg(pattern, ffmpeg_srt_url(port, streamid, passphrase, latency_ms, host), log_path, fmt="mpegts")


def srt_live_transmit_binary() -> str:
    found = shutil.which(SRT_LIVE_TRANSMIT)
    if found is None:
        raise PeerError("srt-live-transmit not installed: run ./run test (its set-up installs Debian srt-tools)")
    return found


class SrtLiveTransmit:
    """ffmpeg encoding ``pattern`` to MPEG-TS on stdout, piped into ``srt-live-transmit file://con srt://…``: a caller
    pushing to ``host:port`` or, with ``listener``, an SRT server there that callers pull from."""

    def __init__(
        self,
        pattern: TestPattern,
        port: int,
        streamid: str,
        log_path: Path,
        passphrase: str = "",
        latency_ms: int = 120,
        host: str = "127.0.0.1",
        listener: bool = False,
    ) -> None:
        self.log_path = log_path
        log = open(log_path, "ab")  # noqa: SIM115 - owned by the two children for their lifetime
        PEER_LOGS.add(log_path)
        params = f"mode={'listener' if listener else 'caller'}&latency={latency_ms}"
        if streamid:
            params += f"&streamid={streamid}"
        if passphrase:
            params += f"&passphrase={passphrase}"
        self.encoder = subprocess.Popen(
            ffmpeg_command(pattern, "-", fmt="mpegts", extra=["-flush_packets", "1"]),
            stdout=subprocess.PIPE,
            stderr=log,
            stdin=subprocess.DEVNULL,
        )
        # A caller makes one attempt (-a:no): a rejection ends it, with the reason in its log.  A listener serves
        # one caller after another.
        options = ["-chunk:1316", "-loglevel:note"] + ([] if listener else ["-a:no"])
        self.transmit = subprocess.Popen(
            [srt_live_transmit_binary(), *options, "file://con", f"srt://{host}:{port}?{params}"],
            stdin=self.encoder.stdout,
            stdout=log,
            stderr=subprocess.STDOUT,
        )
        assert self.encoder.stdout is not None
        self.encoder.stdout.close()  # the transmitter holds the pipe now

    def poll(self) -> int | None:
        return self.transmit.poll()

    def wait(self, timeout: float) -> int:
        return self.transmit.wait(timeout)

    def stop(self) -> None:
        for process in (self.encoder, self.transmit):
            if process.poll() is None:
                process.terminate()
        for process in (self.encoder, self.transmit):
            try:
                process.wait(timeout=10)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait()
