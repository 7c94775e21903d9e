"""One connected SRT socket feeding a ``MediaSource``: a thread of its own reads, demuxes and hands items over.

The thread blocks in libsrt (``srt_recvmsg``, GIL released) and in PyAV's demuxer; every item crosses to the event
loop explicitly — ``run_coroutine_threadsafe(source.put(item))`` waited on, so the BLOCK flow policy holds: when the
session falls behind, this thread stops reading, libsrt's receive buffer fills and its too-late drop (TLPKTDROP)
sheds what is older than the latency, instead of memory growing here.  The end is handed over the same way.  No
asyncio object is touched from this thread.

Closing (the session's ``source.close``, shutdown) closes the socket from a short-lived thread of its own, never
the loop's: ``srt_close`` may wait for libsrt's receiver thread, which may itself be waiting for the loop in a
listen callback (libsrt.py).  The blocked read then fails and the thread ends.
"""

import asyncio
import contextlib
import logging
import threading
import time
from collections.abc import Callable

from pyingress.ingest.flow import SourceItem
from pyingress.ingest.source import EndReason, MediaSource
from pyingress.ingest.srt.libsrt import Opt, ReceiveStats, SrtError, SrtSocket
from pyingress.ingest.srt.ts_reader import PeerGone, SrtStream, TsError, TsReader

log = logging.getLogger("pyingress.srt")

STATS_INTERVAL = 1.0  # s between libsrt statistics samples


def close_soon(sock: SrtSocket) -> None:
    """Close ``sock`` off the calling thread (see the module docstring for why)."""
    threading.Thread(target=sock.close, name=f"srt-close-{sock.id}", daemon=True).start()


class StatsStream(SrtStream):
    """The socket as PyAV reads it, sampling libsrt's statistics about once a second between reads."""

    def __init__(self, sock: SrtSocket, on_stats: Callable[[ReceiveStats], None] | None) -> None:
        super().__init__(sock)
        self.on_stats = on_stats
        self.last: ReceiveStats | None = None
        self._next = time.monotonic() + STATS_INTERVAL

    def read(self, size: int = -1) -> bytes:
        data = super().read(size)
        if time.monotonic() >= self._next:
            self.sample()
        return data

    def sample(self) -> None:
        self._next = time.monotonic() + STATS_INTERVAL
        try:
            self.last = self.sock.stats()
        except SrtError:
            return  # the connection is going: its last sample stands
        if self.on_stats is not None:
            self.on_stats(self.last)


class SrtFeed:
    """Moves one SRT connection's MPEG-TS into ``source`` until either side stops."""

    def __init__(
        self,
        sock: SrtSocket,
        source: MediaSource,
        loop: asyncio.AbstractEventLoop,
        *,
        read_timeout: float,
        on_stats: Callable[[ReceiveStats], None] | None = None,
        on_end: Callable[["SrtFeed"], None] | None = None,
    ) -> None:
        self.sock = sock
        self.source = source
        self.loop = loop
        self.read_timeout = read_timeout
        self.on_end = on_end
        self.stream = StatsStream(sock, on_stats)
        self.thread = threading.Thread(target=self._run, name=f"srt-feed-{sock.id}", daemon=True)
        self._closing = False
        self._shutdown = False

    def start(self) -> None:
        self.source.on_close(self.close)
        self.thread.start()

    def close(self, reason: str = "", shutdown: bool = False) -> None:
        """Hang up (any thread, idempotent): the reading thread ends soon after (SHUTDOWN if ``shutdown``)."""
        if self._closing:
            return
        self._closing = True
        self._shutdown = shutdown
        if reason:
            log.info("SRT %s: closing (%s)", self.source.resource_id, reason)
        close_soon(self.sock)

    def join(self, timeout: float | None = None) -> None:
        self.thread.join(timeout)

    def _put(self, item: SourceItem) -> None:
        asyncio.run_coroutine_threadsafe(self.source.put(item), self.loop).result()

    def _run(self) -> None:
        reason, error = EndReason.DISCONNECTED, None
        reader: TsReader | None = None
        try:
            # SRTO_RCVTIMEO bounds the silence of a connected publisher (libsrt's peer-idle timeout, 5 s, covers a
            # dead one); set here, not on the loop, like every other call on this socket.
            self.sock.set(Opt.RCVTIMEO, int(self.read_timeout * 1000))
            reader = TsReader(self.stream, self.source.resource_id)
            for description in reader.descriptions():
                self._put(description)
            for packet in reader.packets_in_order():
                self._put(packet)
        except (PeerGone, SrtError) as gone:
            if not self._closing:
                log.info("SRT %s: %s", self.source.resource_id, gone)
        except TsError as bad:
            reason, error = EndReason.ERROR, str(bad)
            log.warning("SRT %s: %s", self.source.resource_id, bad)
        except RuntimeError as exc:  # the event loop is closed: the service is gone
            reason, error = EndReason.SHUTDOWN, None
            log.info("SRT %s: %s", self.source.resource_id, exc)
        except Exception as exc:  # a bug here must end this session in words, and nothing else
            log.exception("SRT %s failed", self.source.resource_id)
            reason, error = EndReason.ERROR, f"SRT ingest failed: {type(exc).__name__}: {exc}"
        finally:
            if reader is not None:
                with contextlib.suppress(Exception):
                    reader.close()
            self.stream.sample()
            self.sock.close()
        if self._shutdown and error is None:
            reason = EndReason.SHUTDOWN
        log.info(
            "SRT %s ended (%s): %d messages, %d bytes, %s",
            self.source.resource_id,
            error or reason.value,
            self.stream.messages,
            self.stream.bytes,
            self.stream.last,
        )
        with contextlib.suppress(RuntimeError):  # a closed loop has nobody left to tell
            self.loop.call_soon_threadsafe(self._ended, reason, error)

    def _ended(self, reason: EndReason, error: str | None) -> None:
        self.source.end(reason, error)
        if self.on_end is not None:
            self.on_end(self)
