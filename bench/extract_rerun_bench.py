"""What re-running `biomarkers extract` costs when no mask changed: the skip path with the rescore check
(`biomarkers.review_components.rescore_if_changed`: the components set for the series, from the clinical record
and reviewers, applied to the stored features) against the skip path without it.

    PYTHONPATH=$PWD python bench/extract_rerun_bench.py [--patients 16] [--repeats 5]

A synthetic study (128 x 128 phantoms) is ingested, its clinical CSV imported and its features extracted from
the truth masks once; then the extraction is run again `--repeats` times each way, alternating, every series
skipped. Prints the median seconds per run and per series, their ratio, and the load average.
"""

from __future__ import annotations

import argparse
import os
import statistics
import tempfile
import time
from pathlib import Path
from unittest import mock


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--patients", type=int, default=16)
    ap.add_argument("--repeats", type=int, default=5)
    args = ap.parse_args()

    from biomarkers import review_components, store
    from biomarkers.extract import extract_features
    from registry.clinical.csv_import import import_table
    from registry.db.engine import make_engine, session_scope, upgrade
    from registry.home import Home
    from registry.ingest.directory import ingest_directory
    from synthetic.study import generate_study

    with tempfile.TemporaryDirectory(prefix="extract-rerun-") as tmp:
        study = Path(tmp) / "study"
        generate_study(study, centers=2, patients=args.patients, seed=11, matrix=128)
        home = Home.resolve(Path(tmp) / "home")
        home.ensure()
        upgrade(home.db_url)
        engine = make_engine(home.db_url)
        ingest_directory(engine, home, study / "dicom")
        import_table(engine, home, study / "clinical.csv", "clinical")
        with session_scope(engine) as session:
            jobs = store.mask_jobs(session, "truth", study)
        first = extract_features(engine, jobs)
        n = len(first.computed)
        times: dict[str, list[float]] = {"with the rescore check": [], "without it": []}
        for _ in range(args.repeats):
            for name in times:
                patch = (mock.patch.object(review_components, "rescore_if_changed", lambda *a, **k: 0)
                         if name == "without it" else mock.patch.object(review_components, "rescore_if_changed",
                                                                        review_components.rescore_if_changed))
                with patch:
                    t0 = time.perf_counter()
                    report = extract_features(engine, jobs)
                    times[name].append(time.perf_counter() - t0)
                if len(report.skipped) != n:
                    raise SystemExit(f"expected every one of {n} series skipped, got {len(report.skipped)}")
        engine.dispose()
    med = {k: statistics.median(v) for k, v in times.items()}
    for name, m in med.items():
        print(f"{name:>24}: median {m:.3f} s per re-run of {n} series ({1000 * m / n:.1f} ms per series)")
    print(f"ratio with / without: {med['with the rescore check'] / med['without it']:.2f}; "
          f"load average {os.getloadavg()[0]:.1f}")


if __name__ == "__main__":
    main()
