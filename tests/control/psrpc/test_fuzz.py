"""Bounded fuzzing of the psrpc cores (fuzz/psrpc_envelope.py is the long-run atheris entry point of the same
target): random bytes and mutations of payloads captured between livekit-server and livekit/ingress."""

from pathlib import Path

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from fuzz.psrpc_envelope import check

CORPUS = Path(__file__).parent / "corpus" / "envelope"
SEEDS = [path.read_bytes() for path in sorted(CORPUS.glob("*.bin"))]


def _mutate(seed: bytes, edits: list[tuple[int, int, int]]) -> bytes:
    data = bytearray(seed)
    for position, value, kind in edits:
        at = position % (len(data) + 1)
        if kind == 0 and data:
            data[at % len(data)] ^= value or 1
        elif kind == 1:
            data[at:at] = bytes([value]) * (1 + value % 8)
        elif kind == 2:
            del data[at : at + 1 + value % 16]
        else:
            del data[at:]
    return bytes(data)


_edits = st.lists(st.tuples(st.integers(0, 1 << 12), st.integers(0, 255), st.integers(0, 3)), max_size=4)
_selector = st.integers(0, 255)


def test_the_corpus_seeds_pass() -> None:
    assert len(SEEDS) >= 8
    for seed in SEEDS:
        for which in range(24):
            check(bytes([which]) + seed[1:])


@settings(max_examples=400, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.sampled_from(SEEDS), _edits, _selector)
def test_mutated_captures(seed: bytes, edits: list[tuple[int, int, int]], which: int) -> None:
    check(bytes([which]) + _mutate(seed[1:], edits))


@settings(max_examples=200, deadline=None)
@given(st.binary(max_size=512))
def test_random_bytes(data: bytes) -> None:
    check(data)
