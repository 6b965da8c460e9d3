"""`ctstudy dashboard [--port 8501]`: serve the Streamlit app over this data home's registry."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import threading
from pathlib import Path

import typer
from rich.console import Console

from registry.db.engine import SchemaNotCurrent, make_engine, require_current_schema
from registry.home import DB_URL_ENV, HOME_ENV, Home
from registry.intake.limits import upload_limit_mb

APP = Path(__file__).with_name("app.py")
console = Console()


def streamlit_command(port: int, address: str = "localhost") -> list[str]:
    """The `streamlit run` command line for the app: headless, no usage statistics sent anywhere."""
    return [
        sys.executable, "-m", "streamlit", "run", str(APP),
        "--server.port", str(port), "--server.address", address, "--server.headless", "true",
        "--browser.gatherUsageStats", "false", "--server.fileWatcherType", "none",
        "--client.toolbarMode", "minimal", "--server.maxUploadSize", str(upload_limit_mb()),
    ]


def streamlit_env(home: Home) -> dict[str, str]:
    """The environment for the Streamlit process: where the data home and database are."""
    return {**os.environ, HOME_ENV: str(home.root), DB_URL_ENV: home.db_url}


def start_server(home: Home, port: int, address: str = "localhost", **popen_kwargs) -> subprocess.Popen:  # noqa: ANN003
    """Start the dashboard in the background (for `ctstudy demo` and the browser test); the caller stops it."""
    return subprocess.Popen(streamlit_command(port, address), env=streamlit_env(home), **popen_kwargs)


def serve(
    ctx: typer.Context,
    port: int = typer.Option(8501, "--port", help="Port to serve on."),
    address: str = typer.Option("localhost", "--address", help="Interface to listen on (0.0.0.0 for all)."),
) -> None:
    """Serve the dashboard (log in with an account from `ctstudy users add`)."""
    home: Home = ctx.obj
    engine = make_engine(home.db_url)
    try:
        require_current_schema(engine)  # a clear word now, not a traceback in the browser later
    except SchemaNotCurrent as exc:
        Console(stderr=True).print(f"[red]error:[/red] {exc}")
        raise typer.Exit(1) from None
    finally:
        engine.dispose()
    console.print(f"Dashboard at [bold]http://{address}:{port}[/bold] over {home.root} (Ctrl+C to stop).")
    proc = start_server(home, port, address)
    # Stopping `ctstudy dashboard` (Ctrl+C or a plain kill) must stop the Streamlit server with it, not orphan it.
    if threading.current_thread() is threading.main_thread():
        signal.signal(signal.SIGTERM, lambda *_: proc.terminate())
    try:
        code = proc.wait()
    except KeyboardInterrupt:
        proc.terminate()
        code = proc.wait()
    finally:
        if proc.poll() is None:
            proc.kill()
    if code not in (0, -signal.SIGINT, -signal.SIGTERM, 130):
        raise typer.Exit(code)
