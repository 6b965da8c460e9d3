"""The upload size limit, one setting for Streamlit's uploader and for the unpacking of zips."""

from __future__ import annotations

import os

UPLOAD_LIMIT_ENV = "CTSTUDY_UPLOAD_MAX_MB"
DEFAULT_UPLOAD_LIMIT_MB = 1024


def upload_limit_mb() -> int:
    """Most megabytes one upload may hold (unpacked, for a zip): CTSTUDY_UPLOAD_MAX_MB, default 1024."""
    raw = os.environ.get(UPLOAD_LIMIT_ENV, "").strip()
    if not raw:
        return DEFAULT_UPLOAD_LIMIT_MB
    if not raw.isdigit() or int(raw) < 1:
        raise ValueError(f"{UPLOAD_LIMIT_ENV}={raw!r}: give a whole number of megabytes, at least 1")
    return int(raw)
