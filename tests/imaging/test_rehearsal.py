"""Batches of `train_model`: lesion slices oversampled, rehearsal series drawn at their share and never validated."""

from __future__ import annotations

import dataclasses

import numpy as np
import pytest
import torch

import imaging.train as train
from imaging.preprocess import Preprocessing
from imaging.rehearsal import phantom_examples
from imaging.train import TrainingConfig, TrainingExample, _prepare, _SlicePools, train_model, uid_digest
from vocabulary.labels import ALLOWED_LABELS, LABEL_MAP

PRE = Preprocessing(size=32)
TINY = TrainingConfig(epochs=2, steps_per_epoch=6, batch_size=8, patch=32, seed=3, rehearsal_fraction=0.5,
                      net={"channels": [4, 8], "strides": [2], "num_res_units": 0})


def _head(n_slices: int, lesion_class: int, lesion_slices: set[int], seed: int) -> tuple[np.ndarray, np.ndarray]:
    """A disc of brain (40 HU) in air with a square lesion of `lesion_class` (70 HU) on `lesion_slices`."""
    rng = np.random.default_rng(seed)
    yy, xx = np.mgrid[:48, :48]
    disc = (yy - 24) ** 2 + (xx - 24) ** 2 < 20**2
    hu = np.where(disc, 40.0, -1000.0)[None].repeat(n_slices, 0).astype(np.float32)
    hu += rng.normal(0, 2, hu.shape).astype(np.float32)
    labels = np.zeros(hu.shape, np.uint8)
    for z in lesion_slices:
        labels[z, 18:30, 18:30] = lesion_class
        hu[z, 18:30, 18:30] = 70.0
    return hu, labels


def _examples(lesion_class: int, prefix: str, n: int, lesion_slices: set[int]) -> list[TrainingExample]:
    out = []
    for i in range(n):
        hu, labels = _head(10, lesion_class, lesion_slices, seed=i)
        out.append(TrainingExample(f"{prefix}.{i}", f"{prefix}-{i}", hu, labels))
    return out


def test_lesion_slices_are_drawn_at_their_share_however_rare_they_are() -> None:
    data = [_prepare(e, PRE) for e in _examples(1, "p", 3, lesion_slices={4})]  # 3 lesion slices of 30
    pools = _SlicePools.of(data, range(3), dict(LABEL_MAP))
    assert len(pools.lesion) == 3 and len(pools.every) == 30
    cfg = dataclasses.replace(TINY, lesion_fraction=0.7)
    rng = np.random.default_rng(0)
    draws = [pools.draw(data, cfg, rng) for _ in range(2000)]
    positive = np.mean([data[i].labels[z].any() for (i, z), _ in draws])
    assert 0.70 <= positive <= 0.78  # 0.7 drawn among lesions, plus the 10% of the other draws that hit one
    assert all(focus is not None for (i, z), focus in draws if data[i].labels[z].any())  # crops aim at the lesion


def test_rehearsal_series_fill_their_share_of_each_batch_and_are_never_validated(monkeypatch) -> None:
    torch.set_num_threads(1)
    own = _examples(1, "real", 3, lesion_slices=set(range(10)))  # IPH on every slice
    rehearsal = _examples(4, "phantom", 2, lesion_slices=set(range(10)))  # IVH on every slice
    seen: list[np.ndarray] = []
    augment = train._augment

    def recording(x, y, cfg, gen):  # noqa: ANN001, ANN202
        seen.append(y.numpy().copy())
        return augment(x, y, cfg, gen)

    monkeypatch.setattr(train, "_augment", recording)
    model = train_model(own, TINY, PRE, rehearsal=rehearsal)
    items = np.concatenate(seen)
    assert len(items) == TINY.epochs * TINY.steps_per_epoch * TINY.batch_size
    from_rehearsal = np.mean([(y == 4).any() for y in items])
    assert 0.35 <= from_rehearsal <= 0.65  # rehearsal_fraction 0.5 of 96 slices
    assert not any(((y == 4).any() and (y == 1).any()) for y in items)
    meta = model.metadata
    assert meta["rehearsal"]["series"] == 2 and meta["rehearsal"]["fraction"] == 0.5
    digests = {uid_digest(e.series_instance_uid) for e in rehearsal}
    assert not digests & set(meta["split"]["validation"]) and not digests & set(meta["split"]["train"])

    seen.clear()
    train_model(own, TINY, PRE)  # without rehearsal series no batch holds their class
    assert not any((y == 4).any() for y in np.concatenate(seen))


def test_rehearsal_phantoms_are_labelled_in_the_label_map_and_seeded() -> None:
    a, b = phantom_examples(3, seed=5, matrix=64), phantom_examples(3, seed=5, matrix=64)
    assert len(a) == 3 and len({e.patient_key for e in a}) == 3
    for x, y in zip(a, b, strict=True):
        assert x.hu.shape == x.labels.shape and np.array_equal(x.hu, y.hu) and np.array_equal(x.labels, y.labels)
        assert set(np.unique(x.labels).tolist()) <= set(ALLOWED_LABELS)
    assert any((e.labels > 0).any() for e in a)  # lesions to rehearse
    assert not np.array_equal(phantom_examples(1, seed=6, matrix=64)[0].hu, a[0].hu)
    with pytest.raises(ValueError, match="at least one"):
        phantom_examples(0)
