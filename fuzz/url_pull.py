"""Long-running fuzz entry points for what the URL pull worker parses itself (FFmpeg parses the media).

    python fuzz/url_pull.py playlist       # master-playlist variant lines (self-inclusion check)
    python fuzz/url_pull.py orientation    # the SEI writer over any decoder record and access unit

Needs ``pip install atheris`` (CI runs the bounded hypothesis versions in tests/ingest/pull/test_fuzz.py).
Nothing may escape: these run on a hostile server's bytes.
"""

import sys


def fuzz_playlist(data: bytes) -> None:
    from pyingress.ingest.pull.opener import variant_urls

    variant_urls(data.decode("utf-8", errors="replace"), "http://host/live/index.m3u8")


def fuzz_orientation(data: bytes) -> None:
    from pyingress.ingest.pull.orientation import Orienter

    split = data[0] if data else 0
    config, access_unit = data[1 : 1 + split], data[1 + split :]
    codec = "h264" if split & 1 else "hevc"
    Orienter(codec, config or None, 90 * (split % 4)).apply(access_unit)


TARGETS = {"playlist": fuzz_playlist, "orientation": fuzz_orientation}

if __name__ == "__main__":
    import atheris

    target = TARGETS[sys.argv.pop(1)]
    with atheris.instrument_imports():
        import pyingress.ingest.pull.opener
        import pyingress.ingest.pull.orientation  # noqa: F401
    atheris.Setup(sys.argv, target)
    atheris.Fuzz()
