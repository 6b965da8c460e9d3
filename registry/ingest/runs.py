"""What a killed ingest leaves behind, cleaned at the next start; reader processes bound to their parent.

An ingest killed with `kill -9` cannot tidy up: its `*.tmp<PID>` half-copies stay in the archive, its
IngestRun stays "running", and its reader processes (a process pool) may outlive it. The next ingest
(any process opening the registry for ingest) therefore:

- marks runs of this host whose process is gone as `interrupted` (runs of other hosts are left: a
  PostgreSQL registry is shared, and another machine's process cannot be checked from here);
- when it marked any, removes archive files named `*.tmp<PID>` whose process is gone (a live ingest's
  are left alone). Only a killed run leaves such files, and every run is recorded before it writes one, so
  the walk over the whole archive is made only then, not by every run;

and every reader process asks the kernel to kill it when its parent dies (Linux `PR_SET_PDEATHSIG`).
"""

from __future__ import annotations

import ctypes
import os
import re
import signal
import socket
from pathlib import Path

from sqlalchemy import select
from sqlalchemy.orm import Session

from registry.db.models import INGEST_INTERRUPTED, INGEST_RUNNING, IngestRun, utcnow

_TMP_SUFFIX = re.compile(r"\.tmp(\d+)$")
PR_SET_PDEATHSIG = 1


def this_host() -> str:
    return socket.gethostname()[:255]


def process_alive(pid: int) -> bool:
    """True when a process with this id exists on this machine (signal 0 probes without touching it)."""
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True  # exists, owned by someone else
    return True


def remove_archive_debris(archive_dir: Path) -> list[Path]:
    """Delete `*.tmp<PID>` files under the archive whose writing process is gone; the paths removed."""
    removed: list[Path] = []
    if not archive_dir.is_dir():
        return removed
    for dirpath, _dirs, files in os.walk(archive_dir):
        for name in files:
            match = _TMP_SUFFIX.search(name)
            if match and not process_alive(int(match.group(1))):
                path = Path(dirpath) / name
                path.unlink(missing_ok=True)
                removed.append(path)
    return removed


def mark_interrupted_runs(session: Session) -> list[int]:
    """Set `interrupted` on this host's `running` ingest runs whose process is gone; their ids."""
    host = this_host()
    runs = session.scalars(select(IngestRun).where(IngestRun.status == INGEST_RUNNING)).all()
    marked = []
    for run in runs:
        gone = run.pid is None or (run.host == host and not process_alive(run.pid))
        if gone and (run.host in (None, host)):
            run.status = INGEST_INTERRUPTED
            run.finished_at = run.finished_at or utcnow()
            marked.append(run.id)
    return marked


def die_with_parent() -> None:
    """Process-pool initializer: the kernel sends SIGKILL to this reader when its parent process dies.

    Without it a `kill -9` of `ctstudy registry ingest` leaves its reader processes running. Linux only;
    elsewhere a no-op (the pool's own shutdown still ends readers on a normal exit).
    """
    try:
        libc = ctypes.CDLL("libc.so.6", use_errno=True)
    except OSError:
        return
    libc.prctl(PR_SET_PDEATHSIG, signal.SIGKILL)
    # The parent may have died between fork and prctl: then nobody will send the signal.
    if os.getppid() == 1:
        os._exit(1)
