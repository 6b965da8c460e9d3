"""Receiving over the network against ingesting from disk: files/s received *and stored* from dcmtk's storescu.

In one run, on the same synthetic CT files (N files of matrix x matrix int16):
- disk: `registry ingest` of the folder (`registry.ingest.directory.ingest_directory`, default workers, archive copies);
- 1 association: one storescu sends the folder to `registry receive` (`registry.dicom.receiver.Receiver`);
- 4 associations: four storescu processes, each a quarter of the series, at once;
each receive timed from the first storescu start until every file is durably spooled, ingested and
committed. Prints files/s and the ratio of each receive to the disk ingest (target: >= 0.8).

Usage: .venv/bin/python bench/receive_bench.py [--series 12] [--slices 50] [--matrix 256]
"""

from __future__ import annotations

import argparse
import shutil
import socket
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from ingest_bench import write_study_folder  # noqa: E402 - the bench folder's shared synthetic CT writer

from registry.db.engine import make_engine, session_scope, upgrade  # noqa: E402
from registry.dicom.receiver import Receiver  # noqa: E402
from registry.dicom.senders import add_sender  # noqa: E402
from registry.home import Home  # noqa: E402
from registry.ingest.directory import ingest_directory  # noqa: E402


def fresh_home(path: Path) -> Home:
    home = Home.resolve(path)
    home.ensure()
    upgrade(home.db_url)
    return home


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def disk_ingest(files_root: Path, work: Path) -> float:
    home = fresh_home(work / "disk")
    engine = make_engine(home.db_url)
    start = time.perf_counter()
    report = ingest_directory(engine, home, files_root, center="BENCH")
    elapsed = time.perf_counter() - start
    engine.dispose()
    assert not report.rejected, report.rejected_by_reason
    return elapsed


def receive(series_dirs: list[Path], n_files: int, work: Path, parallel: int) -> float:
    home = fresh_home(work / f"receive{parallel}")
    engine = make_engine(home.db_url)
    with session_scope(engine) as s:
        add_sender(s, "BENCH_PACS", "BENCH", host=None, actor="bench")
    ingested = 0
    all_done = threading.Event()

    def done(_batch, report, error) -> None:  # noqa: ANN001
        nonlocal ingested
        if error is not None:
            raise error
        ingested += report.files_seen
        if ingested >= n_files:
            all_done.set()

    port = free_port()
    receiver = Receiver(engine, home, ae_title="CTSTUDY", port=port, bind="127.0.0.1", on_batch_done=done)
    receiver.start()
    shares = [series_dirs[i::parallel] for i in range(parallel)]
    try:
        start = time.perf_counter()
        senders = [subprocess.Popen(["storescu", "-aet", "BENCH_PACS", "-aec", "CTSTUDY", "+sd", "127.0.0.1",
                                     str(port), *map(str, share)]) for share in shares]
        for proc in senders:
            if proc.wait(timeout=600) != 0:
                raise RuntimeError("storescu failed")
        if not all_done.wait(timeout=600):
            raise RuntimeError(f"only {ingested} of {n_files} files ingested")
        elapsed = time.perf_counter() - start
    finally:
        receiver.stop()
        engine.dispose()
    return elapsed


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--series", type=int, default=12)
    parser.add_argument("--slices", type=int, default=50)
    parser.add_argument("--matrix", type=int, default=256)
    args = parser.parse_args()
    if shutil.which("storescu") is None:
        sys.exit("storescu (dcmtk) is not installed: `make test-peers` or `apt-get install dcmtk`")
    with tempfile.TemporaryDirectory(prefix="receive-bench-") as tmp:
        work = Path(tmp)
        n = write_study_folder(work / "files", args.series, args.slices, args.matrix)
        series_dirs = sorted(p for p in (work / "files").glob("*/*") if p.is_dir())
        disk = disk_ingest(work / "files", work)
        one = receive(series_dirs, n, work, 1)
        four = receive(series_dirs, n, work, 4)
    size_kb = (args.matrix * args.matrix * 2) // 1024
    print(f"{n} CT files of {args.matrix}x{args.matrix} (~{size_kb} KB each), {args.series} series")
    print(f"registry ingest from disk : {n / disk:7.1f} files/s ({disk:.1f} s)")
    print(f"receive, 1 association    : {n / one:7.1f} files/s ({one:.1f} s)  ratio {disk / one:.2f}x disk")
    print(f"receive, 4 associations   : {n / four:7.1f} files/s ({four:.1f} s)  ratio {disk / four:.2f}x disk")
    print("target: ratio >= 0.80")


if __name__ == "__main__":
    main()
