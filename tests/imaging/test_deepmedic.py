"""The real-CT model: BLAST-CT's network, our tiled inference, its equality with the reference tool, real data.

The reference tool (`blast-ct` from PyPI) takes minutes and gigabytes per scan, so its output
masks on the two test inputs are cached in tests/data/blast_ct_reference/ (made by
`bench/blast_ct_reference.py` with the shipped member_01 weights; `make_reference_fixtures`
below re-makes them) and the tests compare our labels against them. The phantom input is float32:
the tool resamples an integer image into integers, which would change its input, not its network.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch
from realct_support import (
    REFERENCE_DIR,
    ct_ich_stack,
    dice,
    labels_from_nifti,
    volume_from_nifti,
)

from imaging.blast_ct_weights import load_member_state, member_names
from imaging.deepmedic import CONTEXT, DeepMedic
from imaging.deepmedic_finetune import blast_ct_start, open_checkpoint_segmenter
from imaging.deepmedic_inference import DeepMedicSegmenter, open_blast_ct, plan_tiles, tile_for_planes, windowed
from imaging.segmenters import open_segmenter

CPU = torch.device("cpu")
HEMORRHAGE = (1, 2, 4)


def _net() -> DeepMedic:
    net = DeepMedic().eval()
    net.load_state_dict({k: (v.float() if v.is_floating_point() else v)
                         for k, v in load_member_state(member_names()[0]).items()})
    return net


def test_network_equals_the_blast_ct_package_network() -> None:
    """Same parameters, same input: our DeepMedic gives the logits of `blast_ct.models.deepmedic.DeepMedic`."""
    from blast_ct.models.deepmedic import DeepMedic as Reference

    ours = _net()
    ref = Reference(1, 5).eval()
    ref.load_state_dict(ours.state_dict())
    side = 2 * CONTEXT + 15
    x = torch.randn(1, 1, side, side, side, generator=torch.Generator().manual_seed(0))
    with torch.inference_mode():
        a, _ = ref(x)
        b = ours(x)
    assert a.shape == b.shape == (1, 5, 15, 15, 15)
    # oneDNN sums each convolution in its own order (ours forces it for every layer on CPU): float32
    # rounding, about 1e-5 on these logits; the labels on real and phantom scans stay equal (below).
    torch.testing.assert_close(b, a, rtol=1e-4, atol=1e-4)


def test_chosen_planes_equal_the_whole_block() -> None:
    net = _net()
    side = 2 * CONTEXT + 15
    x = torch.randn(1, 1, side + 15, side, side, generator=torch.Generator().manual_seed(1))
    with torch.inference_mode():
        whole = net(x)
        some = net(x, [0, 7, 29])
    torch.testing.assert_close(some, whole[:, :, [0, 7, 29]], rtol=1e-5, atol=1e-5)


def _small_head(shape=(30, 60, 60)) -> tuple[np.ndarray, np.ndarray]:
    """A 1 mm windowed head: skull ring, brain, one dense blob; and its head mask."""
    z, y, x = np.mgrid[: shape[0], : shape[1], : shape[2]].astype(float)
    r = np.hypot((y - shape[1] / 2) / 26, (x - shape[2] / 2) / 24)
    hu = np.full(shape, -1000.0)
    hu[r < 1.0] = 900.0
    hu[r < 0.85] = 32.0
    hu[np.hypot(np.hypot(y - 25, x - 34), (z - 15) * 1.5) < 6] = 70.0
    return windowed(hu, -15.0, 100.0), r < 1.05


def test_tiles_join_without_seams() -> None:
    """Small and large tiles give the same labels: tile overlap is exactly the receptive field."""
    x, mask = _small_head()
    small = DeepMedicSegmenter(CPU, member_names()[:1], tile=15).labels_1mm(x, mask)[0]
    large = DeepMedicSegmenter(CPU, member_names()[:1], tile=60).labels_1mm(x, mask)[0]
    assert np.array_equal(small, large)


def test_tiles_on_concurrent_threads_give_the_same_labels() -> None:
    """Tiles run on two threads (one intra-op thread each) write the labels one thread writes; torch's
    thread count is restored afterwards."""
    x, mask = _small_head()
    planes = np.arange(2, 30, 5)
    one = DeepMedicSegmenter(CPU, member_names()[:1], tile=15, workers=1)
    two = DeepMedicSegmenter(CPU, member_names()[:1], tile=15, workers=2)
    threads = torch.get_num_threads()
    labels, info = two.labels_1mm(x, mask, planes)
    assert info["tile_workers"] == 2 and info["tiles"] > 2
    assert torch.get_num_threads() == threads
    assert np.array_equal(labels, one.labels_1mm(x, mask, planes)[0]) and labels[planes].any()


def test_thick_slices_widen_the_tile_and_keep_the_labels() -> None:
    """With a fifth of the planes read (5 mm slices) the tile grows to 90 and the labels of those planes stay."""
    assert tile_for_planes(60, 1.0) == 60  # every plane read: the dense tile, memory as measured
    assert tile_for_planes(60, 0.2) == 90
    assert tile_for_planes(60, 0.01) == 90  # capped: the first layers still compute every plane
    x, mask = _small_head()
    planes = np.arange(2, 30, 5)
    small = DeepMedicSegmenter(CPU, member_names()[:1], tile=15).labels_1mm(x, mask, planes)[0]
    wide = DeepMedicSegmenter(CPU, member_names()[:1], tile=60).labels_1mm(x, mask, planes)[0]
    assert np.array_equal(small[planes], wide[planes]) and small[planes].any()


def test_tiles_cover_the_head_and_skip_air() -> None:
    mask = np.zeros((60, 120, 120), bool)
    mask[10:50, 20:70, 30:100] = True
    tiles = plan_tiles(mask, 45)
    covered = np.zeros_like(mask)
    for t in tiles:
        covered[t] = True
        assert all((s.stop - s.start) % 15 == 0 and s.start % 15 == 0 for s in t)
    assert covered[mask].all()
    assert covered.sum() < 0.6 * mask.size  # air outside the head's blocks is never computed


def test_a_checkpoint_rewritten_at_its_path_is_versioned_by_its_new_bytes(tmp_path: Path) -> None:
    """The segmenter's version and members are the hashes of the files it loaded, even where the same path held
    another network earlier in the process."""
    start = blast_ct_start()
    first = start.save(tmp_path / "model.pt")
    assert open_checkpoint_segmenter(tmp_path / "model.pt", CPU).version == first
    key = next(k for k in start.state if k.startswith("fully_connected") and k.endswith("conv.weight"))
    start.state = {**start.state, key: start.state[key].float() * 1.01}
    second = start.save(tmp_path / "model.pt")
    seg = open_checkpoint_segmenter(tmp_path / "model.pt", CPU)
    assert second != first and seg.version == second and seg.members == [f"model:{second}"]


def test_ensemble_choice_and_errors() -> None:
    seg = open_blast_ct(CPU, 2)
    assert seg.name == "blast-ct" and len(seg.members) == 2
    assert seg.version != open_blast_ct(CPU, 1).version  # an ensemble is versioned by its members
    assert all(":" in m for m in seg.members)
    with pytest.raises(ValueError, match="--ensemble must be 1-"):
        open_blast_ct(CPU, len(member_names()) + 1)
    with pytest.raises(ValueError, match="single network"):
        open_segmenter("phantom", CPU, ensemble=3)
    with pytest.raises(FileNotFoundError, match="neither 'phantom', 'blast-ct'"):
        open_segmenter("no-such-model.pt", CPU)


# ------------------------------------------------------------------ real data and the reference tool


@pytest.fixture(scope="module")
def patient_81(tmp_path_factory: pytest.TempPathFactory):  # noqa: ANN201
    return ct_ich_stack(tmp_path_factory.mktemp("ctich"), 81, range(13, 28))


@pytest.fixture(scope="module")
def blast_ct_81(patient_81):  # noqa: ANN001, ANN201
    volume, _ = patient_81
    return open_blast_ct(CPU, 1).segment(volume)[0]


def _per_class_dice(ours: np.ndarray, ref: np.ndarray, min_voxels: int = 50) -> dict[int, float]:
    """Dice per class present in the reference with at least `min_voxels` (tinier ones are a few boundary voxels)."""
    return {c: dice(ours == c, ref == c) for c in range(1, 5) if int((ref == c).sum()) >= min_voxels}


@pytest.mark.slow
def test_real_ct_model_finds_the_subdural_hematoma_of_patient_81(patient_81, blast_ct_81) -> None:  # noqa: ANN001
    _volume, truth = patient_81
    real = dice(np.isin(blast_ct_81, HEMORRHAGE), truth)
    assert real >= 0.40
    # No claim here that the phantom U-Net scores far lower on this stack: the two-class phantom model
    # scored 0.00, but the four-class one, taught the phantom's subdural-like collection (EAH), scores
    # about 0.56 on this subdural hematoma (README, measured figures). It still only runs the demo.


@pytest.mark.slow
def test_labels_equal_the_reference_tool_on_patient_81(blast_ct_81) -> None:  # noqa: ANN001
    ref = labels_from_nifti(REFERENCE_DIR / "p81_blast_ct_member_01.nii.gz")
    per_class = _per_class_dice(blast_ct_81, ref)
    assert per_class, "the reference found no lesion: the fixture is wrong"
    assert all(d >= 0.99 for d in per_class.values()), per_class


def test_labels_equal_the_reference_tool_on_a_phantom() -> None:
    """A 30 mL frontal hematoma phantom, cropped around the lesion (15 slices of 98 x 98) so that it runs in CI."""
    volume = volume_from_nifti(REFERENCE_DIR / "phantom_input.nii.gz")
    ours, _ = open_blast_ct(CPU, 1).segment(volume)
    ref = labels_from_nifti(REFERENCE_DIR / "phantom_blast_ct_member_01.nii.gz")
    per_class = _per_class_dice(ours, ref)
    assert per_class, "the reference found no lesion: the fixture is wrong"
    assert all(d >= 0.99 for d in per_class.values()), per_class


def make_reference_fixtures(tmp: Path) -> None:  # pragma: no cover - run by hand: minutes per input
    """Re-make the cached reference outputs with the reference tool (see bench/blast_ct_reference.py)."""
    import sys

    sys.path.insert(0, str(Path(__file__).resolve().parents[2] / "bench"))
    from blast_ct_reference import run_reference
    from realct_support import write_volume_nifti

    volume, _ = ct_ich_stack(tmp, 81, range(13, 28))
    run_reference(write_volume_nifti(volume, tmp / "p81.nii.gz"), REFERENCE_DIR / "p81_blast_ct_member_01.nii.gz")
    run_reference(REFERENCE_DIR / "phantom_input.nii.gz", REFERENCE_DIR / "phantom_blast_ct_member_01.nii.gz")
