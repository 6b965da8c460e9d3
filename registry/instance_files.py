"""Where an instance's file is: the de-identified archive copy, or the data home's link to an original.

Ingest stores the archive copy's path, or for a file indexed in place the link to it under
`Home.in_place_dir` (named like the archive, pseudonymously). An instance with a `SourceRoot` has its
path relative to that root. Every reader of instance files resolves them here.
"""

from __future__ import annotations

from pathlib import Path

from sqlalchemy import select
from sqlalchemy.orm import Session

from registry.db.models import Instance, SourceRoot


def instance_file_paths(session: Session, series_id: int) -> list[Path]:
    """The files of a series' instances, as paths this machine can open."""
    rows = session.execute(
        select(Instance.file_path, SourceRoot.path)
        .outerjoin(SourceRoot, Instance.source_root_id == SourceRoot.id)
        .where(Instance.series_id == series_id)
    ).all()
    return [Path(root) / path if root else Path(path) for path, root in rows]


def instance_file(instance: Instance) -> Path:
    """One instance's file, as a path this machine can open."""
    root = instance.source_root
    return Path(root.path) / instance.file_path if root is not None else Path(instance.file_path)
