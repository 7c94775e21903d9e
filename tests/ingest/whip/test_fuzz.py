"""Bounded fuzzing of the WHIP offer check and the RTP receive path (long runs: fuzz/whip.py).

Inputs are random and mutations of real offers (a browser's, a simulcast one); only our own error types may
escape the targets (fuzz/whip_targets.py)."""

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from fuzz.whip_targets import offer, rtp
from tests.ingest.whip.offers import BROWSER_OFFER, SIMULCAST_OFFER

FUZZ = settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
SEEDS = [BROWSER_OFFER, SIMULCAST_OFFER]


@FUZZ
@given(st.sampled_from(SEEDS), st.lists(st.tuples(st.integers(0, 5000), st.integers(0, 3), st.text(max_size=12))))
def test_mutated_offers_are_answered_or_refused(seed: str, edits: list[tuple[int, int, str]]) -> None:
    text = seed
    for position, kind, snippet in edits:
        at = position % (len(text) + 1)
        if kind == 0:
            text = text[:at] + snippet + text[at:]
        elif kind == 1:
            text = text[:at] + text[at + 1 + len(snippet) :]
        elif kind == 2:
            text = text[:at] + "\r\n" + snippet + text[at:]
        else:
            text = text.replace("\r\n", "\n", 1)
    offer(text.encode())


@FUZZ
@given(st.binary(max_size=2000))
def test_random_offers(data: bytes) -> None:
    offer(data)


@FUZZ
@given(st.binary(max_size=4000))
def test_random_rtp_streams(data: bytes) -> None:
    rtp(data)
