"""The DICOM peers the network tests run against (dcmtk's storescu/echoscu, Orthanc), and free local ports.

A test needing a peer that is not installed is skipped with the reason, except under
CTSTUDY_REQUIRE_DICOM_PEERS=1 (CI, where `make test-peers` installs them), where that is a failure.
"""

from __future__ import annotations

import os
import shutil
import socket
import time
from pathlib import Path

import pytest

REQUIRE_ENV = "CTSTUDY_REQUIRE_DICOM_PEERS"


def require_tool(*names: str) -> str:
    """The path of the first of `names` on PATH (or in /usr/sbin); skip (or fail in CI) when none is there."""
    for name in names:
        found = shutil.which(name) or shutil.which(name, path="/usr/sbin:/usr/bin")
        if found:
            return found
    why = f"{names[0]} is not installed (Debian: `make test-peers` installs dcmtk and orthanc)"
    if os.environ.get(REQUIRE_ENV) == "1":
        pytest.fail(f"{why}; {REQUIRE_ENV}=1 requires it")
    pytest.skip(why)


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def wait_for_port(port: int, timeout: float = 20.0) -> None:
    """Return once something listens on 127.0.0.1:`port`; TimeoutError after `timeout` seconds."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
            sock.settimeout(0.5)
            if sock.connect_ex(("127.0.0.1", port)) == 0:
                return
        time.sleep(0.05)
    raise TimeoutError(f"nothing listens on 127.0.0.1:{port} after {timeout} s")


def spooled_files(spool: Path) -> int:
    """Instance files durably in the spool (hidden temporary files excluded)."""
    if not spool.is_dir():
        return 0
    return sum(1 for p in spool.rglob("*.dcm") if not p.name.startswith("."))


def series_by_center(home) -> dict[str, list[tuple[str, int]]]:  # noqa: ANN001 - registry.home.Home
    """The registry's series per center code: (SeriesInstanceUID, instance count), sorted."""
    from sqlalchemy import select

    from registry.db.engine import make_engine, session_scope
    from registry.db.models import Center, Patient, Series, Study

    engine = make_engine(home.db_url)
    with session_scope(engine) as s:
        rows = s.execute(select(Center.code, Series.series_instance_uid, Series.instance_count)
                         .join(Patient, Patient.center_id == Center.id).join(Study, Study.patient_id == Patient.id)
                         .join(Series, Series.study_id == Study.id)).all()
    engine.dispose()
    out: dict[str, list[tuple[str, int]]] = {}
    for code, series_uid, n in sorted(rows):
        out.setdefault(code, []).append((series_uid, n))
    return out
