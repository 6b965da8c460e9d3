"""What one ingest did and what it set aside: the run's report, its rejected items, the rejection codes the
ingest decides (a file's own header gives the rest: `registry.dicom_headers`), and the name a rejected file is
kept under in the registry.

No name from the operator's folders reaches the registry (`registry.deid.stored_names`): a rejected file is kept
as its center code and a keyed token (`stored_rejection_path`); the full path is shown to whoever runs the
ingest. A symbolic link is judged where it lies (the name it was reached by), never by its target's folder.
"""

from __future__ import annotations

import os
from collections import Counter
from collections.abc import Collection
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING

from registry.deid.stored_names import path_token
from registry.identifiers import normalized_center
from registry.qc.header_validation import valid_center_code

if TYPE_CHECKING:  # named in type hints only: the report itself needs no pydicom
    from registry.dicom_headers import InstanceHeader

# Rejection codes the ingest decides rather than one file's header.
NO_CENTER = "no_center"
DICOMDIR = "dicomdir"
CONFLICT = "conflict"
SERIES_CONFLICT = "series_conflict"
SERIES_INCONSISTENT = "series_inconsistent"
CHANGED_DURING_INGEST = "changed_during_ingest"
ARCHIVE_UNREADABLE = "archive_unreadable"
INVALID_CENTER = "invalid_center"
UNREADABLE_FOLDER = "unreadable_folder"
STORE_FAILED = "store_failed"
DEFECTIVE_INSTANCE = "defective_instance"
ARCHIVE_FAILED = "archive_failed"
SYMLINK_LOOP = "symlink_loop"
ZIP_MEMBER_UNREADABLE = "zip_member_unreadable"
CENTER_NAMES_PATIENT = "center_names_patient"
REGISTRY_COPY = "registry_copy"


@dataclass(frozen=True)
class RejectedItem:
    """One file set aside: its path (as reached below the ingested folder), reason code and what to do."""

    path: str
    reason: str
    detail: str


@dataclass
class IngestReport:
    """What one ingest did; `counts()` is what IngestRun.counts stores."""

    run_id: int
    files_seen: int = 0
    new_instances: int = 0
    already_present: int = 0
    series_new: int = 0
    series_updated: int = 0
    patients_new: int = 0
    qc: Counter[str] = field(default_factory=Counter)
    rejected: list[RejectedItem] = field(default_factory=list)
    conflicts: list[RejectedItem] = field(default_factory=list)
    normalized: list[RejectedItem] = field(default_factory=list)  # values cut or cleaned to fit their VR
    debris_removed: int = 0
    interrupted_runs: list[int] = field(default_factory=list)
    # New center codes refused as the name or ID of a patient of theirs: rejected files below them are named
    # without their center folder (`stored_rejection_path`). Never stored.
    centers_naming_patients: set[str] = field(default_factory=set)

    @property
    def rejected_by_reason(self) -> dict[str, int]:
        return dict(sorted(Counter(r.reason for r in self.rejected).items()))

    @property
    def nothing_new(self) -> bool:
        return self.new_instances == 0

    def merge(self, other: IngestReport) -> None:
        """Add what one series' transaction did (counted apart, so that a retried attempt counts once)."""
        self.new_instances += other.new_instances
        self.already_present += other.already_present
        self.series_new += other.series_new
        self.series_updated += other.series_updated
        self.patients_new += other.patients_new
        self.qc.update(other.qc)
        self.rejected.extend(other.rejected)
        self.conflicts.extend(other.conflicts)
        self.normalized.extend(other.normalized)
        self.centers_naming_patients |= other.centers_naming_patients

    def counts(self) -> dict[str, object]:
        return {
            "files": self.files_seen, "new_instances": self.new_instances, "already_present": self.already_present,
            "conflicts": len(self.conflicts), "rejected": len(self.rejected),
            "rejected_by_reason": self.rejected_by_reason, "series_new": self.series_new,
            "series_updated": self.series_updated, "patients_new": self.patients_new,
            "qc": dict(sorted(self.qc.items())), "normalized": len(self.normalized),
        }


def reject_all(headers: list[InstanceHeader], report: IngestReport, reason: str, detail: str) -> None:
    """Add every file of `headers` to the report's rejections, with one reason and detail."""
    report.rejected.extend(RejectedItem(h.path, reason, detail) for h in headers)


def stored_rejection_path(key: bytes, root: Path, path: str, hidden_centers: Collection[str] = (),
                          center: str | None = None) -> str:
    """What the registry keeps of a rejected file's path: its center code and a keyed token of the rest.

    The center code is the first folder below `root`, or `center` (`--center`) when given: the first folder
    is then any folder, often the patient's. The path is taken as the file was reached below `root`, never
    resolved: a symbolic link (to a file elsewhere, or in a loop) is named by where it lies, not by its
    target's folders. Folder and file names below a center may name the patient; the token is the same for
    the same file in every run, so repeated rejections can be matched without the name. A path outside
    `root` keeps no folder at all, nor does one whose center code is among `hidden_centers` (normalized
    codes found to name a patient).
    """
    relative = os.path.relpath(path, root)
    parts = Path(relative).parts
    if not parts or parts[0] == os.pardir or Path(relative).is_absolute():
        return path_token(key, "file", os.path.abspath(path))
    code = parts[0] if center is None else center
    head = code if len(parts) > 1 and valid_center_code(code) is None else ""
    if head and normalized_center(head) in hidden_centers:
        head = ""
    token = path_token(key, "file", "/".join(parts))
    return f"{head}/{token}" if head else token
