"""Keyed pseudonyms for patients: the same center and PatientID always give the same `pseudo_id`.

`pseudo_id = HMAC-SHA256(key, "<CENTER>|<PatientID>")`, hex, truncated to 20 characters (80 bits).
Without the key (the data home's `pseudonym.key`) the pseudonym cannot be recomputed from a guessed
PatientID, unlike a plain hash. Collision risk: for n patients about n^2 / 2^81, i.e. 4e-13 for a
million patients; a collision would still be caught, because `Patient.pseudo_id` is unique and the
center is part of the hashed message.
"""

from __future__ import annotations

import hashlib
import hmac

from registry.identifiers import normalized_center, normalized_patient_id

PSEUDO_ID_LENGTH = 20


def pseudo_id(key: bytes, center: str, patient_id: str) -> str:
    """The pseudonym of a center's PatientID (normalized as `registry.identifiers` says: blanks, case)."""
    center, patient_id = normalized_center(center), normalized_patient_id(patient_id)
    if not center or not patient_id:
        raise ValueError("a pseudonym needs both a center code and a PatientID")
    message = f"{center}|{patient_id}".encode()
    return hmac.new(key, message, hashlib.sha256).hexdigest()[:PSEUDO_ID_LENGTH]
