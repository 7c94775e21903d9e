"""Long-running fuzz entry points for what the URL pull worker parses itself (FFmpeg parses the media).

    python fuzz/url_pull.py playlist       # master-playlist variant lines (self-inclusion check)
    python fuzz/url_pull.py orientation    # the SEI writer over any decoder record and access unit
    python fuzz/url_pull.py scte35 tests/ingest/pull/corpus/scte35   # SCTE-35 splice_info_sections, scheduled

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


def fuzz_scte35(data: bytes) -> None:
    """A section as given, and the same with its CRC made right for the length it declares (so mutations reach
    the fields, not only the CRC check); whatever parses goes through the splice schedule."""
    from pyingress.ingest.pull.scte35 import (
        Scte35Error,
        SpliceCue,
        SpliceSchedule,
        crc32_mpeg2,
        parse_splice_info,
    )

    sections = [data]
    if len(data) >= 3:
        total = 3 + (((data[1] & 0x0F) << 8) | data[2])
        if 4 <= total <= len(data):
            sections.append(data[: total - 4] + crc32_mpeg2(data[: total - 4]).to_bytes(4, "big") + data[total:])
    schedule = SpliceSchedule()
    for section in sections:
        try:
            info = parse_splice_info(section)
        except Scte35Error:
            continue
        if info.insert is not None:
            _ = info.insert.attribute_value
            now = (data[-1] if data else 0) / 7.0
            schedule.add(SpliceCue(info.insert, now), now)
            schedule.reached(now + 30.0)


TARGETS = {"playlist": fuzz_playlist, "orientation": fuzz_orientation, "scte35": fuzz_scte35}

if __name__ == "__main__":
    import atheris

    target = TARGETS[sys.argv.pop(1)]
    with atheris.instrument_imports():
        import pyingress.ingest.pull.opener
        import pyingress.ingest.pull.orientation
        import pyingress.ingest.pull.scte35  # noqa: F401
    atheris.Setup(sys.argv, target)
    atheris.Fuzz()
