"""R as the reference for the statistics: run an R script on tables written by the test, read its JSON answer.

R is a test-time peer only (Debian's r-base-core with rms, mice, survival, ordinal, metafor, lme4, mitml,
jsonlite; `make test` installs them). Where Rscript or a package is absent the test is skipped with the
reason, except under CTSTUDY_REQUIRE_R=1 (CI), where that is an error.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import textwrap
from pathlib import Path
from typing import Any

import pandas as pd
import pytest


def require_r(*packages: str) -> str:
    """Path of Rscript with `packages` loadable; skip (or fail in CI) otherwise."""
    rscript = shutil.which("Rscript")
    problem = None
    if rscript is None:
        problem = "Rscript is not installed (`make test-peers` or `apt-get install r-base-core`)"
    elif packages:
        probe = "; ".join(f"suppressPackageStartupMessages(library({p}))" for p in packages)
        done = subprocess.run([rscript, "-e", probe], capture_output=True, text=True, timeout=120)
        if done.returncode != 0:
            problem = (f"R packages {', '.join(packages)} are not all installed "
                       f"(`make test-peers`): {done.stderr.strip().splitlines()[-1:]}")
    if problem:
        if os.environ.get("CTSTUDY_REQUIRE_R") == "1":
            pytest.fail(f"R required (CTSTUDY_REQUIRE_R=1): {problem}")
        pytest.skip(problem)
    return rscript  # type: ignore[return-value]


def run_r(script: str, tables: dict[str, pd.DataFrame], workdir: Path, *,
          packages: tuple[str, ...] = (), timeout: float = 600) -> Any:
    """Run `script` in R with each table of `tables` loaded as a data.frame of that name.

    The script assigns its answer to `result` (a list); it comes back decoded from JSON, numbers at full
    precision. R's own error is shown whole when the script fails.
    """
    rscript = require_r("jsonlite", *packages)
    workdir.mkdir(parents=True, exist_ok=True)
    loads = []
    for name, frame in tables.items():
        path = workdir / f"{name}.csv"
        frame.to_csv(path, index=False)
        loads.append(f'{name} <- read.csv("{path.as_posix()}", stringsAsFactors = FALSE)')
    libs = "\n".join(f"suppressPackageStartupMessages(library({p}))" for p in ("jsonlite", *packages))
    out = workdir / "result.json"
    body = "\n".join([libs, *loads, textwrap.dedent(script),
                      f'writeLines(toJSON(result, digits = NA, auto_unbox = TRUE), "{out.as_posix()}")'])
    (workdir / "script.R").write_text(body)
    done = subprocess.run([rscript, "--vanilla", str(workdir / "script.R")], capture_output=True, text=True,
                          timeout=timeout)
    if done.returncode != 0:
        raise AssertionError(f"R failed on {workdir / 'script.R'}:\n{done.stderr[-4000:]}")
    return json.loads(out.read_text())
