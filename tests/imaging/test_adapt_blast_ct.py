"""BLAST-CT's DeepMedic network fine-tuned on real CT (the CT-ICH subdural hematoma of patient 81).

Patient 81's slices are cut into three blocks of contiguous slices, each a scan of its own "patient" key: the
first is the training scan, the second the validation split, the last is held out. This holds out slices, not
patients: across the five CT-ICH patients, each with another kind of hemorrhage, fine-tuning BLAST-CT gives
no reliable held-out gain (docs/benchmarks.md, `bench/adapt_blast_ct_bench.py`).
"""

from __future__ import annotations

import dataclasses
from pathlib import Path

import numpy as np
import pytest
import torch
from realct_support import patient_81_block_scans

from imaging.adapt import AdaptOptions, Scan
from imaging.deepmedic_finetune import (
    ADAPTED_NAME,
    DeepMedicTuning,
    adapt_deepmedic,
    blast_ct_start,
    checkpoint_segmenter,
    classifier_logits,
    is_deepmedic_checkpoint,
    network,
)
from imaging.deepmedic_inference import DeepMedicSegmenter, open_blast_ct
from imaging.model import file_sha256
from imaging.regrid import labels_to_grid, received_planes, regular_grid
from imaging.segmenters import open_segmenter
from imaging.volume import Volume
from vocabulary.labels import UNANNOTATED

HELD_OUT = frozenset({"81-c"})
MARGIN = 0.02
CPU = torch.device("cpu")


@pytest.fixture(scope="module")
def scans(tmp_path_factory: pytest.TempPathFactory) -> list[Scan]:
    return patient_81_block_scans(tmp_path_factory.mktemp("ctich81"))


def one_slice(scan: Scan, k: int) -> Scan:
    v = scan.volume
    return Scan(scan.series_instance_uid, scan.patient_key, scan.center,
                Volume(hu=v.hu[k : k + 1], spacing=v.spacing, affine=v.affine, positions=v.positions[k : k + 1],
                       sop_instance_uids=v.sop_instance_uids[k : k + 1]), scan.labels[k : k + 1])


def _adapt(scans: list[Scan], lr: float):  # noqa: ANN202
    tuning = DeepMedicTuning(seed=1, lr=lr, epochs=4, steps_per_epoch=15, val_fraction=0.5)
    return adapt_deepmedic(blast_ct_start(), scans, AdaptOptions(seed=1, held_out=HELD_OUT), tuning, CPU)


@pytest.fixture(scope="module")
def adapted(scans, one_thread):  # noqa: ANN001, ANN201
    return _adapt(scans, DeepMedicTuning.lr)


@pytest.mark.slow
def test_fine_tuning_blast_ct_raises_dice_on_real_ct_slices_it_never_saw(adapted) -> None:  # noqa: ANN001
    assert adapted.card["data"]["held_out_series"] == {"CTICH": 1}
    assert adapted.card["fine_tuning"]["best_epoch"] > 0
    assert adapted.score_after > adapted.score_before + MARGIN, (adapted.score_before, adapted.score_after)
    assert adapted.improved


@pytest.mark.slow
def test_only_the_fully_connected_layers_change(adapted) -> None:  # noqa: ANN001
    start = blast_ct_start().state
    changed = {k for k, v in adapted.model.state.items() if not torch.equal(v, start[k])}
    assert changed and all(k.startswith("fully_connected.") and k.endswith(".conv.weight") for k in changed)


@pytest.mark.slow
def test_the_adapted_checkpoint_runs_through_the_fast_inference(adapted, scans, tmp_path: Path) -> None:  # noqa: ANN001
    path = tmp_path / "model.pt"
    version = adapted.model.save(path)
    seg = open_segmenter(str(path), CPU)
    assert isinstance(seg, DeepMedicSegmenter) and seg.name == ADAPTED_NAME and seg.version == version
    volume = scans[2].volume
    labels = seg.segment(volume)[0]
    assert np.array_equal(labels, checkpoint_segmenter(adapted.model, CPU)(volume))
    assert not np.array_equal(labels, open_blast_ct(CPU, 1).segment(volume)[0])


def test_a_deepmedic_checkpoint_labels_as_blast_ct_does_with_the_same_weights(scans, tmp_path: Path,  # noqa: ANN001
                                                                               one_thread) -> None:  # noqa: ANN001
    path = tmp_path / "model.pt"
    version = blast_ct_start().save(path)
    assert is_deepmedic_checkpoint(path) and version == file_sha256(path)
    assert not is_deepmedic_checkpoint(tmp_path / "config.json")
    seg = open_segmenter(str(path), CPU)
    assert isinstance(seg, DeepMedicSegmenter) and seg.version == version
    volume = one_slice(scans[2], 2).volume
    assert np.array_equal(seg.segment(volume)[0], open_blast_ct(CPU, 1).segment(volume)[0])


@pytest.mark.slow
def test_with_nothing_learned_the_start_is_kept_and_not_better(scans, one_thread) -> None:  # noqa: ANN001
    result = _adapt(scans, 0.0)
    assert result.card["fine_tuning"]["best_epoch"] == 0
    assert result.score_after == result.score_before and not result.improved


def test_the_trained_classifier_computes_what_the_inference_layers_do() -> None:
    net = network(blast_ct_start(), CPU)
    feats = torch.randn(64, 150, generator=torch.Generator().manual_seed(0))
    with torch.inference_mode():
        expected = net.fully_connected(feats[:, :, None, None, None])[:, :, 0, 0, 0]
    assert torch.allclose(classifier_logits(net, feats), expected, atol=1e-4)


def test_a_tuning_that_trains_no_layer_is_refused() -> None:
    with pytest.raises(ValueError, match="trainable_layers must be 1-3"):
        dataclasses.replace(DeepMedicTuning(), trainable_layers=0)


def test_annotations_go_onto_the_1mm_grid_on_each_slice_plane_only() -> None:
    rng = np.random.default_rng(0)
    labels = rng.integers(0, 5, (3, 24, 20)).astype(np.uint8)
    affine = np.diag([0.5, 0.5, 3.0, 1.0])
    volume = Volume(hu=np.zeros(labels.shape, np.float32), spacing=(3.0, 0.5, 0.5), affine=affine,
                    positions=np.array([[0.0, 0.0, 3.0 * k] for k in range(3)]),
                    sop_instance_uids=("1", "2", "3"))
    grid = regular_grid(volume, (1.0, 1.0, 1.0))
    on_grid = labels_to_grid(labels, grid, volume, UNANNOTATED)
    planes = received_planes(grid, volume)
    assert on_grid.shape == grid.shape and list(planes) == [0, 3, 6]
    assert (np.delete(on_grid, planes, axis=0) == UNANNOTATED).all()
    # Nearest neighbour: each 1 mm voxel takes a received pixel's label (no blend of classes).
    assert np.array_equal(on_grid[planes], labels[:, ::2, ::2][:, : grid.shape[1], : grid.shape[2]])
