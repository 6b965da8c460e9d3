"""BLAST-CT's network adapted to CT-ICH must raise the Dice of a whole patient it never saw.

Patient 77's epidural hematoma (2 slices) is held out; patient 78's epidural hematoma (10 slices; one BLAST-CT
misses: little denser than brain) is the annotated training scan and five slices of patient 81's subdural
hematoma the validation split. Both hematomas are extra-axial: the held-out patient's kind of hemorrhage is one
the annotations hold. `imaging adapt --from blast-ct` defaults, one thread.
"""

from __future__ import annotations

from pathlib import Path

import pytest
import torch

from ctstudy import ct_ich
from imaging.adapt import AdaptOptions, Scan
from imaging.deepmedic_finetune import DeepMedicTuning, adapt_deepmedic, blast_ct_start
from imaging.train import patient_split
from imaging.volume import load_series

MARGIN = 0.05
SEED = 3  # the seed with which patient_split makes patient 81 the validation split


def _scan(tmp: Path, patient: int, numbers: range | None = None) -> Scan:
    slices = ct_ich.patient_slices(patient, numbers)
    volume = load_series(ct_ich.write_series(slices, tmp / f"p{patient}"), allow_irregular=True)
    return Scan(f"ctich-{patient}", f"CTICH-{patient}", "CTICH", volume, ct_ich.class_labels(slices))


@pytest.mark.slow
def test_adapting_blast_ct_raises_dice_on_a_held_out_patient(tmp_path: Path, one_thread) -> None:  # noqa: ANN001
    scans = [_scan(tmp_path, 77), _scan(tmp_path, 78), _scan(tmp_path, 81, range(18, 23))]
    assert patient_split(["CTICH-78", "CTICH-81"], 0.5, SEED) == ({"CTICH-78"}, {"CTICH-81"})
    result = adapt_deepmedic(blast_ct_start(), scans, AdaptOptions(seed=SEED, held_out=frozenset({"CTICH-77"})),
                             DeepMedicTuning(seed=SEED, val_fraction=0.5), torch.device("cpu"))
    assert result.card["data"]["held_out_series"] == {"CTICH": 1}
    assert result.score_after > result.score_before + MARGIN, (result.score_before, result.score_after)
    assert result.improved
