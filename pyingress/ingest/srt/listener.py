"""The SRT listening socket: its options, its listen callback, and the thread that accepts connections.

Everything here runs on libsrt's threads or the accept thread; what to decide and what to do with an accepted
socket are functions given by the front door, which hands them over to its event loop itself.
"""

import logging
import threading
from collections.abc import Callable
from dataclasses import dataclass

from pyingress.ingest.srt.libsrt import Caller, ListenHook, Opt, SrtError, SrtSocket

log = logging.getLogger("pyingress.srt")


@dataclass(frozen=True)
class ListenerOptions:
    host: str
    port: int
    latency_ms: int = 120
    passphrase: str = ""
    pbkeylen: int = 16
    backlog: int = 64


@dataclass(frozen=True)
class Accepted:
    sock: SrtSocket
    address: tuple[str, int]
    streamid: str


class SrtListener:
    """Binds, listens and accepts; ``decide`` runs as the listen callback (in libsrt's receiver thread) and
    ``on_accept`` in the accept thread, once per caller whose handshake completed."""

    def __init__(
        self,
        options: ListenerOptions,
        decide: Callable[[Caller], int | None],
        on_accept: Callable[[Accepted], None],
    ) -> None:
        self.options = options
        self.hook = ListenHook(decide)
        self.on_accept = on_accept
        self.sock: SrtSocket | None = None
        self.address: tuple[str, int] = ("", 0)
        self._thread: threading.Thread | None = None
        self._closed = False

    def open(self) -> None:
        """Bind and listen (a few system calls; raises SrtError, e.g. the port is taken)."""
        sock = SrtSocket.create()
        try:
            o = self.options
            # Accepted sockets inherit these (API-functions.md, srt_listen_callback): latency, and with a passphrase
            # the key material check that refuses a wrong or missing passphrase during the handshake
            # (SRTO_ENFORCEDENCRYPTION, on by default, refuses an unencrypted caller too).
            sock.set(Opt.LATENCY, o.latency_ms)
            if o.passphrase:
                sock.set(Opt.PASSPHRASE, o.passphrase)
                sock.set(Opt.PBKEYLEN, o.pbkeylen)
            sock.bind(o.host, o.port)
            sock.listen(o.backlog)
            sock.set_listen_callback(self.hook)
            self.address = sock.local_address()
        except BaseException:
            sock.close()
            raise
        self.sock = sock

    def start(self) -> None:
        self._thread = threading.Thread(target=self._accept_loop, name="srt-accept", daemon=True)
        self._thread.start()

    def _accept_loop(self) -> None:
        assert self.sock is not None
        while not self._closed:
            try:
                sock, address = self.sock.accept()
            except SrtError as error:
                if not self._closed:
                    log.error("SRT listener stopped accepting: %s", error)
                return
            try:
                streamid = sock.get_str(Opt.STREAMID)
            except SrtError as error:  # gone between its handshake and now
                log.info("SRT caller %s:%d left before it was handed over: %s", *address, error)
                sock.close()
                continue
            self.on_accept(Accepted(sock, address, streamid))

    def close(self) -> None:
        """Stop listening and wait for the accept thread (call off the event loop: see libsrt.py)."""
        self._closed = True
        if self.sock is not None:
            self.sock.close()
        if self._thread is not None:
            self._thread.join(5)
