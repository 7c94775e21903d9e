"""Long-running fuzz entry points for the media parsers that read untrusted or cross-process bytes.

    python fuzz/media_parsers.py wire      tests/media/corpus/wire          # the worker pipe protocol
    python fuzz/media_parsers.py bitstream      tests/media/corpus/bitstream  # avcC/hvcC, Annex-B, SPS, VP8

Needs ``pip install atheris`` (not a test dependency; CI runs the bounded hypothesis versions in test_wire.py and
test_bitstream.py).  Only our exception types may escape.
"""

import contextlib
import sys


def fuzz_wire(data: bytes) -> None:
    from pyingress.media.wire import MessageReader, WireError

    with contextlib.suppress(WireError):
        MessageReader().feed(data)


def fuzz_bitstream(data: bytes) -> None:
    from pyingress.media.bitstream import AnnexBWriter, BitstreamError, h264_sps_size, vp8_frame_info

    with contextlib.suppress(BitstreamError):
        codec = "h264" if not data or data[0] & 1 else "hevc"
        AnnexBWriter(codec, data[1:] if data[:1] == b"\x01" else None).write(data)
    with contextlib.suppress(BitstreamError):
        h264_sps_size(b"\x67" + data)
    with contextlib.suppress(BitstreamError):
        vp8_frame_info(data)


TARGETS = {"wire": fuzz_wire, "bitstream": fuzz_bitstream}

if __name__ == "__main__":
    import atheris

    target = TARGETS[sys.argv.pop(1)]
    with atheris.instrument_imports():
        import pyingress.media.bitstream
        import pyingress.media.wire  # noqa: F401
    atheris.Setup(sys.argv, target)
    atheris.Fuzz()
