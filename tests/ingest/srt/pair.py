"""A real SRT listener and caller on loopback, both through our binding, for the SRT unit tests."""

import threading
from collections.abc import Callable, Iterator
from contextlib import contextmanager

from pyingress.ingest.srt.libsrt import Caller, ListenHook, Opt, SrtSocket


@contextmanager
def listening(decide: Callable[[Caller], int | None] = lambda caller: None, **options: object) -> Iterator[SrtSocket]:
    """A listener on a free loopback port; ``options`` are socket options by Opt name."""
    sock = SrtSocket.create()
    for name, value in options.items():
        sock.set(Opt[name.upper()], value)  # type: ignore[arg-type]
    sock.bind("127.0.0.1", 0)
    sock.listen(8)
    hook = ListenHook(decide)
    sock.set_listen_callback(hook)
    try:
        yield sock
    finally:
        sock.close()


def connected_pair(listener: SrtSocket, streamid: str = "", **options: object) -> tuple[SrtSocket, SrtSocket]:
    """(caller, accepted) connected through ``listener``."""
    accepted: list[SrtSocket] = []
    thread = threading.Thread(target=lambda: accepted.append(listener.accept()[0]), daemon=True)
    thread.start()
    caller = SrtSocket.create()
    if streamid:
        caller.set(Opt.STREAMID, streamid)
    for name, value in options.items():
        caller.set(Opt[name.upper()], value)  # type: ignore[arg-type]
    caller.connect(*listener.local_address())
    thread.join(5)
    assert accepted, "the listener accepted nothing"
    return caller, accepted[0]
