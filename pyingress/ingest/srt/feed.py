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
from pyingress.ingest.srt.stats import SrtStatsExport
from pyingress.ingest.srt.ts_reader import PeerGone, SrtStream, TsError, TsReader
from pyingress.media.packets import EncodedPacket

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


class HandOver:
    """The one way items and the end cross from an SRT thread to the event loop that owns ``source``."""

    def __init__(self, source: MediaSource, loop: asyncio.AbstractEventLoop) -> None:
        self.source = source
        self.loop = loop
        self.packets = 0
        self.last_packet = time.monotonic()

    def put(self, item: SourceItem) -> None:
        """Queue ``item``, waiting while the source is full (BLOCK); RuntimeError once the loop is closed."""
        asyncio.run_coroutine_threadsafe(self.source.put(item), self.loop).result()
        if isinstance(item, EncodedPacket):
            self.packets += 1
            self.last_packet = time.monotonic()

    def end(self, reason: EndReason, error: str | None, then: Callable[[], None] | None = None) -> None:
        def ended() -> None:
            self.source.end(reason, error)
            if then is not None:
                then()

        with contextlib.suppress(RuntimeError):  # a closed loop has nobody left to tell
            self.loop.call_soon_threadsafe(ended)


def pump(stream: StatsStream, hand_over: HandOver, read_timeout: float, closing: Callable[[], bool]) -> str | None:
    """Read one connection's MPEG-TS into the source until it stops; returns the error that ends the source (None:
    the connection ended, or the loop is gone).  Raises nothing; always closes the socket."""
    label = hand_over.source.resource_id
    reader: TsReader | None = None
    error = None
    try:
        # SRTO_RCVTIMEO bounds the silence of a connected peer (libsrt's peer-idle timeout, 5 s, covers a dead
        # one); set here, not on the loop, like every other call on this socket.
        stream.sock.set(Opt.RCVTIMEO, int(read_timeout * 1000))
        reader = TsReader(stream, label)
        for description in reader.descriptions():
            hand_over.put(description)
        for packet in reader.packets_in_order():
            hand_over.put(packet)
    except (PeerGone, SrtError) as gone:
        if not closing():
            log.info("SRT %s: %s", label, gone)
    except TsError as bad:
        error = str(bad)
        log.warning("SRT %s: %s", label, bad)
    except RuntimeError as exc:  # the event loop is closed: the service is gone
        log.info("SRT %s: %s", label, exc)
    except Exception as exc:  # a bug here must end this session in words, and nothing else
        log.exception("SRT %s failed", label)
        error = f"SRT ingest failed: {type(exc).__name__}: {exc}"
    finally:
        if reader is not None:
            with contextlib.suppress(Exception):
                reader.close()
        stream.sample()
        stream.sock.close()
    log.info(
        "SRT %s connection ended (%s): %d messages, %d bytes, %s",
        label,
        error or "closed",
        stream.messages,
        stream.bytes,
        stream.last,
    )
    return error


class SrtFeed:
    """Moves one accepted SRT connection's MPEG-TS into ``source`` until either side stops."""

    def __init__(
        self,
        sock: SrtSocket,
        source: MediaSource,
        loop: asyncio.AbstractEventLoop,
        *,
        read_timeout: float,
        on_end: Callable[["SrtFeed"], None] | None = None,
    ) -> None:
        self.sock = sock
        self.source = source
        self.hand_over = HandOver(source, loop)
        self.read_timeout = read_timeout
        self.on_end = on_end
        self.stats = SrtStatsExport(source.resource_id)
        self.stream = StatsStream(sock, self.stats.update)
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

    def _run(self) -> None:
        error = pump(self.stream, self.hand_over, self.read_timeout, lambda: self._closing)
        self.stats.remove()
        if error is not None:
            reason = EndReason.ERROR
        else:
            reason = EndReason.SHUTDOWN if self._shutdown else EndReason.DISCONNECTED
        self.hand_over.end(reason, error, then=self._ended)

    def _ended(self) -> None:
        if self.on_end is not None:
            self.on_end(self)
