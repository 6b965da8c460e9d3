"""Rejections cross process boundaries (reader pools, Dask workers) with their cause, whoever pickles them."""

from __future__ import annotations

import pickle

import tblib.pickling_support

from registry.dicom_headers import RejectedFile
from registry.qc.header_validation import InvalidValue


def test_a_rejection_and_its_invalid_value_cause_survive_tblibs_exception_pickling() -> None:
    # Dask installs tblib's exception pickling for the exceptions it ships; after that the reader
    # pool's results went through it, and a frozen-dataclass cause could not be rebuilt (the whole
    # ingest stopped with BrokenProcessPool in CI, after the cluster tests).
    try:
        try:
            raise InvalidValue("PatientID", "is longer than 64 characters")
        except InvalidValue as cause:
            raise RejectedFile("IT064/a.dcm", "invalid_value", "PatientID is longer than 64 characters") from cause
    except RejectedFile as exc:
        rejected = exc
    tblib.pickling_support.install(rejected, rejected.__cause__)
    back = pickle.loads(pickle.dumps(rejected))
    assert (back.path, back.reason, back.detail) == ("IT064/a.dcm", "invalid_value", rejected.detail)
    assert isinstance(back.__cause__, InvalidValue) and back.__cause__.keyword == "PatientID"
    assert str(back.__cause__) == str(rejected.__cause__)
