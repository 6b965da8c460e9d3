"""Where a study lives: the data home (archive, masks, models, secret) and the database URL.

The registry is the leftmost package of the data flow, so every other package (and the
`ctstudy` shell) takes its paths from here rather than from a global settings object.
"""

from __future__ import annotations

import os
import secrets
from dataclasses import dataclass
from pathlib import Path

HOME_ENV = "CTSTUDY_HOME"
DB_URL_ENV = "CTSTUDY_DB_URL"
DEFAULT_HOME = Path("ctstudy-data")
SQLITE_FILE = "registry.sqlite"
SECRET_FILE = "pseudonym.key"


@dataclass(frozen=True)
class Home:
    """The data home of one study and the database it uses."""

    root: Path
    db_url: str

    @classmethod
    def resolve(cls, root: Path | str | None = None, db_url: str | None = None) -> Home:
        """Explicit arguments first, then CTSTUDY_HOME / CTSTUDY_DB_URL, then ./ctstudy-data + SQLite."""
        root_path = Path(root or os.environ.get(HOME_ENV) or DEFAULT_HOME).expanduser().resolve()
        url = db_url or os.environ.get(DB_URL_ENV) or f"sqlite:///{root_path / SQLITE_FILE}"
        return cls(root=root_path, db_url=url)

    @property
    def archive_dir(self) -> Path:
        """Managed copy of the DICOM files received: center/patient/study/series."""
        return self.root / "archive"

    @property
    def in_place_dir(self) -> Path:
        """Links to files indexed in place, named like the archive (center/patient/study/series, pseudonymous):
        the registry keeps the link, never the original's folder names."""
        return self.root / "in-place"

    @property
    def unpack_dir(self) -> Path:
        """Zip archives found by an ingest are unpacked here, one folder per ingest, removed when it ends."""
        return self.root / "unpacking"

    @property
    def staging_dir(self) -> Path:
        """De-identified copies made while an ingest reads its files, one folder per ingest, moved into the
        archive once their series is stored (beside the archive: a move is a rename on the same disk)."""
        return self.root / "staging"

    @property
    def masks_dir(self) -> Path:
        """NIfTI masks: manual annotations and segmentation outputs."""
        return self.root / "masks"

    @property
    def models_dir(self) -> Path:
        return self.root / "models"

    @property
    def reports_dir(self) -> Path:
        return self.root / "reports"

    @property
    def secret_path(self) -> Path:
        return self.root / SECRET_FILE

    @property
    def is_sqlite(self) -> bool:
        return self.db_url.startswith("sqlite")

    def ensure(self) -> None:
        """Create the home's folders and, once, the pseudonymization secret (never overwritten)."""
        for path in (self.root, self.archive_dir, self.masks_dir, self.models_dir, self.reports_dir):
            path.mkdir(parents=True, exist_ok=True)
        if not self.secret_path.exists():
            # The key is what makes pseudonyms irreversible to anyone without the home; losing it
            # means new ingests no longer match old patients, so it is created once, never rotated here.
            fd = os.open(self.secret_path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
            with os.fdopen(fd, "w") as fh:
                fh.write(secrets.token_hex(32))

    def secret(self) -> bytes:
        """The pseudonymization key; a clear error if `ctstudy init` has not been run."""
        try:
            return self.secret_path.read_text().strip().encode()
        except FileNotFoundError:
            raise FileNotFoundError(
                f"No pseudonymization key at {self.secret_path}: run `ctstudy init` first "
                f"(or point --home / {HOME_ENV} at an initialised data home)."
            ) from None
