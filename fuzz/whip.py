"""Atheris entry point for the WHIP targets (see fuzz/whip_targets.py): the first byte picks offer or RTP.

Long run:
    pip install atheris && python fuzz/whip.py -max_total_time=3600
"""

import sys

from whip_targets import TARGETS  # run as a script: fuzz/ is sys.path[0]


def one_input(data: bytes) -> None:
    if data:
        (TARGETS["offer"] if data[0] & 1 else TARGETS["rtp"])(data[1:])


if __name__ == "__main__":
    import atheris  # only for long runs; CI uses the hypothesis tests

    atheris.instrument_all()
    atheris.Setup(sys.argv, lambda data: one_input(bytes(data)))
    atheris.Fuzz()
