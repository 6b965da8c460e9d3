"""Verified bf16 for the real-CT model: the fast pass's doubtful voxels recomputed in fp32 give fp32's labels."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from realct_support import REFERENCE_DIR, volume_from_nifti

from imaging.blast_ct_weights import load_member_state, member_names
from imaging.deepmedic import CONTEXT, DeepMedic
from imaging.deepmedic_bf16 import FastPass, native_bf16_cpu, plan_boxes, plan_stacks, top_two_margin, verified_labels
from imaging.deepmedic_finetune import blast_ct_start, open_checkpoint_segmenter
from imaging.deepmedic_inference import (
    DeepMedicSegmenter,
    open_blast_ct,
)
from imaging.segmenters import open_segmenter

CPU = torch.device("cpu")
FP32_ROUNDING = 1e-5  # top-two probability margins below this are ties fp32 itself breaks by summation order
needs_bf16 = pytest.mark.skipif(not native_bf16_cpu(), reason="this CPU has no native bf16 (avx512_bf16 or AMX)")


def _net() -> DeepMedic:
    net = DeepMedic().eval()
    net.load_state_dict({k: (v.float() if v.is_floating_point() else v)
                         for k, v in load_member_state(member_names()[0]).items()})
    return net.to(memory_format=torch.channels_last_3d)


def _block(z: int = 15) -> torch.Tensor:
    side = 2 * CONTEXT + 15
    x = torch.rand(1, 1, 2 * CONTEXT + z, side, side, generator=torch.Generator().manual_seed(3)) * 2 - 1
    return x.contiguous(memory_format=torch.channels_last_3d)


def test_top_two_margin() -> None:
    prob = torch.tensor([[0.5, 0.2], [0.3, 0.2], [0.2, 0.6]])
    torch.testing.assert_close(top_two_margin(prob), torch.tensor([0.2, 0.4]))


def test_boxes_cover_every_doubtful_voxel_and_join_a_cluster() -> None:
    doubt = np.zeros((3, 60, 45), bool)
    doubt[0, 10:30, 5:25] = True  # one dense cluster: one box
    doubt[1, 2, 3] = doubt[1, 50, 40] = True  # two isolated voxels far apart: one cell each
    boxes = plan_boxes(doubt)
    covered = np.zeros_like(doubt)
    for p, ys, xs in boxes:
        covered[p, ys, xs] = True
    assert not (doubt & ~covered).any()
    assert sum(1 for b in boxes if b[0] == 0) == 1 and sum(1 for b in boxes if b[0] == 1) == 2
    assert all(ys.stop <= 60 and xs.stop <= 45 for _, ys, xs in boxes)


def test_stacks_join_a_cluster_on_neighbouring_read_planes_only() -> None:
    """A cluster at one place on four read planes 5 voxels apart is one stack (their cones overlap); the same
    cluster on planes 30 voxels apart, and an isolated voxel, stay apart; every doubtful voxel is covered."""
    doubt = np.zeros((6, 60, 60), bool)
    doubt[:4, 20:30, 20:30] = True
    doubt[4:, 20:30, 20:30] = True
    doubt[1, 50, 50] = True
    stacks = plan_stacks(doubt, [2, 7, 12, 17, 47, 77])
    covered = np.zeros_like(doubt)
    for ps, ys, xs in stacks:
        covered[list(ps), ys, xs] = True
    assert not (doubt & ~covered).any()
    assert sorted(ps for ps, _, _ in stacks) == [(0, 1, 2, 3), (1,), (4,), (5,)]


@pytest.mark.parametrize("planes", [None, [0, 7, 14]])
def test_a_margin_that_doubts_every_voxel_recomputes_all_of_them_in_fp32(one_thread, planes) -> None:  # noqa: ANN001
    """With the margin at 1 every voxel is in doubt: the boxes' fp32 labels are the whole block's fp32 labels,
    even from a fast pass whose own labels are wrong (here: its full-resolution pathway's weights scrambled). The
    planes' boxes form one stack: all planes computed densely, or planes 7 apart ending in one slab each."""
    net = _net()
    fast = FastPass.of(net, torch.float32)
    with torch.no_grad():
        for p in fast.full_path.parameters():
            p.copy_(p.flatten()[torch.randperm(p.numel(), generator=torch.Generator().manual_seed(0))].view_as(p))
    inp = _block()
    with torch.inference_mode():
        exact = net(inp, planes)[0].argmax(dim=0)
        fast_alone, _ = verified_labels([fast], inp, planes, delta=-1.0)
        labels, counts = verified_labels([fast], inp, planes, delta=1.0)
    assert not torch.equal(fast_alone, exact)  # the scrambled fast pass alone gets labels wrong
    assert counts["recomputed_voxels"] == counts["voxels"] == exact.numel()
    assert torch.equal(labels, exact)


def test_precision_is_checked_and_reaches_the_segmenter() -> None:
    with pytest.raises(ValueError, match="precision must be one of auto, fp32, not 'fp16'"):
        DeepMedicSegmenter(CPU, member_names()[:1], precision="fp16")
    forced = open_segmenter("blast-ct", CPU, precision="fp32")
    assert forced.cpu_precision == "fp32" and forced.fast_passes() == []
    auto = open_segmenter("blast-ct", CPU)
    assert auto.cpu_precision == ("bf16-verified" if native_bf16_cpu() else "fp32")


def test_auto_runs_fp32_for_networks_whose_bound_was_not_measured(tmp_path) -> None:  # noqa: ANN001
    """Another ensemble member, and a checkpoint adapted from member_01 (fully connected layers changed), run fp32
    under precision "auto": the bf16 bound was measured on member_01's weights only."""
    other = DeepMedicSegmenter(CPU, member_names()[1:2])
    assert not other.bound_measured and other.cpu_precision == "fp32" and other.fast_passes() == []
    both = DeepMedicSegmenter(CPU, member_names()[:2])
    assert not both.bound_measured and both.cpu_precision == "fp32"
    adapted = blast_ct_start()
    key = next(k for k in adapted.state if k.startswith("fully_connected") and k.endswith("conv.weight"))
    adapted.state = {**adapted.state, key: adapted.state[key].float() * 1.01}
    adapted.save(tmp_path / "adapted.pt")
    seg = open_checkpoint_segmenter(tmp_path / "adapted.pt", CPU)
    assert not seg.bound_measured and seg.cpu_precision == "fp32" and seg.fast_passes() == []


@needs_bf16
def test_auto_runs_verified_bf16_for_the_measured_network() -> None:
    seg = DeepMedicSegmenter(CPU, member_names()[:1])
    assert seg.bound_measured and seg.cpu_precision == "bf16-verified" and len(seg.fast_passes()) == 1


def _phantom_blocks(seg: DeepMedicSegmenter) -> list[tuple[torch.Tensor, list[int] | None]]:
    """Inputs and planes of the tiles the segmenter computes on the phantom crop of tests/data/blast_ct_reference."""
    return list(seg.block_inputs(volume_from_nifti(REFERENCE_DIR / "phantom_input.nii.gz")))


@needs_bf16
def test_verified_bf16_gives_fp32_labels_on_the_phantom(one_thread) -> None:  # noqa: ANN001
    """The phantom crop's tiles: the verified labels are fp32's on every voxel fp32 itself decides (top-two margin
    above float32 rounding; a tie within rounding goes either way with the summation order, as between tile
    sizes), and the fast pass's own labels would not be."""
    seg = open_blast_ct(CPU, 1)
    assert seg.cpu_precision == "bf16-verified"
    voxels = decided = mismatched = unchecked_wrong = recomputed = 0
    for inp, zs in _phantom_blocks(seg):
        with torch.inference_mode():
            exact = torch.softmax(seg._nets[0](inp, zs)[0], dim=0)
            labels, counts = verified_labels(seg.fast_passes(), inp, zs)
            unchecked = seg.fast_passes()[0].probabilities(inp, zs)[0].argmax(dim=0)  # the fast pass alone
        sure = top_two_margin(exact) > FP32_ROUNDING
        voxels += sure.numel()
        decided += int(sure.sum())
        mismatched += int((labels != exact.argmax(dim=0))[sure].sum())
        unchecked_wrong += int((unchecked != exact.argmax(dim=0))[sure].sum())
        recomputed += counts["recomputed_voxels"]
    assert decided >= voxels - 10  # ties within rounding are rare
    assert mismatched == 0
    assert unchecked_wrong > 0 and recomputed > 0


def test_segment_records_its_precision(one_thread) -> None:  # noqa: ANN001
    """The timings say which precision ran and, for verified bf16, the fraction recomputed in fp32."""
    seg = open_blast_ct(CPU, 1)
    _, timings = seg.segment(volume_from_nifti(REFERENCE_DIR / "phantom_input.nii.gz"))
    assert timings["precision"] == seg.cpu_precision == ("bf16-verified" if native_bf16_cpu() else "fp32")
    if native_bf16_cpu():
        assert 0 < timings["recomputed_fraction"] < 0.1 and timings["recomputed_boxes"] > 0
    else:
        assert "recomputed_fraction" not in timings
    assert open_blast_ct(CPU, 1, precision="fp32").cpu_precision == "fp32"
