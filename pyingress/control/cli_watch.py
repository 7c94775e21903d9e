"""``pyingress ingress watch ID``: an ingress's state, followed live — one line each time it changes.

It asks the Ingress API (``ListIngress`` for that id) once per ``--interval``, so it works against pyingress and
livekit-server alike, and prints a line when the status, the session, the error or the input changes:

    19:02:10  IN_abc  BUFFERING   RT_xyz
    19:02:11  IN_abc  PUBLISHING  RT_xyz  video H264 1280×720 30 fps 2.0 Mb/s, audio opus 2 ch 128 kb/s
    19:02:21  IN_abc  PUBLISHING  RT_xyz  video H264 …  played 0:10 of 10:00

The "played" part is pyingress's own (a URL ingress's file, every 10 s of it; ``web/progress.py``): livekit-server
has no such endpoint, so against it the lines are the state alone.

``--until PUBLISHING`` (or a comma-separated list) ends it with 0 when the ingress gets there, ``--timeout`` with 1
when it does not; a deleted ingress ends it too (0, or 1 while waiting for a status).  Ctrl-C ends it quietly.
"""

import argparse
import time
from collections.abc import Callable

from livekit.protocol.ingress import IngressInfo, IngressState, ListIngressRequest

from pyingress.control.protojson import to_json

STATUSES = [IngressState.Status.Name(value).removeprefix("ENDPOINT_") for value in IngressState.Status.values()]


class WatchError(Exception):
    pass


def _rate(bps: int) -> str:
    return f"{bps / 1e6:.1f} Mb/s" if bps >= 1_000_000 else f"{round(bps / 1000)} kb/s"


def describe(info: IngressInfo) -> tuple[str, ...]:
    """What a line shows; a new line is printed when any of it changes."""
    state = info.state
    status = IngressState.Status.Name(state.status).removeprefix("ENDPOINT_")
    media = []
    if state.video.mime_type:
        v = state.video
        video = f"video {v.mime_type.removeprefix('video/')} {v.width}×{v.height} {v.framerate:g} fps"
        media.append(video + (f" {_rate(v.average_bitrate)}" if v.average_bitrate else ""))
    if state.audio.mime_type:
        a = state.audio
        audio = f"audio {a.mime_type.removeprefix('audio/')} {a.channels} ch"
        media.append(audio + (f" {_rate(a.average_bitrate)}" if a.average_bitrate else ""))
    return (status, state.resource_id, state.error, ", ".join(media))


def played(progress: tuple[float, float | None] | None) -> str:
    """ "played 1:00 of 10:00", in steps of 10 s so that a playing file prints a line every 10 s, not every poll."""
    if progress is None:
        return ""
    position, duration = progress
    shown = _clock(position // 10 * 10)
    return f"played {shown} of {_clock(duration)}" if duration else f"played {shown} (live)"


def _clock(seconds: float) -> str:
    whole = int(seconds)
    if whole >= 3600:
        return f"{whole // 3600}:{whole // 60 % 60:02d}:{whole % 60:02d}"
    return f"{whole // 60}:{whole % 60:02d}"


def parse_until(value: str | None) -> set[str]:
    if not value:
        return set()
    wanted = {name.strip().upper().removeprefix("ENDPOINT_") for name in value.split(",") if name.strip()}
    unknown = wanted - set(STATUSES)
    if unknown:
        raise WatchError(f"--until: {', '.join(sorted(unknown))} is not a status; one of {', '.join(STATUSES)}")
    return wanted


def watch(
    load: Callable[[ListIngressRequest], list[IngressInfo]],
    args: argparse.Namespace,
    clock: Callable[[], float] = time.monotonic,
    sleep: Callable[[float], None] = time.sleep,
    out: Callable[[str], None] = print,
    progress: Callable[[str], tuple[float, float | None] | None] | None = None,
) -> int:
    """Follow ``args.ingress_id``; returns the exit code.  ``progress`` (pyingress only): how far a file has played."""
    until = parse_until(args.until)
    deadline = clock() + args.timeout if args.timeout else None
    last: tuple[str, ...] | None = None
    try:
        while True:
            items = load(ListIngressRequest(ingress_id=args.ingress_id))
            stamp = time.strftime("%H:%M:%S")
            if not items:
                if last is None:
                    raise WatchError(f"{args.ingress_id}: ingress does not exist")
                out(f"{stamp}  {args.ingress_id}  deleted")
                return 1 if until else 0
            info = items[0]
            shown = describe(info)
            if progress is not None and info.state.status == IngressState.Status.ENDPOINT_PUBLISHING:
                shown += (played(progress(info.ingress_id)),)
            if shown != last:
                last = shown
                if args.json:
                    out(to_json(info, proto_names=True, emit_unpopulated=True).replace("\n", " "))
                else:
                    parts = [f"{shown[0]:<10}", *(part for part in shown[1:] if part)]
                    out(f"{stamp}  {info.ingress_id}  " + "  ".join(parts).rstrip())
            if shown[0] in until:
                return 0
            if deadline is not None and clock() >= deadline:
                out(f"{stamp}  {info.ingress_id}  still {shown[0]} after {args.timeout:g} s")
                return 1
            sleep(args.interval)
    except KeyboardInterrupt:
        return 0
