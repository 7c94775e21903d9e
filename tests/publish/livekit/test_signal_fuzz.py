"""Fuzzing the signal decoding (bounded, for CI): only SignalProtocolError may escape, whatever the server sends."""

import contextlib
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from livekit.protocol import rtc

from fuzz.signal_response import check
from pyingress.publish.livekit.signal import SignalProtocolError, decode_response

CORPUS = sorted((Path(__file__).parent / "corpus" / "signal_response").glob("*.bin"))


@pytest.mark.parametrize("seed", CORPUS, ids=[p.stem for p in CORPUS])
def test_seed_corpus_decodes(seed: Path) -> None:
    decode_response(seed.read_bytes())


@settings(max_examples=400, deadline=None)
@given(st.binary(max_size=512))
def test_random_bytes(data: bytes) -> None:
    check(data)


@settings(max_examples=300, deadline=None)
@given(st.sampled_from(CORPUS), st.data())
def test_mutated_seeds(seed: Path, data: st.DataObject) -> None:
    raw = bytearray(seed.read_bytes())
    for _ in range(data.draw(st.integers(1, 4))):
        if not raw:
            break
        position = data.draw(st.integers(0, len(raw) - 1))
        raw[position] = data.draw(st.integers(0, 255))
    cut = data.draw(st.integers(0, len(raw)))
    check(bytes(raw[:cut]) + data.draw(st.binary(max_size=16)))


@settings(max_examples=300, deadline=None)
@given(st.text(max_size=200), st.integers(-5, 5), st.booleans())
def test_arbitrary_trickle_payloads(candidate_init: str, target: int, final: bool) -> None:
    response = rtc.SignalResponse(trickle=rtc.TrickleRequest(candidateInit=candidate_init, final=final))
    response.trickle.target = max(0, target)  # type: ignore[assignment]
    with contextlib.suppress(SignalProtocolError):
        decode_response(response.SerializeToString())
