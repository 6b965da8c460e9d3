"""Free text that may carry identifiers: descriptions and comments, cleaned before storage. Pure.

Series and study descriptions are typed by radiographers and sometimes hold a patient's name, a birth
date or a ward ("HEAD Rossi 12.03.1970"). The registry keeps a *cleaned* description instead: only
the words of a technical head-CT vocabulary and tokens with digits that are not dates (slice
thickness, kernel, "C+") survive. Whatever else was there is dropped, and the tag is reported as
possibly identifying (`Series.phi_tags`), so that a coordinator asks the center to fix its export.
This is the DICOM PS3.15 "Clean Descriptors" idea done with an allow-list: a deny-list of names
cannot be complete, an allow-list errs on the side of dropping words.
"""

from __future__ import annotations

import re

# Words of head-CT series and study descriptions (upper case), across the vendors and languages seen.
_TECHNICAL_WORDS_TEXT = """
HEAD BRAIN CT CRANE CRANIO CRANIUM CRANIAL SKULL ENCEPHALON CEREBRAL CEREBRO CRANEO CRANEAL TC TAC TDM SCANNER
AXIAL AX AXI COR CORONAL SAG SAGITTAL OBL OBLIQUE MPR MIP MINIP VRT VR RECON RECONSTRUCTION REFORMAT REF
SOFT TISSUE BONE BRAIN STD STANDARD ROUTINE HELICAL SPIRAL SEQ SEQUENTIAL THIN THICK SLICE SLICES MM
WO W WITH WITHOUT CONTRAST PLAIN NATIVE NATIV NC NON POST PRE FU FOLLOW UP FOLLOWUP CONTROL ADMISSION
TRAUMA EMERGENCY ICP RESENT TOPOGRAM SCOUT LOCALIZER LOCALISER SURVIEW SCANOGRAM PILOT SCOUTVIEW
WINDOW STROKE ANGIO CTA PERFUSION DOSE REPORT MR MRI T1 T2 FLAIR TSE SE DWI ADC SWI GRE EPI
SHARP SMOOTH UB FC HR IR IDOSE ASIR SAFIRE ADMIRE AIDR DLR ITERATIVE FBP IMR KERNEL
ORIGINAL PRIMARY SECONDARY DERIVED LOCAL OTHER VOLUME VOL SERIES STUDY EXAM BASE BASAL
NEURO ORBIT ORBITS FACE FACIAL SINUS TEMPORAL SPINE CERVICAL NECK C AND OR OF THE TO
"""
TECHNICAL_WORDS = frozenset(_TECHNICAL_WORDS_TEXT.split())

_SPLIT = re.compile(r"[\s_,;:|/()\[\]{}^=]+")
_DATE = re.compile(
    r"^(\d{1,2}[./-]\d{1,2}[./-]\d{2,4}|\d{4}[./-]\d{1,2}[./-]\d{1,2}|(19|20)\d{2}(0[1-9]|1[0-2])(0[1-9]|[12]\d|3[01]))$"
)


def cleaned_text(text: str | None) -> tuple[str | None, bool]:
    """(the text with only technical words and non-date numbers kept, whether anything was dropped)."""
    if not text:
        return None, False
    kept: list[str] = []
    dropped = False
    for token in _SPLIT.split(text):
        if not token:
            continue
        core = token.strip(".-+*'\"")
        word = core.upper()
        if not core or word in TECHNICAL_WORDS or (len(core) == 1 and core.isalpha()):
            kept.append(token)
        elif any(ch.isdigit() for ch in core) and not _DATE.match(core) and sum(ch.isalpha() for ch in core) <= 4:
            kept.append(token)  # 5mm, 2.5, H30s, J40, C+ ... (a long alphanumeric run may be an ID: dropped)
        else:
            dropped = True
    return (" ".join(kept) or None), dropped


def looks_identifying(text: str | None) -> bool:
    """True when free text holds anything outside the technical vocabulary (a name, a date, an ID...)."""
    return cleaned_text(text)[1]
