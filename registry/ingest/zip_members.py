"""The members of a zip archive, unpacked into a folder to be judged like any file. No database.

Coordinators receive studies as zip archives (PACS CDs copied whole, web transfers). Each member is
written under the unpacking folder as `<position>` (its 1-based position in the archive), never under
its own name: member names are folder and file names chosen elsewhere (they may name the patient),
and a name like `../../x` must not write outside the folder. Hidden members (`.DS_Store`, macOS
`__MACOSX/` resource forks) are skipped as hidden files are in a folder; DICOMDIR indexes are set aside.
Python's `zipfile` reads the archives (stored and deflated members, ZIP64).
"""

from __future__ import annotations

import shutil
import zipfile
from dataclasses import dataclass, field
from pathlib import Path

# Left free on the data home's disk after unpacking (the archive copies still have to be written).
FREE_SPACE_MARGIN_BYTES = 1 << 30
_CHUNK = 1 << 20


@dataclass
class UnpackedZip:
    """Where each member went (`files`: path -> position), and the members set aside (position, why)."""

    files: dict[Path, int] = field(default_factory=dict)
    dicomdirs: list[int] = field(default_factory=list)
    failed: list[tuple[int, str]] = field(default_factory=list)


class ZipUnreadable(ValueError):
    """The archive as a whole cannot be unpacked; the message says why and what to do."""


def _hidden(name: str) -> bool:
    return any(part.startswith(".") or part == "__MACOSX" for part in name.replace("\\", "/").split("/") if part)


def unpack_zip(archive: Path, folder: Path) -> UnpackedZip:
    """Write the regular, visible members of `archive` into `folder` (created), named by their position."""
    try:
        with zipfile.ZipFile(archive) as zf:
            members = zf.infolist()
            needed = sum(m.file_size for m in members if not m.is_dir())
            folder.mkdir(parents=True, exist_ok=True)
            free = shutil.disk_usage(folder).free
            if needed + FREE_SPACE_MARGIN_BYTES > free:
                raise ZipUnreadable(f"unpacking needs {needed / 1e6:.0f} MB and the data home's disk has "
                                    f"{free / 1e6:.0f} MB free (1 GB is kept for the archive copies): free space "
                                    "or unzip it elsewhere and ingest that folder")
            result = UnpackedZip()
            for position, member in enumerate(members, start=1):
                base = member.filename.replace("\\", "/").rstrip("/").rsplit("/", 1)[-1]
                if member.is_dir() or _hidden(member.filename):
                    continue
                if base.upper() == "DICOMDIR":
                    result.dicomdirs.append(position)
                    continue
                target = folder / f"{position:06d}"
                try:
                    with zf.open(member) as src, open(target, "wb") as dst:
                        shutil.copyfileobj(src, dst, _CHUNK)
                except RuntimeError:  # zipfile's error for an encrypted member without a password
                    target.unlink(missing_ok=True)
                    result.failed.append((position, "encrypted (password-protected): unzip it with its "
                                                    "password and ingest the folder"))
                    continue
                except (zipfile.BadZipFile, EOFError, OSError, NotImplementedError) as exc:
                    target.unlink(missing_ok=True)
                    why = "compressed with a method Python cannot read (e.g. deflate64)" \
                        if isinstance(exc, NotImplementedError) else f"damaged ({type(exc).__name__})"
                    result.failed.append((position, f"{why}: unzip it with 7-Zip or your system's tool and "
                                                    "ingest the folder"))
                    continue
                result.files[target] = position
            return result
    except zipfile.BadZipFile:
        # zipfile's message may quote member names: it is not repeated.
        raise ZipUnreadable("a damaged zip archive (its directory cannot be read): copy it again, or unzip it "
                            "with 7-Zip and ingest the folder") from None
