"""Whether a center code names the patient of a file: the folder a center exported into is called after them.

Pure. Ingest takes a file's center code from the first folder below the ingested folder (or `--center`),
and a new code becomes a center shown on every screen and export. A center that exports
`DIR/ROSSI_MARIO/...` or `DIR/<PatientID>/...` would make an identifier a center code. The code names
the patient when, compared case-insensitively, accents and the separators `^ _ - ' .` and blanks aside:

- the whole code is the PatientID, or one of the code's parts (split at `_` and `-`) of 3 or more
  characters is;
- the whole code is a part of PatientName of 3 or more letters (a family or given name, or one word of
  it), or two or more of its components run together (`ROSSIMARIO`, `MARIOROSSI`), or one of the code's
  parts of 3 or more characters is such a word (`ROSSI_M_1961`).

Only letters make a name: a PatientName that holds the study code (`IT064-0012`, as centers often write)
gives no name words, so the center `IT064` does not name its own patients.
"""

from __future__ import annotations

import itertools
import re
import unicodedata

MIN_TOKEN = 3  # shorter pieces (initials, "DE", "LA") would match too many center codes
_CODE_PARTS = re.compile(r"[_-]+")
_WORDS = re.compile(r"[^\W\d_]+")  # runs of letters


def _folded(text: str) -> str:
    """Upper case without accents: `Rossì` -> `ROSSI`."""
    decomposed = unicodedata.normalize("NFKD", text)
    return "".join(c for c in decomposed if not unicodedata.combining(c)).upper()


def _joined(text: str) -> str:
    """Letters and digits only, accents removed, upper case (the separators DICOM and folders use dropped)."""
    return "".join(c for c in _folded(text) if c.isalnum())


def name_words(patient_name: str) -> set[str]:
    """The name forms a code is compared with: each component of PatientName (family, given, middle, each of
    the alphabetic, ideographic and phonetic groups), each word in it, and the components run together in
    either order; letters only, 3 or more of them."""
    forms: set[str] = set()
    for group in patient_name.split("="):
        components = [c for c in (_folded(part) for part in group.split("^")) if c.strip()]
        wholes = []
        for component in components:
            words = _WORDS.findall(component)
            if "".join(words) != "".join(ch for ch in component if ch.isalnum()):
                continue  # digits in it: a code, not a name
            forms.update(words)
            wholes.append("".join(words))
        forms.update(wholes)
        for n in range(2, min(len(wholes), 3) + 1):
            forms.update("".join(order) for order in itertools.permutations(wholes, n))
    return {form for form in forms if len(form) >= MIN_TOKEN and form.isalpha()}


def center_names_patient(code: str, patient_id: str | None, patient_name: str | None) -> bool:
    """True when the center `code` is the patient's ID or name, whole or as one of its parts (see above)."""
    whole = _joined(code)
    if not whole:
        return False
    parts = {p for p in (_joined(part) for part in _CODE_PARTS.split(code)) if len(p) >= MIN_TOKEN}
    patient = _joined(patient_id or "")
    if patient and (whole == patient or (len(patient) >= MIN_TOKEN and patient in parts)):
        return True
    names = name_words(patient_name or "")
    return whole in names or not names.isdisjoint(parts)
