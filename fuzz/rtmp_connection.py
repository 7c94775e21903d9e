"""Atheris entry point for the RTMP connection target (see fuzz/rtmp_targets.py).

Long run, seeded with the corpus the CI tests use:
    pip install atheris && python fuzz/rtmp_connection.py tests/ingest/rtmp/corpus/connection -max_total_time=3600
"""

import sys

from rtmp_targets import TARGETS  # run as a script: fuzz/ is sys.path[0]

TARGET = TARGETS["connection"]

if __name__ == "__main__":
    import atheris  # only for long runs; CI uses the hypothesis tests

    atheris.instrument_all()
    atheris.Setup(sys.argv, lambda data: TARGET(bytes(data)))
    atheris.Fuzz()
