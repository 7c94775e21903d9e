"""Fuzz the LiveKit signal decoding: any bytes from the server → a typed event or SignalProtocolError, nothing else.

Long runs (atheris is not a project dependency):
    pip install atheris && python fuzz/signal_response.py tests/publish/livekit/corpus/signal_response
CI runs the same property with hypothesis (tests/publish/livekit/test_signal_fuzz.py).
"""

import contextlib
import sys

from pyingress.publish.livekit.signal import SignalConnection, SignalProtocolError


def check(data: bytes) -> None:
    state = SignalConnection()
    state.start(0.0)
    with contextlib.suppress(SignalProtocolError):
        state.receive_data(data, 1.0)
    state.ping_due(10.0)


if __name__ == "__main__":
    import atheris

    atheris.instrument_all()
    atheris.Setup(sys.argv, lambda data: check(bytes(data)))
    atheris.Fuzz()
