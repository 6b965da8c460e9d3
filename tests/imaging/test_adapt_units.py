"""The pieces of adaptation that decide what it learns and how it is judged: the masked loss, the hold-out and
the verdict."""

from __future__ import annotations

import pandas as pd
import pytest
import torch
from monai.losses import DiceCELoss

from imaging.adapt import holdout_patients, judged
from imaging.train import masked_dice_ce
from vocabulary.labels import UNANNOTATED


def _batch(seed: int = 0) -> tuple[torch.Tensor, torch.Tensor]:
    gen = torch.Generator().manual_seed(seed)
    logits = torch.randn(3, 5, 16, 16, generator=gen)
    target = torch.randint(0, 5, (3, 1, 16, 16), generator=gen)
    return logits, target


def test_masked_loss_is_monais_dice_ce_when_every_voxel_is_annotated() -> None:
    logits, target = _batch()
    expected = DiceCELoss(to_onehot_y=True, softmax=True, batch=True)(logits, target)
    assert masked_dice_ce(logits, target).item() == pytest.approx(expected.item(), rel=1e-5)


def test_masked_loss_ignores_what_nobody_annotated() -> None:
    logits, target = _batch(1)
    partial = target.clone()
    partial[:, :, :8] = UNANNOTATED  # the top half of every slice left out by the annotator
    changed = logits.clone()
    changed[:, :, :8] = torch.randn(changed[:, :, :8].shape)  # any prediction there
    assert masked_dice_ce(changed, partial).item() == pytest.approx(masked_dice_ce(logits, partial).item())
    assert masked_dice_ce(logits, partial).item() != pytest.approx(masked_dice_ce(logits, target).item())
    nothing = torch.full_like(target, UNANNOTATED)
    assert masked_dice_ce(logits.requires_grad_(), nothing).item() == 0.0


def test_holdout_takes_patients_per_center_and_needs_two_somewhere() -> None:
    pairs = [("A", f"a{i}") for i in range(10)] + [("B", "b1"), ("B", "b2"), ("C", "c1")]
    held = holdout_patients(pairs + pairs[:3], 0.3, seed=4)  # repeated scans of a patient count once
    assert len({p for p in held if p.startswith("a")}) == 3
    assert len({p for p in held if p.startswith("b")}) == 1 and "c1" not in held
    assert holdout_patients(pairs, 0.3, seed=4) == held  # seeded
    with pytest.raises(ValueError, match="at least 2 patients"):
        holdout_patients([("A", "a1"), ("B", "b1")], 0.3, seed=1)


def _summary(dice: dict[str, tuple[float, float]]) -> pd.DataFrame:
    return pd.DataFrame([{"comparison": model, "class": key, "dice_pooled": pair[i]}
                         for key, pair in dice.items() for i, model in enumerate(("before", "after"))])


def test_verdict_is_better_only_when_the_score_rises_and_no_class_falls_far() -> None:
    gains = _summary({"iph": (0.50, 0.70), "eah": (0.60, 0.62)})
    assert judged(gains, ["iph", "eah"], 0.0, 0.05).improved
    assert not judged(gains, ["iph", "eah"], 0.2, 0.05).improved  # the rise (0.11) is not above min_gain
    # The mean rises (0.55 -> 0.60) because IPH gains, while the extra-axial blood is lost: not better.
    hides_a_loss = _summary({"iph": (0.40, 0.80), "eah": (0.70, 0.40)})
    verdict = judged(hides_a_loss, ["iph", "eah"], 0.0, 0.05)
    assert verdict.after > verdict.before and not verdict.improved
    assert "eah 0.700 -> 0.400" in verdict.text
    assert judged(hides_a_loss, ["iph", "eah"], 0.0, 0.5).improved  # within a looser tolerance
    assert not judged(gains, [], 0.0, 0.05).improved  # nothing held out to score
