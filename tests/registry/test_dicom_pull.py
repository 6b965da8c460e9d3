"""`registry pull` against a real PACS: Debian's Orthanc on free local ports, loaded with storescu."""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest
from registry_dicom_factory import series_uid_of, write_series
from registry_dicom_peers import free_port, require_tool, series_by_center, wait_for_port

from registry.db.engine import make_engine
from registry.dicom.pull import Pacs, pull
from registry.home import Home

pytestmark = pytest.mark.filterwarnings("ignore::UserWarning")
ROOT = Path(__file__).resolve().parents[2]
OURS = "PULLER"


@dataclass(frozen=True)
class Orthanc:
    pacs: Pacs
    our_port: int  # where Orthanc sends our C-MOVEs


@pytest.fixture()
def orthanc(tmp_path: Path) -> Iterator[Orthanc]:
    """Orthanc with a config in a temporary folder, knowing us as PULLER at 127.0.0.1:<our_port>, loaded with
    two patients: IT064-0001 (admission and follow-up series) and IT064-0002 (one series)."""
    binary = require_tool("Orthanc")
    storescu = require_tool("storescu")
    dicom_port, http_port, our_port = free_port(), free_port(), free_port()
    folder = tmp_path / "orthanc"
    folder.mkdir()
    config = {
        "Name": "ctstudy-test", "StorageDirectory": str(folder / "storage"), "IndexDirectory": str(folder / "index"),
        "DicomAet": "ORTHANC", "DicomPort": dicom_port, "HttpPort": http_port, "RemoteAccessAllowed": False,
        "AuthenticationEnabled": False, "DicomModalities": {"ctstudy": [OURS, "127.0.0.1", our_port]},
        "DicomAlwaysAllowStore": True, "DicomCheckCalledAet": False, "Plugins": [], "StableAge": 1,
    }
    (folder / "config.json").write_text(json.dumps(config))
    log = (folder / "orthanc.log").open("wb")
    proc = subprocess.Popen([binary, str(folder / "config.json")], stdout=log, stderr=subprocess.STDOUT,
                            cwd=folder)
    try:
        wait_for_port(dicom_port, timeout=30)
        load = tmp_path / "load"
        write_series(load / "p1a", "pull-1a", patient_id="IT064-0001", n_slices=10)
        write_series(load / "p1f", "pull-1f", patient_id="IT064-0001", n_slices=8, acquisition="20240309120000")
        write_series(load / "p2", "pull-2", patient_id="IT064-0002", n_slices=6)
        sent = subprocess.run([storescu, "-aet", "LOADER", "-aec", "ORTHANC", "+sd", "+r", "127.0.0.1",
                               str(dicom_port), str(load)], capture_output=True, text=True, timeout=60)
        assert sent.returncode == 0, sent.stderr
        yield Orthanc(Pacs("ORTHANC", "127.0.0.1", dicom_port), our_port)
    finally:
        proc.terminate()
        try:
            proc.wait(timeout=20)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait(timeout=10)
        log.close()


def test_pull_of_one_patient_fetches_their_series_only_and_a_repeat_fetches_nothing(
        home: Home, orthanc: Orthanc) -> None:
    pacs = orthanc.pacs
    cli = subprocess.run(
        [sys.executable, "-c", "from ctstudy.cli import main; main()", "--home", str(home.root), "--db-url",
         home.db_url, "registry", "pull", "--pacs", f"ORTHANC@127.0.0.1:{pacs.port}", "--ae-title", OURS,
         "--port", str(orthanc.our_port), "--bind", "127.0.0.1", "--center", "IT064", "--patient-id", "IT064-0001"],
        cwd=ROOT, env={**os.environ, "PYTHONPATH": str(ROOT), "COLUMNS": "200"}, capture_output=True, text=True,
        timeout=180)
    assert cli.returncode == 0, cli.stdout + cli.stderr
    shown = dict(m.groups() for line in cli.stdout.splitlines() if (m := re.match(r"^\s*([a-z ]+?)\s+(\d+)\s*$", line)))
    assert (shown["studies found"], shown["instances found"], shown["already present"], shown["fetched"]) == \
        ("2", "18", "0", "18"), cli.stdout
    expected = sorted([(series_uid_of("pull-1a"), 10), (series_uid_of("pull-1f"), 8)])
    assert series_by_center(home) == {"IT064": expected}

    engine = make_engine(home.db_url)
    try:
        again = pull(engine, home, pacs=pacs, ae_title=OURS, port=orthanc.our_port, center="IT064",
                     queries=[("patient_id", "IT064-0001")], method="get")
        assert (again.instances_found, again.already_present, again.fetched, again.ingest) == (18, 18, 0, None)

        other = pull(engine, home, pacs=pacs, ae_title=OURS, port=orthanc.our_port, center="IT064",
                     queries=[("patient_id", "IT064-0002")], method="get")
        assert (other.instances_found, other.already_present, other.fetched) == (6, 0, 6)
        assert other.ingest.new_instances == 6 and other.retrieve_failures == []
    finally:
        engine.dispose()
    assert series_by_center(home) == {"IT064": sorted([*expected, (series_uid_of("pull-2"), 6)])}


def test_pacs_address_and_query_list_are_read_with_errors_naming_what_is_wrong(tmp_path: Path) -> None:
    from registry.dicom.pull import parse_pacs, queries_from_list

    assert parse_pacs("ORTHANC@10.0.0.5:4242") == Pacs("ORTHANC", "10.0.0.5", 4242)
    for bad in ("ORTHANC10.0.0.5:4242", "ORTHANC@10.0.0.5", "ORTHANC@10.0.0.5:99999", "@host:104"):
        with pytest.raises(ValueError, match="AET@HOST:PORT|AE title"):
            parse_pacs(bad)
    good = tmp_path / "ids.csv"
    good.write_text("accession\nA1\nA2\n")
    assert queries_from_list(good) == [("accession", "A1"), ("accession", "A2")]
    wrong = tmp_path / "wrong.csv"
    wrong.write_text("mrn\nA1\n")
    with pytest.raises(ValueError, match="one of patient_id, accession, study_uid"):
        queries_from_list(wrong)
    gap = tmp_path / "gap.csv"
    gap.write_text("patient_id\nP1\n\n")
    with pytest.raises(ValueError, match="row 3: expected one non-empty value"):
        queries_from_list(gap)
