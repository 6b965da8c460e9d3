"""`ctstudy dashboard --port N` serves the app over the given home, and stopping it stops Streamlit too."""

from __future__ import annotations

import signal
import socket
import subprocess
import time
import urllib.request
from pathlib import Path

from dashboard.cli import streamlit_command, streamlit_env

CTSTUDY = Path(__file__).resolve().parents[2] / ".venv" / "bin" / "ctstudy"


def _port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _listening(port: int) -> bool:
    with socket.socket() as s:
        return s.connect_ex(("127.0.0.1", port)) == 0


def test_streamlit_gets_the_home_and_sends_no_usage_statistics(home) -> None:
    env = streamlit_env(home)
    assert env["CTSTUDY_HOME"] == str(home.root) and env["CTSTUDY_DB_URL"] == home.db_url
    cmd = streamlit_command(8600)
    assert cmd[cmd.index("--browser.gatherUsageStats") + 1] == "false" and cmd[cmd.index("--server.port") + 1] == "8600"


def test_ctstudy_dashboard_serves_and_stops_cleanly(home) -> None:
    port = _port()
    proc = subprocess.Popen([str(CTSTUDY), "--home", str(home.root), "dashboard", "--port", str(port),
                             "--address", "127.0.0.1"], stdout=subprocess.PIPE, stderr=subprocess.STDOUT)
    try:
        deadline = time.monotonic() + 60
        while True:
            try:
                with urllib.request.urlopen(f"http://127.0.0.1:{port}/_stcore/health", timeout=2) as r:
                    assert r.status == 200
                    break
            except OSError:
                assert proc.poll() is None and time.monotonic() < deadline, proc.stdout.read().decode()[-2000:]
                time.sleep(0.3)
        proc.send_signal(signal.SIGTERM)
        proc.wait(timeout=20)
        # Nothing listens on the port any more: no Streamlit left behind. (Binding the port would be
        # the wrong check: the server's closed connections keep it in TIME_WAIT for a while.)
        deadline = time.monotonic() + 10
        while _listening(port):
            assert time.monotonic() < deadline, f"something still serves port {port} after ctstudy stopped"
            time.sleep(0.2)
    finally:
        if proc.poll() is None:
            proc.kill()
