"""The registry's read commands run on a filled registry without importing pandas, numpy or pyarrow.

Those three cost about 0.3 s of the 1 s start-up budget of `ctstudy registry progress`, `registry missing`,
`users list` and `dictionary` (bench/startup_bench.py prints the times). A module that imports pandas at
its top, anywhere on these commands' path, brings it back: this test names the command that loaded it.
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

from test_registry_progress import build_registry

from registry.access.users import add_user
from registry.db.engine import make_engine, session_scope
from registry.home import Home

ROOT = Path(__file__).resolve().parents[2]
AVOIDED = ("pandas", "numpy", "pyarrow")
PROBE = """
import json, sys
from ctstudy.cli import main
sys.argv = ["ctstudy", *json.loads(sys.argv[1])]
try:
    main()
except SystemExit as stop:
    code = stop.code
print("LOADED " + json.dumps([m for m in {avoided!r} if m in sys.modules]), "EXIT", code)
"""


def _run(home: Home, *words: str) -> tuple[str, list[str]]:
    argv = ["--home", str(home.root), "--db-url", home.db_url, *words]
    out = subprocess.run([sys.executable, "-c", PROBE.format(avoided=AVOIDED), json.dumps(argv)], cwd=ROOT,
                         capture_output=True, text=True, check=True, env={"PYTHONPATH": str(ROOT), "PATH": ""})
    text, _, tail = out.stdout.rpartition("LOADED ")
    loaded, _, code = tail.partition(" EXIT ")
    assert code.strip() in ("0", "None"), (words, out.stdout, out.stderr)
    return text, json.loads(loaded)


def test_read_commands_on_a_filled_registry_load_no_dataframe_library(home: Home, tmp_path: Path) -> None:
    build_registry(home, tmp_path)
    engine = make_engine(home.db_url)
    with session_scope(engine) as s:
        add_user(s, "coordinator_it064", "coordinator", "a long password 1", center_code="IT064")
    engine.dispose()
    for words, shows in ((["registry", "progress"], "IT064"), (["registry", "missing"], "GR001"),
                         (["registry", "missing", "--detail"], "Admission scan not yet usable"),
                         (["users", "list"], "coordinator_it064"), (["dictionary"], "Hematoma volume")):
        text, loaded = _run(home, *words)
        assert shows in text, (words, text)  # it read and printed the registry's rows
        assert loaded == [], f"`ctstudy {' '.join(words)}` imported {loaded}"
