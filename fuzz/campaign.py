"""Run every fuzz target for a fixed number of executions and write the figures to docs/fuzzing.md.

    .cache/venv/bin/pip install atheris
    .cache/venv/bin/python fuzz/campaign.py --runs 1000000            # every target, one after another
    .cache/venv/bin/python fuzz/campaign.py --runs 20000 --only amf0  # one target, a short look

Each target starts from its committed seed corpus (read only: new inputs go to a scratch folder) and runs to
``--runs`` executions or its first crash, hang (``-timeout``) or leak of memory (``-rss_limit_mb``).  What
libFuzzer says at the end (executions, speed, coverage edges, features, corpus) becomes one row of the table; a
target that crashed keeps its reproducer in the scratch folder and fails the campaign.
"""

import argparse
import re
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]


@dataclass(frozen=True)
class Target:
    name: str
    script: str
    corpus: str  # seed corpus, relative to the repository ("" for none)
    args: tuple[str, ...] = ()
    what: str = ""


TARGETS = [
    Target("rtmp handshake", "fuzz/rtmp_handshake.py", "tests/ingest/rtmp/corpus/handshake", what="C0/C1/C2, S0/S1/S2"),
    Target("rtmp chunk", "fuzz/rtmp_chunk.py", "tests/ingest/rtmp/corpus/chunk", what="chunk stream reassembly"),
    Target("rtmp amf0", "fuzz/rtmp_amf0.py", "tests/ingest/rtmp/corpus/amf0", what="AMF0 values"),
    Target("rtmp flv", "fuzz/rtmp_flv.py", "tests/ingest/rtmp/corpus/flv", what="FLV / Enhanced RTMP tags, demux"),
    Target("rtmp connection", "fuzz/rtmp_connection.py", "tests/ingest/rtmp/corpus/connection", what="whole sessions"),
    Target("signal response", "fuzz/signal_response.py", "tests/publish/livekit/corpus/signal_response"),
    Target("ingress API request", "fuzz/ingress_api_request.py", "tests/control/corpus/ingress_api_request"),
    Target("media wire", "fuzz/media_parsers.py", "tests/media/corpus/wire", ("wire",), "worker pipe messages"),
    Target(
        "media bitstream", "fuzz/media_parsers.py", "tests/media/corpus/bitstream", ("bitstream",), "avcC, SPS, VP8"
    ),
    Target("psrpc envelope", "fuzz/psrpc_envelope.py", "tests/control/psrpc/corpus/envelope"),
    Target("srt streamid", "fuzz/srt_streamid.py", "", what="SRT access-control streamid"),
    Target("ts pes end", "fuzz/ts_pes_end.py", "tests/ingest/srt/corpus/pes_end", what="video PES ends in MPEG-TS"),
    Target("whip", "fuzz/whip.py", "", what="WHIP offers, RTP depacketising"),
    Target("url playlist", "fuzz/url_pull.py", "", ("playlist",), "HLS variant lines"),
    Target("url orientation", "fuzz/url_pull.py", "", ("orientation",), "the rotation SEI writer"),
    Target("url scte35", "fuzz/url_pull.py", "tests/ingest/pull/corpus/scte35", ("scte35",), "SCTE-35 splice sections"),
]

_FINAL = re.compile(r"#(\d+)\s+DONE\s+cov: (\d+) ft: (\d+) corp: (\d+)/(\S+)")
_STAT = re.compile(r"stat::(\w+):\s+(\d+)")


@dataclass
class Outcome:
    target: Target
    executions: int = 0
    exec_per_second: int = 0
    coverage: int = 0
    features: int = 0
    corpus: str = ""
    seconds: float = 0.0
    failure: str = ""


def run(target: Target, runs: int, scratch: Path) -> Outcome:
    work = scratch / target.name.replace(" ", "_")
    work.mkdir(parents=True, exist_ok=True)
    command = [sys.executable, str(REPO / target.script), *target.args, str(work)]
    if target.corpus:
        command.append(str(REPO / target.corpus))
    command += [
        f"-runs={runs}",
        "-timeout=10",
        "-rss_limit_mb=2048",
        "-print_final_stats=1",
        f"-artifact_prefix={work}/",
    ]
    started = time.monotonic()
    result = subprocess.run(command, capture_output=True, text=True, cwd=REPO)
    outcome = Outcome(target, seconds=time.monotonic() - started)
    log = result.stdout + result.stderr
    stats = {name: int(value) for name, value in _STAT.findall(log)}
    outcome.executions = stats.get("number_of_executed_units", 0)
    outcome.exec_per_second = stats.get("average_exec_per_sec", 0)
    final = _FINAL.findall(log)
    if final:
        _, cov, ft, units, size = final[-1]
        outcome.coverage, outcome.features, outcome.corpus = int(cov), int(ft), f"{units} / {size}"
    if result.returncode != 0 or not final:
        tail = "\n".join(log.strip().splitlines()[-15:])
        outcome.failure = f"exit {result.returncode}; artifacts in {work}\n{tail}"
    return outcome


def table(outcomes: list[Outcome]) -> str:
    header = ("target", "what", "executions", "exec/s", "coverage (edges)", "features", "corpus (units / bytes)")
    rows = ["| " + " | ".join((*header, "time", "result")) + " |", "|---" * (len(header) + 2) + "|"]
    for o in outcomes:
        result = "no crash, no hang, no leak" if not o.failure else "**FAILED** (see below)"
        rows.append(
            f"| {o.target.name} | {o.target.what} | {o.executions:,} | {o.exec_per_second:,} | {o.coverage:,} | "
            f"{o.features:,} | {o.corpus} | {o.seconds:.0f} s | {result} |"
        )
    failures = [f"\n### {o.target.name}\n\n```\n{o.failure}\n```" for o in outcomes if o.failure]
    return "\n".join(rows) + "".join(failures) + "\n"


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--runs", type=int, default=1_000_000)
    parser.add_argument("--only", help="targets whose name contains this")
    parser.add_argument("--write", type=Path, help="the markdown file the table goes into (docs/fuzzing.md)")
    options = parser.parse_args()
    chosen = [t for t in TARGETS if not options.only or options.only in t.name]
    outcomes = []
    with tempfile.TemporaryDirectory(prefix="pyingress-fuzz-") as scratch:
        for target in chosen:
            outcome = run(target, options.runs, Path(scratch))
            outcomes.append(outcome)
            print(
                f"{target.name}: {outcome.executions:,} executions, cov {outcome.coverage}, "
                f"{'FAILED' if outcome.failure else 'ok'} ({outcome.seconds:.0f} s)",
                flush=True,
            )
        text = table(outcomes)
        if any(o.failure for o in outcomes):
            keep = REPO / ".cache" / "fuzz-failures"
            subprocess.run(["cp", "-r", scratch, str(keep)], check=False)
    print(text)
    if options.write:
        options.write.write_text(options.write.read_text().split("<!-- campaign -->")[0] + "<!-- campaign -->\n" + text)
    return 1 if any(o.failure for o in outcomes) else 0


if __name__ == "__main__":
    sys.exit(main())
