"""Fuzz target for the SRT streamid parser (pyingress/ingest/srt/streamid.py): whatever text a caller puts in its
streamid, the parser returns a request or raises StreamIdError with a rejection reason libsrt accepts (≥ 1000).

Bounded runs in CI: tests/ingest/srt/test_streamid_fuzz.py (hypothesis).  Long run:
    pip install atheris && python fuzz/srt_streamid.py -max_total_time=3600
"""

import sys

from pyingress.ingest.srt.libsrt import MAX_STREAMID
from pyingress.ingest.srt.streamid import StreamIdError, parse_streamid


def check(data: bytes) -> None:
    # libsrt hands the callback at most 512 bytes as a C string: no NUL inside, any other byte (decoded as the
    # binding does, with replacement characters).
    text = data[: MAX_STREAMID + 100].split(b"\0")[0].decode("utf-8", errors="replace")
    try:
        request = parse_streamid(text)
    except StreamIdError as refused:
        assert refused.reject >= 1000 and refused.message
        return
    key = request.stream_key
    assert key and len(key.encode("utf-8", errors="surrogatepass")) <= MAX_STREAMID
    assert all(0x21 <= ord(c) != 0x7F for c in key)  # printable: it goes into logs and a store lookup


if __name__ == "__main__":
    import atheris  # only for long runs

    atheris.instrument_all()
    atheris.Setup(sys.argv, lambda data: check(bytes(data)))
    atheris.Fuzz()
