"""The storage SCP against dcmtk's storescu and echoscu: admission by AE title, concurrent centers,
a malformed file, and a kill -9 mid-send followed by a re-send."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pydicom
import pytest
from registry_dicom_factory import series_uid_of, uid, write_series, write_without
from registry_dicom_peers import free_port, require_tool, series_by_center, spooled_files, wait_for_port
from sqlalchemy import func, select

from registry.db.engine import make_engine, session_scope
from registry.db.models import AuditEvent, Instance, Patient, Rejection, Series
from registry.dicom.receiver import Receiver
from registry.dicom.senders import add_sender
from registry.home import Home

pytestmark = pytest.mark.filterwarnings("ignore::UserWarning")
ROOT = Path(__file__).resolve().parents[2]
OURS = "CTSTUDY"


def storescu(port: int, calling: str, folder: Path, *extra: str) -> list[str]:
    return [require_tool("storescu"), "-aet", calling, "-aec", OURS, "-nh", *extra, "+sd", "+r",
            "127.0.0.1", str(port), str(folder)]


def register(home: Home, *pairs: tuple[str, str]) -> None:
    engine = make_engine(home.db_url)
    with session_scope(engine) as s:
        for ae, center in pairs:
            add_sender(s, ae, center, host=None, actor="test")
    engine.dispose()


@pytest.fixture()
def receiver(home: Home) -> Iterator[tuple[Receiver, int]]:
    port = free_port()
    engine = make_engine(home.db_url)
    r = Receiver(engine, home, ae_title=OURS, port=port, bind="127.0.0.1", quiet_seconds=30)
    r.start()
    try:
        yield r, port
    finally:
        r.stop()
        engine.dispose()


def registry_snapshot(home: Home) -> dict[str, object]:
    engine = make_engine(home.db_url)
    with session_scope(engine) as s:
        snap = {
            "series": sorted(s.execute(select(Series.series_instance_uid, Series.instance_count, Series.qc_status,
                                              Series.coverage_mm)).all()),
            "instances": sorted(s.execute(select(Instance.sop_instance_uid, Instance.sha256)).all()),
            "patients": s.scalar(select(func.count()).select_from(Patient)),
        }
    engine.dispose()
    return snap


def test_two_centers_sending_at_once_land_under_their_own_centers(home: Home, receiver, tmp_path: Path) -> None:
    r, port = receiver
    register(home, ("PACS_A", "IT064"), ("PACS_B", "GR001"))
    write_series(tmp_path / "a", "net-a", patient_id="IT064-0001", n_slices=20)
    write_series(tmp_path / "b", "net-b", patient_id="GR001-0001", n_slices=16)
    echo = subprocess.run([require_tool("echoscu"), "-aet", "PACS_A", "-aec", OURS, "127.0.0.1", str(port)],
                          capture_output=True, text=True, timeout=30)
    assert echo.returncode == 0, echo.stderr
    sends = [subprocess.Popen(storescu(port, ae, tmp_path / d), stdout=subprocess.PIPE, stderr=subprocess.STDOUT)
             for ae, d in (("PACS_A", "a"), ("PACS_B", "b"))]
    for proc in sends:
        out, _ = proc.communicate(timeout=60)
        assert proc.returncode == 0, out
    r.stop()
    assert series_by_center(home) == {"IT064": [(series_uid_of("net-a"), 20)], "GR001": [(series_uid_of("net-b"), 16)]}
    assert spooled_files(home.root / "spool") == 0  # everything ingested, nothing left behind


def test_unknown_ae_title_is_refused_and_the_refusal_audited(home: Home, receiver, tmp_path: Path) -> None:
    _r, port = receiver
    register(home, ("PACS_A", "IT064"))
    write_series(tmp_path / "x", "net-x", n_slices=3)
    sent = subprocess.run(storescu(port, "STRANGER", tmp_path / "x"), capture_output=True, text=True, timeout=30)
    assert sent.returncode != 0
    assert "Association" in sent.stderr + sent.stdout
    engine = make_engine(home.db_url)
    with session_scope(engine) as s:
        refused = s.scalars(select(AuditEvent).where(AuditEvent.action == "dicom_association_refused")).all()
        assert [(e.entity_id, e.after["reason"]) for e in refused] == [("STRANGER", "unknown calling AE title")]
        assert s.scalar(select(func.count()).select_from(Series)) == 0
    engine.dispose()
    assert spooled_files(home.root / "spool") == 0


def test_malformed_file_in_a_send_is_rejected_alone(home: Home, receiver, tmp_path: Path) -> None:
    r, port = receiver
    register(home, ("PACS_A", "IT064"))
    good = write_series(tmp_path / "send", "net-m", n_slices=12)
    broken = write_without(good[0], tmp_path / "broken.dcm", "SeriesInstanceUID")
    ds = pydicom.dcmread(broken)
    ds.SOPInstanceUID = ds.file_meta.MediaStorageSOPInstanceUID = uid("net-m-broken")
    ds.save_as(tmp_path / "send" / "broken.dcm", enforce_file_format=False)
    sent = subprocess.run(storescu(port, "PACS_A", tmp_path / "send"), capture_output=True, text=True, timeout=60)
    assert sent.returncode == 0, sent.stderr
    r.stop()
    assert series_by_center(home) == {"IT064": [(series_uid_of("net-m"), 12)]}
    engine = make_engine(home.db_url)
    with session_scope(engine) as s:
        reasons = s.scalars(select(Rejection.reason)).all()
    engine.dispose()
    assert reasons == ["missing_series_instance_uid"]


def _start_cli_receiver(home: Home, port: int, log: Path) -> subprocess.Popen:
    cmd = [sys.executable, "-c", "from ctstudy.cli import main; main()", "--home", str(home.root), "--db-url",
           home.db_url, "registry", "receive", "--port", str(port), "--ae-title", OURS, "--bind", "127.0.0.1"]
    proc = subprocess.Popen(cmd, cwd=ROOT, env={**os.environ, "PYTHONPATH": str(ROOT)},
                            stdout=log.open("ab"), stderr=subprocess.STDOUT)
    wait_for_port(port)
    return proc


def test_kill_9_mid_send_then_resend_equals_one_clean_send(home: Home, tmp_path: Path) -> None:
    register(home, ("PACS_A", "IT064"))
    files = write_series(tmp_path / "send", "net-k", n_slices=48, rows=64, columns=64)
    port, log = free_port(), tmp_path / "receiver.log"
    spool = home.root / "spool"

    proc = _start_cli_receiver(home, port, log)
    try:
        send = subprocess.Popen(storescu(port, "PACS_A", tmp_path / "send"), stdout=subprocess.DEVNULL,
                                stderr=subprocess.DEVNULL)
        deadline = time.monotonic() + 30
        while spooled_files(spool) < 10 and time.monotonic() < deadline:
            time.sleep(0.005)
        acknowledged_before_kill = spooled_files(spool)
        sender_still_sending = send.poll() is None
        proc.send_signal(signal.SIGKILL)
        proc.wait(timeout=10)
        send.wait(timeout=30)
    finally:
        if proc.poll() is None:
            proc.kill()
    assert sender_still_sending and 10 <= acknowledged_before_kill < len(files)
    assert spooled_files(spool) >= acknowledged_before_kill  # what was acknowledged survived the kill

    proc = _start_cli_receiver(home, port, log)  # ingests what the killed one left
    try:
        again = subprocess.run(storescu(port, "PACS_A", tmp_path / "send"), capture_output=True, text=True,
                               timeout=120)
        assert again.returncode == 0, again.stderr
        proc.send_signal(signal.SIGTERM)
        assert proc.wait(timeout=120) == 0, log.read_text()
    finally:
        if proc.poll() is None:
            proc.kill()
    assert spooled_files(spool) == 0

    clean = Home.resolve(tmp_path / "clean")
    clean.ensure()
    clean.secret_path.write_text(home.secret_path.read_text())
    from registry.db.engine import upgrade

    upgrade(clean.db_url)
    register(clean, ("PACS_A", "IT064"))
    engine = make_engine(clean.db_url)
    one = Receiver(engine, clean, ae_title=OURS, port=free_port(), bind="127.0.0.1")
    one.start()
    try:
        sent = subprocess.run(storescu(one.port, "PACS_A", tmp_path / "send"), capture_output=True, text=True,
                              timeout=120)
        assert sent.returncode == 0, sent.stderr
    finally:
        one.stop()
        engine.dispose()
    assert registry_snapshot(home) == registry_snapshot(clean)
    assert registry_snapshot(home)["series"][0][1] == len(files)


def test_known_ae_title_calling_from_another_address_is_refused(home: Home, receiver, tmp_path: Path) -> None:
    _r, port = receiver
    engine = make_engine(home.db_url)
    with session_scope(engine) as s:
        add_sender(s, "PACS_A", "IT064", host="10.20.30.40", actor="test")
    write_series(tmp_path / "x", "net-h", n_slices=2)
    sent = subprocess.run(storescu(port, "PACS_A", tmp_path / "x"), capture_output=True, text=True, timeout=30)
    assert sent.returncode != 0
    with session_scope(engine) as s:
        reasons = s.scalars(select(AuditEvent.after).where(AuditEvent.action == "dicom_association_refused")).all()
        assert [r["reason"] for r in reasons] == ["calling from 127.0.0.1, registered for 10.20.30.40"]
        assert s.scalar(select(func.count()).select_from(Series)) == 0
    engine.dispose()


def test_open_association_is_ingested_after_the_quiet_period(home: Home, tmp_path: Path) -> None:
    from pynetdicom import AE
    from pynetdicom.sop_class import CTImageStorage

    register(home, ("PACS_A", "IT064"))
    files = write_series(tmp_path / "q", "net-q", n_slices=5)
    engine = make_engine(home.db_url)
    r = Receiver(engine, home, ae_title=OURS, port=free_port(), bind="127.0.0.1", quiet_seconds=0.5)
    r.start()
    try:
        sender = AE(ae_title="PACS_A")
        sender.add_requested_context(CTImageStorage)
        assoc = sender.associate("127.0.0.1", r.port, ae_title=OURS)
        assert assoc.is_established
        try:
            for path in files:
                assert assoc.send_c_store(pydicom.dcmread(path)).Status == 0x0000
            deadline = time.monotonic() + 30
            while series_by_center(home) == {} and time.monotonic() < deadline:
                time.sleep(0.2)
            assert assoc.is_established  # still open: ingested because it went quiet
            assert series_by_center(home) == {"IT064": [(series_uid_of("net-q"), 5)]}
        finally:
            assoc.release()
    finally:
        r.stop()
        engine.dispose()


def test_association_moving_on_to_another_series_is_ingested_series_by_series(
        home: Home, receiver, tmp_path: Path) -> None:
    from registry.db.models import IngestRun
    from registry.dicom.receiver import SERIES_SPLIT_MIN_FILES

    r, port = receiver
    register(home, ("PACS_A", "IT064"))
    n = SERIES_SPLIT_MIN_FILES
    write_series(tmp_path / "s" / "1", "net-s1", n_slices=n)
    write_series(tmp_path / "s" / "2", "net-s2", n_slices=n)
    sent = subprocess.run(storescu(port, "PACS_A", tmp_path / "s"), capture_output=True, text=True, timeout=60)
    assert sent.returncode == 0, sent.stderr
    r.stop()
    assert series_by_center(home) == {"IT064": sorted([(series_uid_of("net-s1"), n), (series_uid_of("net-s2"), n)])}
    engine = make_engine(home.db_url)
    with session_scope(engine) as s:
        runs = [run.counts["series_new"] for run in s.scalars(select(IngestRun).order_by(IngestRun.id))]
    engine.dispose()
    assert runs == [1, 1]  # one batch per series, not one for the whole association


def test_compressed_series_is_received_in_its_transfer_syntax_and_decodes(home: Home, receiver, tmp_path: Path) -> None:
    from pydicom.uid import RLELossless

    r, port = receiver
    register(home, ("PACS_A", "IT064"))
    for path in write_series(tmp_path / "rle", "net-rle", n_slices=4, fill=300):
        ds = pydicom.dcmread(path)
        ds.compress(RLELossless)
        ds.save_as(path, enforce_file_format=True)
    sent = subprocess.run(storescu(port, "PACS_A", tmp_path / "rle", "-xr"), capture_output=True, text=True,
                          timeout=60)
    assert sent.returncode == 0, sent.stderr
    r.stop()
    engine = make_engine(home.db_url)
    with session_scope(engine) as s:
        series = s.scalars(select(Series)).one()
        stored = pydicom.dcmread(s.scalars(select(Instance.file_path)).first())
    engine.dispose()
    assert series.series_instance_uid == series_uid_of("net-rle") and series.instance_count == 4
    assert "undecodable_pixel_data" not in series.qc_reasons
    assert stored.file_meta.TransferSyntaxUID == RLELossless and int(stored.pixel_array.max()) == 300
