"""Center codes and patient IDs as the registry compares them: one normalization for DICOM and CSV.

The same patient must get the same pseudonym whether their ID arrives in a DICOM header or in a
center's spreadsheet, so both paths normalize here (`registry.deid.pseudonym.pseudo_id` applies it):
surrounding blanks and DICOM's NUL padding are removed and letters upper-cased. IDs are the
centers' own study codes (`IT064-0012`): a lower-case variant is a typing difference, not a
different patient.
"""

from __future__ import annotations

# (regular expression, the rule in words) for the values a CSV may carry. A code must start with a
# letter or digit, which also keeps spreadsheet formulas (=, +, -, @) out of the registry.
CENTER_CODE_RULE = (r"^[A-Z0-9][A-Z0-9_.-]{0,31}$",
                    "a center code: letters, digits, '_', '.' or '-', starting with a letter or digit, "
                    "at most 32 characters")
PATIENT_ID_RULE = (r"^[A-Z0-9][A-Z0-9 _./:#-]{0,63}$",
                   "a patient ID: letters, digits and ' _./:#-', starting with a letter or digit, "
                   "at most 64 characters")


def normalized_center(code: str) -> str:
    """A center code as stored: no surrounding blanks or NULs, upper case."""
    return code.strip(" \t\r\n\0").upper()


def normalized_patient_id(patient_id: str) -> str:
    """A PatientID as hashed into the pseudonym: no surrounding blanks or NULs, upper case."""
    return patient_id.strip(" \t\r\n\0").upper()
