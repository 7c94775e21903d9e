"""Starting and stopping peer processes with a readiness check and their logs kept for failure reports."""

import os
import signal
import socket
import subprocess
import time
from collections.abc import Callable, Sequence
from pathlib import Path


class PeerError(RuntimeError):
    pass


# Every peer log of this test session; a failing test's report shows what each one wrote while it ran.
PEER_LOGS: set[Path] = set()


def log_offsets() -> dict[Path, int]:
    """How far each peer log has been written, to show only a test's own lines when it fails."""
    return {path: path.stat().st_size for path in PEER_LOGS if path.exists()}


def log_sections(since: dict[Path, int], lines: int = 60, width: int = 400) -> list[tuple[str, str]]:
    """(title, text) per peer log that grew since ``since``: its last ``lines`` lines, each cut to ``width``."""
    sections = []
    for path in sorted(PEER_LOGS):
        if not path.exists():
            continue
        with path.open("rb") as log:
            log.seek(since.get(path, 0))
            new = log.read().decode(errors="replace").splitlines()
        if new:
            text = "\n".join(line[:width] for line in new[-lines:])
            sections.append((f"peer log {path.parent.name}/{path.name} (last {min(lines, len(new))} lines)", text))
    return sections


def wait_until(
    ready: Callable[[], bool],
    timeout: float,
    what: str,
    process: subprocess.Popen[bytes] | None = None,
    log_path: Path | None = None,
) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if process is not None and process.poll() is not None:
            raise PeerError(f"{what} exited with code {process.returncode} before it was ready{_tail(log_path)}")
        if ready():
            return
        time.sleep(0.05)
    raise PeerError(f"{what} not ready within {timeout:.0f} s{_tail(log_path)}")


def _tail(log_path: Path | None, lines: int = 30) -> str:
    if log_path is None or not log_path.exists():
        return ""
    text = log_path.read_text(errors="replace").splitlines()[-lines:]
    return "\n--- last log lines ---\n" + "\n".join(text)


def tcp_open(port: int, host: str = "127.0.0.1") -> bool:
    try:
        with socket.create_connection((host, port), timeout=0.5):
            return True
    except OSError:
        return False


def start_logged(
    argv: Sequence[str], log_path: Path, env: dict[str, str] | None = None, cwd: str | None = None
) -> subprocess.Popen[bytes]:
    log = open(log_path, "ab")  # noqa: SIM115 - owned by the child for its lifetime
    PEER_LOGS.add(log_path)
    return subprocess.Popen(
        list(argv),
        stdout=log,
        stderr=subprocess.STDOUT,
        stdin=subprocess.DEVNULL,
        env={**os.environ, **(env or {})},
        cwd=cwd,
    )


def stop(process: subprocess.Popen[bytes] | None, timeout: float = 10.0, sig: int = signal.SIGTERM) -> None:
    if process is None or process.poll() is not None:
        return
    process.send_signal(sig)
    try:
        process.wait(timeout=timeout)
    except subprocess.TimeoutExpired:
        process.kill()
        process.wait()
