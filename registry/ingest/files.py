"""The files an ingest reads: every regular file below the ingested folder (hidden ones skipped), and the
members of the zip archives among them, unpacked into the data home. What is said of a member names its zip
and its position there, never the member's own name.
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path

from registry.dicom_headers import ZIP_ARCHIVE
from registry.ingest.report import (
    DICOMDIR,
    UNREADABLE_FOLDER,
    ZIP_MEMBER_UNREADABLE,
    IngestReport,
    RejectedItem,
)
from registry.ingest.zip_members import UnpackedZip, ZipUnreadable, unpack_zip


def dicom_candidate_files(root: Path, unreadable: list[RejectedItem] | None = None) -> Iterator[Path]:
    """Every regular file under `root` in a stable order, hidden files and folders skipped.

    Folders that cannot be listed are appended to `unreadable` (a permission problem must not look
    like an empty folder).
    """
    def _report(exc: OSError) -> None:
        if unreadable is not None:
            unreadable.append(RejectedItem(str(exc.filename), UNREADABLE_FOLDER,
                                           f"folder cannot be read ({exc.strerror}): its files were not ingested; "
                                           "fix its permissions and ingest again"))

    for dirpath, dirnames, filenames in os.walk(root, onerror=_report):
        dirnames[:] = sorted(d for d in dirnames if not d.startswith("."))
        for name in sorted(filenames):
            if not name.startswith("."):
                yield Path(dirpath) / name


def unpack_zips(report: IngestReport, root: Path, center: str | None, unpack_root: Path,
                 origins: dict[str, tuple[str, int]]) -> list[Path]:
    """Unpack the zip archives `report` rejected into `<unpack_root>/<CENTER>/<n>/`; their members' paths.

    Each zip leaves the rejections (it is read, not refused); `origins` maps a member's path to (the
    zip's path, the member's position), so that what is said of a member names the zip and the position.
    """
    zips = [r for r in report.rejected if r.reason == ZIP_ARCHIVE]
    report.rejected[:] = [r for r in report.rejected if r.reason != ZIP_ARCHIVE]
    members: list[Path] = []
    for number, item in enumerate(zips, start=1):
        # Only files with a valid center reach header reading, so the zip's center is known.
        code = center or Path(os.path.relpath(item.path, root)).parts[0]
        try:
            unpacked: UnpackedZip = unpack_zip(Path(item.path), unpack_root / code / str(number))
        except ZipUnreadable as exc:
            report.rejected.append(RejectedItem(item.path, ZIP_ARCHIVE, str(exc)))
            continue
        for position in unpacked.dicomdirs:
            report.rejected.append(RejectedItem(item.path, DICOMDIR,
                                                f"zip member {position}: media directory index, not an image"))
        for position, why in unpacked.failed:
            report.rejected.append(RejectedItem(item.path, ZIP_MEMBER_UNREADABLE, f"zip member {position}: {why}"))
        for path, position in unpacked.files.items():
            origins[str(path)] = (item.path, position)
            members.append(path)
    return members


def named_by_archive(item: RejectedItem, origins: dict[str, tuple[str, int]]) -> RejectedItem:
    """A rejection of a zip member, named by its zip and its position there (never the member's name)."""
    origin = origins.get(item.path)
    if origin is None:
        return item
    return RejectedItem(origin[0], item.reason, f"zip member {origin[1]}: {item.detail}")
