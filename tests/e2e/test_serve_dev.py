"""`pyingress serve --dev` — the README's first command — brings up a service a user can use straight away."""

import signal
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

import yaml
from livekit import api, rtc

from tests.harness.ports import free_port, free_udp_port
from tests.harness.processes import tcp_open, wait_until


def _get(url: str) -> tuple[int, str]:
    with urllib.request.urlopen(url, timeout=5) as response:
        return response.status, response.read().decode()


async def test_serve_dev_starts_a_room_server_answers_and_stops_cleanly(tmp_path: Path) -> None:
    ports = {"whip_port": free_port(), "rtmp_port": free_port()}
    room = {"port": free_port(), "rtc_tcp_port": free_port(), "rtc_udp_port": free_udp_port()}
    config = {**ports, "bind_address": "127.0.0.1", "store_path": str(tmp_path / "s.sqlite3"), "room_server": room}
    (tmp_path / "dev.yaml").write_text(yaml.safe_dump(config))
    out = tmp_path / "serve.out"
    with out.open("wb") as sink:
        process = subprocess.Popen(
            [sys.executable, "-m", "pyingress", "serve", "--dev", "--config", str(tmp_path / "dev.yaml")],
            stdout=sink,
            stderr=subprocess.STDOUT,
            stdin=subprocess.DEVNULL,
        )
    try:
        wait_until(lambda: "Next:" in out.read_text(), 90, "pyingress serve --dev", process, out)
        banner = out.read_text()
        # What a user needs next: where rooms are, where to push, which keys, and how to create an ingress.
        assert f"ws://127.0.0.1:{room['port']}" in banner
        assert f"rtmp://127.0.0.1:{ports['rtmp_port']}/live/<stream key>" in banner
        assert f"http://127.0.0.1:{ports['whip_port']}" in banner
        assert "devkey" in banner and "secret" in banner

        assert _get(f"http://127.0.0.1:{ports['whip_port']}/health") == (200, "Healthy")
        assert _get(f"http://127.0.0.1:{ports['whip_port']}/availability") == (200, "Available")
        assert _get(f"http://127.0.0.1:{room['port']}/") == (200, "OK")

        # The local room server trusts the same dev keys: a participant can join a room on it.
        token = (
            api.AccessToken("devkey", "secret")
            .with_identity("viewer")
            .with_grants(api.VideoGrants(room_join=True, room="dev-room"))
            .to_jwt()
        )
        viewer = rtc.Room()
        await viewer.connect(f"ws://127.0.0.1:{room['port']}", token)
        assert viewer.isconnected() and viewer.name == "dev-room"
        await viewer.disconnect()
    finally:
        process.send_signal(signal.SIGTERM)
        code = process.wait(timeout=30)
    assert code == 0, out.read_text()
    # Nothing left behind: the room server the service started is gone with it.
    deadline = time.monotonic() + 10
    while tcp_open(room["port"]) and time.monotonic() < deadline:
        time.sleep(0.1)
    assert not tcp_open(room["port"])
    assert not tcp_open(ports["whip_port"])
