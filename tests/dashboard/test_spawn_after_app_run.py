"""A process started with "spawn" after a Streamlit app has run in this interpreter still starts: the app run must
not leave its script behind as `__main__`, which every spawned process runs first."""

from __future__ import annotations

import multiprocessing
import os
import sys
from concurrent.futures import ProcessPoolExecutor

from streamlit.testing.v1 import AppTest

# An app that runs under Streamlit (as "__main__") and fails when a spawned process runs it (as "__mp_main__"): the
# dashboard's own script killed the repeated-simulation test's workers that way.
APP = ('import streamlit as st\n'
       'if __name__ != "__main__":\n'
       '    raise SystemExit("not under Streamlit")\n'
       'st.write("ok")\n')


def test_an_app_run_installs_its_script_as_main() -> None:
    before = sys.modules["__main__"]
    AppTest.from_string(APP).run()
    assert sys.modules["__main__"] is not before


def test_a_spawned_process_starts_after_an_app_run() -> None:
    with ProcessPoolExecutor(max_workers=1, mp_context=multiprocessing.get_context("spawn")) as pool:
        assert pool.submit(os.getpid).result(timeout=120) != os.getpid()
