"""Fuzz targets for what a WHIP publisher sends us, shared by the hypothesis tests (bounded, in CI:
tests/ingest/whip/test_fuzz.py) and the atheris entry point ``fuzz/whip.py`` (long runs).

- ``offer``: any text → a checked offer and our answer to it, or IngressError (LiveKit's refusal), nothing else;
- ``rtp``: any bytes, cut into RTP-like packets (sequence number, timestamp, marker, payload) → the frame
  assembler and every codec's depacketiser; only DepacketizeError may escape, and the assembler's hold stays
  bounded.
"""

import contextlib
import struct

from pyingress.control.errors import IngressError
from pyingress.ingest.whip.answer import LocalTransport, build_answer
from pyingress.ingest.whip.assembler import FrameAssembler
from pyingress.ingest.whip.depacketize import DepacketizeError, frame_of, is_frame_start
from pyingress.ingest.whip.offer import choose_codec, parse_offer

CODECS = ("h264", "vp8", "vp9", "av1", "opus")
LOCAL = LocalTransport("ufrag", "p" * 24, ("sha-256", "AA"), ("candidate:1 1 udp 1 127.0.0.1 9 typ host",))


def offer(data: bytes) -> None:
    text = data.decode("utf-8", "replace")
    try:
        parsed = parse_offer(text)
    except IngressError:
        return
    for passthrough in (True, False):
        chosen = {}
        for media in parsed.media:
            picked = choose_codec(media, passthrough) if media.receivable else None
            if picked is not None:
                chosen[media.index] = picked[0]
        build_answer(parsed, LOCAL, chosen)


def rtp(data: bytes) -> None:
    if not data:
        return
    codec = CODECS[data[0] % len(CODECS)]
    assembler = FrameAssembler(
        is_start=lambda payload: is_frame_start(codec, payload),
        whole_packets=codec == "opus",
        max_wait=0.05,
        max_packets=64,
    )
    at, now = 1, 0.0
    while at + 4 <= len(data):
        seq_step, ts_step, size = struct.unpack("!bbH", data[at : at + 4])
        at += 4
        size %= 300
        payload = data[at : at + size]
        at += size
        now += 0.01
        frames = assembler.push(seq_step & 0xFFFF, (ts_step * 3000) & 0xFFFFFFFF, bool(size & 1), payload, now)
        frames += assembler.poll(now)
        assembler.nack_due(now)
        assert assembler.held <= 65
        for frame in frames:
            with contextlib.suppress(DepacketizeError):
                frame_of(codec, frame.payloads)
    for codec_name in CODECS:  # every depacketiser on the raw input too
        with contextlib.suppress(DepacketizeError):
            frame_of(codec_name, [data[i : i + 97] for i in range(0, len(data), 97)])


TARGETS = {"offer": offer, "rtp": rtp}
