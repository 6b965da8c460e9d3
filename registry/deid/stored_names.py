"""What the registry keeps instead of the names operators' files and values carry. Pure.

Folder and file names are chosen by whoever exported the images, and a rejected cell is by definition a
value nobody checked: either may name a patient ("Rossi_Mario_19610312/", a patient_id cell holding a
name and a phone number). The registry and the data home's logs therefore keep:

- a folder or file as a keyed token (`folder-<16 hex>`, `file-<16 hex>`: HMAC-SHA256 under the home key),
  the same for the same path in every run, so repeated rejections of one file can be matched, and
  irreversible without the key;
- a rejected value by its kind: its length and the classes of characters it holds, never the value.

The operator's own terminal shows the real path (`--show-paths`) and the CSV's `.rejects.csv`, written
next to the operator's file, holds the rows as they were.
"""

from __future__ import annotations

import hashlib
import hmac

TOKEN_HEX = 16  # 64 bits: collisions among a study's files are negligible (n^2 / 2^65)


def path_token(key: bytes, kind: str, path: str) -> str:
    """`<kind>-<16 hex>`: the keyed token of a path (`kind` is `folder` or `file`)."""
    digest = hmac.new(key, f"{kind}|{path}".encode("utf-8", "surrogateescape"), hashlib.sha256).hexdigest()
    return f"{kind}-{digest[:TOKEN_HEX]}"


def folder_token(key: bytes, folder: str) -> str:
    """The keyed token standing for an ingested folder or imported file in runs and audit events."""
    return path_token(key, "folder", folder)


_CLASSES = (
    ("letters", str.isalpha),
    ("digits", str.isdigit),
    ("spaces", str.isspace),
)


def value_kind(value: object) -> str:
    """A rejected value described without itself: `27 characters: letters, digits, spaces, other symbols`."""
    text = "" if value is None else str(value)
    if not text:
        return "empty"
    found = [name for name, test in _CLASSES if any(test(ch) for ch in text)]
    if any(not (ch.isalnum() or ch.isspace()) for ch in text):
        found.append("other symbols")
    plural = "character" if len(text) == 1 else "characters"
    return f"{len(text)} {plural}: {', '.join(found)}"
