"""The spool between every network route and ingest: durable writes, and what a restart takes over."""

from __future__ import annotations

import os
import subprocess

from registry.dicom.spool import (
    INCOMING,
    READY,
    batch_owner,
    instance_file_name,
    new_batch,
    recover,
    spool_root,
    write_durably,
)
from registry.home import Home


def dead_pid() -> int:
    proc = subprocess.Popen(["true"])
    proc.wait()
    return proc.pid


def test_durable_write_leaves_only_the_final_file_and_a_resend_replaces_it(home: Home) -> None:
    batch = new_batch(home, "it064", "PACS_A")
    assert batch.center == "IT064" and batch_owner(batch.path) == os.getpid()
    name = instance_file_name("1.2.3.4")
    write_durably(batch.path, name, b"first")
    write_durably(batch.path, name, b"again")
    assert [p.name for p in batch.path.iterdir()] == ["1.2.3.4.dcm"]
    assert (batch.path / name).read_bytes() == b"again"
    assert instance_file_name("../../etc/passwd").startswith("sop-")  # never a path from the wire


def test_restart_takes_over_batches_of_dead_writers_only(home: Home) -> None:
    root = spool_root(home)
    gone = dead_pid()
    dead = root / INCOMING / "IT064" / f"20260101T000000-aaaa0001-p{gone}-PACS_A"
    dead.mkdir(parents=True)
    (dead / "1.2.3.dcm").write_bytes(b"acknowledged")
    (dead / ".1.2.4.dcm.99.part").write_bytes(b"half")
    empty = root / INCOMING / "IT064" / f"20260101T000001-aaaa0002-p{gone}-PACS_A"
    empty.mkdir()
    alive = root / INCOMING / "IT064" / f"20260101T000002-aaaa0003-p{os.getppid()}-upload"
    alive.mkdir()
    (alive / "upload-000001.dcm").write_bytes(b"being uploaded")
    ready_dead = root / READY / "GR001" / f"20251231T000000-aaaa0004-p{gone}-PACS_B"
    ready_dead.mkdir(parents=True)
    (ready_dead / "9.9.dcm").write_bytes(b"sealed")

    found = recover(home)
    assert [(b.center, b.path.name) for b in found] == [("GR001", ready_dead.name), ("IT064", dead.name)]
    assert [p.name for p in found[1].path.iterdir()] == ["1.2.3.dcm"]  # the half-written file is gone
    assert found[1].path.parent.parent.name == READY
    assert not empty.exists() and (alive / "upload-000001.dcm").exists()
