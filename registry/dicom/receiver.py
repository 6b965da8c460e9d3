"""`ctstudy registry receive`: a DICOM storage SCP (pynetdicom) that feeds the registry through the spool.

- Associations are admitted by calling AE title (`registry.dicom.senders`); an unknown caller gets an
  A-ASSOCIATE-RJ "calling AE title not recognised", and the refusal is audited.
- A C-STORE is answered Success only after the received bytes are durably in the association's spool
  batch (`registry.dicom.spool.write_durably`); a write failure answers 0xA700 (out of resources), so
  the sender keeps the file and retries.
- When an association ends (released, aborted or its connection dropped), or after `quiet_seconds`
  without a C-STORE on a still open one, its batch is sealed and queued; one worker thread ingests the
  queued batches in order with `registry.ingest.directory.ingest_directory` (grouping, judgement, QC).
  A batch of at least `SERIES_SPLIT_MIN_FILES` files is also sealed when the association moves on to
  another series (PACS send series after series), so that one series is ingested while the next is
  received; a series that comes back later in the association extends the stored one, as a second
  `registry ingest` would.
- `stop()` (SIGTERM in the command) stops accepting, ends open associations, seals their batches and
  ingests everything queued before returning. Batches left by a killed receiver are ingested at start.
"""

from __future__ import annotations

import io
import logging
import queue
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field

import pydicom
from pynetdicom import AE, evt
from pynetdicom.sop_class import Verification
from sqlalchemy import Engine

from registry.db.engine import session_scope
from registry.dicom.contexts import STORAGE_SOP_CLASSES, TRANSFER_SYNTAXES
from registry.dicom.senders import authorized_center, normalized_ae_title
from registry.dicom.spool import (
    Batch,
    batch_source,
    file_count,
    ingest_batch,
    instance_file_name,
    new_batch,
    recover,
    seal,
    write_durably,
)
from registry.home import Home

LOG = logging.getLogger(__name__)
RECEIVER_ACTOR = "dicom-receiver"
STATUS_SUCCESS = 0x0000
STATUS_OUT_OF_RESOURCES = 0xA700
STATUS_CANNOT_UNDERSTAND = 0xC000
SERIES_SPLIT_MIN_FILES = 32
# Largest PDU we accept: a slice then comes in a few PDUs (dcmtk sends up to 128 KiB) instead of 16 KiB ones,
# each handled in Python. On this 2-core machine the receive rate did not change with it: it is bound by
# the per-message latency of pynetdicom's threads and the fsyncs (bench/receive_bench.py).
MAX_PDU_BYTES = 4 << 20
BatchDone = Callable[[Batch, object | None, BaseException | None], None]  # (batch, IngestReport, error)


@dataclass
class _Open:
    """The spool batch of one open association."""

    center: str
    calling_ae: str
    lock: threading.Lock = field(default_factory=threading.Lock)
    batch: Batch | None = None
    last_store: float = 0.0
    files: int = 0  # in `batch`
    series_uid: str | None = None  # of the last instance stored


class Receiver:
    """A storage SCP on `port` answering to `ae_title`, ingesting what admitted senders store."""

    def __init__(self, engine: Engine, home: Home, *, ae_title: str, port: int, bind: str = "0.0.0.0",
                 quiet_seconds: float = 30.0, max_associations: int = 16,
                 on_batch_done: BatchDone | None = None) -> None:
        self.engine, self.home = engine, home
        self.ae_title = normalized_ae_title(ae_title)
        self.port, self.bind = port, bind
        self.quiet_seconds = quiet_seconds
        self.on_batch_done = on_batch_done
        self._ae = AE(ae_title=self.ae_title)
        self._ae.require_called_aet = True
        self._ae.maximum_associations = max_associations
        self._ae.maximum_pdu_size = MAX_PDU_BYTES
        self._ae.add_supported_context(Verification)
        for sop in STORAGE_SOP_CLASSES:
            self._ae.add_supported_context(sop, list(TRANSFER_SYNTAXES))
        self._open: dict[int, _Open] = {}
        self._open_lock = threading.Lock()
        self._queue: queue.Queue[Batch | None] = queue.Queue()
        self._stopping = threading.Event()
        self._threads: list[threading.Thread] = []

    # --- life cycle ---
    def start(self) -> None:
        """Queue what a stopped receiver left in the spool, start the ingest worker, then listen."""
        for batch in recover(self.home):
            self._queue.put(batch)
        worker = threading.Thread(target=self._ingest_worker, name="spool-ingest", daemon=True)
        watcher = threading.Thread(target=self._quiet_watcher, name="spool-quiet", daemon=True)
        self._threads = [worker, watcher]
        for thread in self._threads:
            thread.start()
        handlers = [(evt.EVT_REQUESTED, self._on_requested), (evt.EVT_C_STORE, self._on_store),
                    (evt.EVT_RELEASED, self._on_end), (evt.EVT_ABORTED, self._on_end),
                    (evt.EVT_CONN_CLOSE, self._on_end)]
        self._ae.start_server((self.bind, self.port), block=False, evt_handlers=handlers)

    def stop(self) -> None:
        """Stop listening, end open associations, and ingest every batch received before returning."""
        self._stopping.set()
        self._ae.shutdown()  # stops the server and aborts open associations (their batches are sealed)
        with self._open_lock:
            ids = list(self._open)
        for assoc_id in ids:
            self._close(assoc_id)
        self._queue.put(None)
        for thread in self._threads:
            thread.join()

    # --- association events (pynetdicom threads) ---
    def _on_requested(self, event: evt.Event) -> None:
        assoc = event.assoc
        calling = str(assoc.requestor.primitive.calling_ae_title).strip()
        address = str(assoc.requestor.address)
        try:
            with session_scope(self.engine) as session:
                center = authorized_center(session, calling, address, called_ae=self.ae_title,
                                           actor=RECEIVER_ACTOR)
        except Exception:  # noqa: BLE001 - a database outage refuses transiently instead of accepting blind
            LOG.exception("sender check failed for %s from %s", calling, address)
            assoc.acse.send_reject(0x02, 0x01, 0x01)
            return
        if center is None:
            LOG.warning("refused association from %s at %s: not a registered sender", calling, address)
            assoc.acse.send_reject(0x01, 0x01, 0x03)
            return
        with self._open_lock:
            self._open[id(assoc)] = _Open(center=center, calling_ae=calling)

    def _on_store(self, event: evt.Event) -> int:
        with self._open_lock:
            state = self._open.get(id(event.assoc))
        if state is None or self._stopping.is_set():
            return STATUS_OUT_OF_RESOURCES
        sop = str(event.request.AffectedSOPInstanceUID or "")
        if not sop:
            return STATUS_CANNOT_UNDERSTAND
        try:
            data = event.encoded_dataset()
            series_uid = _series_uid(data)
            with state.lock:
                if (state.batch is not None and series_uid is not None and state.series_uid is not None
                        and series_uid != state.series_uid and state.files >= SERIES_SPLIT_MIN_FILES):
                    self._seal(state)
                state.series_uid = series_uid or state.series_uid
                if state.batch is None:
                    state.batch = new_batch(self.home, state.center, state.calling_ae)
                write_durably(state.batch.path, instance_file_name(sop), data)
                state.files += 1
                state.last_store = time.monotonic()
        except OSError:
            LOG.exception("could not spool an instance from %s", state.calling_ae)
            return STATUS_OUT_OF_RESOURCES
        return STATUS_SUCCESS

    def _on_end(self, event: evt.Event) -> None:
        self._close(id(event.assoc))

    def _close(self, assoc_id: int) -> None:
        with self._open_lock:
            state = self._open.pop(assoc_id, None)
        if state is not None:
            with state.lock:
                self._seal(state)

    def _seal(self, state: _Open) -> None:
        """Hand the association's batch to the ingest worker (the caller holds `state.lock`)."""
        if state.batch is None:
            return
        batch, state.batch, state.files = state.batch, None, 0
        if file_count(batch):
            self._queue.put(seal(self.home, batch))
        else:
            batch.path.rmdir()

    # --- background threads ---
    def _quiet_watcher(self) -> None:
        step = max(0.05, min(1.0, self.quiet_seconds / 4))
        while not self._stopping.wait(step):
            now = time.monotonic()
            with self._open_lock:
                states = list(self._open.values())
            for state in states:
                with state.lock:
                    if state.batch is not None and now - state.last_store >= self.quiet_seconds:
                        self._seal(state)

    def _ingest_worker(self) -> None:
        while (batch := self._queue.get()) is not None:
            try:
                report = ingest_batch(self.engine, self.home, batch, actor=f"dicom:{batch_source(batch.path)}")
            except Exception as exc:  # noqa: BLE001 - the batch stays in the spool and is retried at the next start
                LOG.exception("ingest of spool batch %s failed; it is kept and retried at the next start", batch.path)
                if self.on_batch_done:
                    self.on_batch_done(batch, None, exc)
                continue
            if self.on_batch_done:
                self.on_batch_done(batch, report, None)


def _series_uid(data: bytes) -> str | None:
    """SeriesInstanceUID of an encoded instance (header only), or None when it cannot be read here.

    The file's own verdict is ingest's: this only decides where a batch may be cut.
    """
    try:
        ds = pydicom.dcmread(io.BytesIO(data), stop_before_pixels=True, specific_tags=["SeriesInstanceUID"])
        value = ds.get("SeriesInstanceUID")
    except Exception:  # noqa: BLE001 - unreadable here means "no cut", never a refusal
        return None
    return str(value) if value else None
