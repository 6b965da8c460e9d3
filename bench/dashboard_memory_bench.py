"""Resident memory of the dashboard after every page has been opened once (target: under 500 MB).

Runs each page of the app under Streamlit's AppTest as an admin, in one fresh Python process (what the
`streamlit run` server process holds: the same imports and the same query caches), and prints the process's
VmRSS (/proc/self/status) after each page, with the heavy libraries each page brought in. The registry is
the dashboard tests' small one (two centers, seven series, a mask, two fits) unless --home names a data home
(e.g. a demo's: `ctstudy demo --no-serve` then `--home ./ctstudy-data`), whose series and masks the QC page
and the Case viewer then load.

    .venv/bin/python bench/dashboard_memory_bench.py [--home DIR] [--target-mb 500]

The `ctstudy demo` process itself is not the server: it execs `ctstudy dashboard` once the pipeline is done,
so the pipeline's memory (torch, models, volumes) is not held while the dashboard is served.
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
PAGES = ROOT / "dashboard" / "pages"
HEAVY = ("torch", "monai", "lifelines", "sklearn", "statsmodels", "SimpleITK", "highdicom", "scipy")


def rss_mb() -> float:
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    raise RuntimeError("no VmRSS in /proc/self/status (Linux only)")


def build_small_home(folder: Path) -> None:
    """The dashboard tests' small registry in a new home at `folder` (in a child process: its imports stay there)."""
    code = ("import sys; sys.path.insert(0, 'tests/dashboard'); import dashboard_registry_factory as f; "
            "from registry.db.engine import upgrade; from registry.home import Home; "
            f"h = Home.resolve({str(folder)!r}); h.ensure(); upgrade(h.db_url); f.build(h)")
    subprocess.run([sys.executable, "-c", code], cwd=ROOT, check=True, env={**os.environ, "PYTHONPATH": str(ROOT)})


def visit_pages(home: str) -> list[tuple[str, float, float, list[str], bool]]:
    """Open every page once as an admin; (page, RSS MB after it, seconds, heavy modules loaded, raised)."""
    os.environ["CTSTUDY_HOME"] = home
    os.environ.pop("CTSTUDY_DB_URL", None)
    from streamlit.testing.v1 import AppTest

    from registry.access.users import Identity, add_user
    from registry.db.engine import make_engine, session_scope
    from registry.db.models import User
    from registry.home import Home

    engine = make_engine(Home.resolve(home).db_url)
    with session_scope(engine) as s:  # every request re-checks the account: the bench's admin must exist
        if s.query(User).filter(User.username == "bench-admin").first() is None:
            add_user(s, "bench-admin", "admin", "bench-password", actor="bench")
    engine.dispose()
    admin = Identity("bench-admin", "admin", None)
    rows = []
    for page in sorted(p.name for p in PAGES.glob("*.py")):
        start = time.perf_counter()
        at = AppTest.from_file(str(PAGES / page), default_timeout=300)
        at.session_state["identity"] = admin
        at.run()
        rows.append((page, rss_mb(), time.perf_counter() - start, [m for m in HEAVY if m in sys.modules],
                     bool(at.exception)))
    return rows


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--home", help="A data home to open (default: a new small registry).")
    parser.add_argument("--target-mb", type=float, default=500.0)
    parser.add_argument("--child", action="store_true", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        start = rss_mb()
        rows = visit_pages(args.home)
        print(f"{'page':24} {'RSS MB':>8} {'s':>6}  libraries loaded")
        print(f"{'(before any page)':24} {start:8.0f}")
        for page, rss, secs, heavy, raised in rows:
            print(f"{page:24} {rss:8.0f} {secs:6.1f}  {', '.join(heavy) or '-'}" + ("  (page raised)" if raised
                                                                                       else ""))
        peak = max(r[1] for r in rows)
        verdict = "met" if peak < args.target_mb else "NOT met"
        print(f"after all pages: {rows[-1][1]:.0f} MB resident (largest {peak:.0f} MB); "
              f"target < {args.target_mb:.0f} MB: {verdict}")
        return
    with tempfile.TemporaryDirectory(prefix="ctstudy-memory-") as tmp:
        home = args.home
        if home is None:
            home = str(Path(tmp) / "home")
            build_small_home(Path(home))
        subprocess.run([sys.executable, __file__, "--child", "--home", home, "--target-mb", str(args.target_mb)],
                       cwd=ROOT, check=True, env={**os.environ, "PYTHONPATH": str(ROOT)})


if __name__ == "__main__":
    main()
