"""What a default ingest leaves, as one digest: every archive file's SHA-256 and every registry row.

Two checkouts of ctstudy ingesting the same folder under the same key must print the same lines: the
archive's files (path below the archive, SHA-256) and every row of every table, ids included, times and the
ingest's process id left out (when and by which process it ran, not what it did). Run it from each
checkout and compare the outputs.

Usage: PYTHONPATH=. .venv/bin/python bench/ingest_digest.py --make FOLDER        (the bench's 1,000 files)
       PYTHONPATH=. .venv/bin/python bench/ingest_digest.py FOLDER --key KEY_FILE [--workers 2] > digest.txt
"""

from __future__ import annotations

import argparse
import hashlib
import shutil
import sys
import tempfile
from pathlib import Path

from sqlalchemy import DateTime, MetaData, select

from registry.db.engine import make_engine, upgrade
from registry.home import Home
from registry.ingest.directory import ingest_directory


def digest_lines(home: Home) -> list[str]:
    """One line per archive file (relative path, SHA-256), then one per registry row (times, process id left out)."""
    lines = [f"file {path.relative_to(home.archive_dir)} {hashlib.sha256(path.read_bytes()).hexdigest()}"
             for path in sorted(home.archive_dir.rglob("*")) if path.is_file()]
    engine = make_engine(home.db_url)
    meta = MetaData()
    meta.reflect(engine)
    archive = str(home.archive_dir)
    with engine.connect() as connection:
        for table in meta.sorted_tables:
            if table.name == "alembic_version":
                continue
            columns = [c for c in table.columns
                       if not isinstance(c.type, DateTime) and (table.name, c.name) != ("ingest_run", "pid")]
            for row in connection.execute(select(*columns).order_by(*table.primary_key.columns)):
                values = [str(v).replace(archive, "<archive>") for v in row]
                lines.append(f"row {table.name} " + " | ".join(values))
    engine.dispose()
    return lines


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("folder", type=Path)
    parser.add_argument("--make", action="store_true", help="write the bench's study folder at FOLDER and stop")
    parser.add_argument("--key", type=Path, help="the home key file to ingest under (copied into a fresh home)")
    parser.add_argument("--series", type=int, default=25)
    parser.add_argument("--workers", type=int, default=2)
    args = parser.parse_args()
    if args.make:
        sys.path.insert(0, str(Path(__file__).parent))
        from ingest_bench import write_study_folder

        write_study_folder(args.folder, args.series, 40, 256)
        return
    if args.key is None:
        parser.error("--key KEY_FILE is needed: both checkouts must ingest under the same key")
    with tempfile.TemporaryDirectory(prefix="ctstudy-digest-") as tmp:
        home = Home.resolve(Path(tmp) / "home")
        home.root.mkdir(parents=True)
        shutil.copyfile(args.key, home.secret_path)
        home.ensure()
        upgrade(home.db_url)
        engine = make_engine(home.db_url)
        report = ingest_directory(engine, home, args.folder, actor="digest", workers=args.workers)
        engine.dispose()
        print(f"ingest: {report.new_instances} new instances, {len(report.rejected)} rejected")
        print("\n".join(digest_lines(home)))


if __name__ == "__main__":
    main()
