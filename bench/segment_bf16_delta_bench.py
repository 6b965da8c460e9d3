"""The error bound behind verified bf16 (`imaging.deepmedic_bf16.DELTA`), measured on real and phantom CT.

    .venv/bin/python bench/segment_bf16_delta_bench.py [--inputs ct-ich,ge-head,phantom,p81]

For each input, every tile `imaging.deepmedic_inference` plans (with the planes it reads) is run
through the bf16 fast pass and through the fp32 network (one member, model_1, one thread); over
every output voxel the bench takes the largest change, fast pass against fp32, of the difference
of any two class probabilities (max over classes of the change minus its min). That is the
quantity whose bound makes a margin above `DELTA` safe: if the top-two margin of the fast pass
exceeds the largest such change, fp32 has the same top class. The bench prints it per input and
over all of them, the `DELTA` it implies at `imaging.deepmedic_bf16.SAFETY`, the fraction of voxels
whose margin is at most `DELTA` (recomputed in fp32), and the labels the fast pass alone gets wrong.

Inputs: `ct-ich`: the CT-ICH patients other than 81 (each one series), `ge-head`: the GE head
under /work/shared/realct/ge-head-ct (or $CTSTUDY_REALCT/ge-head-ct), `phantom`: the phantom crop of
tests/data/blast_ct_reference, `p81`: patient 81 (the speed bench's input; reported, and counted in the
bound only when listed). Needs a CPU with native bf16 (avx512_bf16 or AMX).
"""

from __future__ import annotations

import argparse
import os
import sys
import tempfile
from pathlib import Path

import torch

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "tests" / "imaging"))

from imaging.deepmedic_bf16 import (  # noqa: E402
    DELTA,
    SAFETY,
    FastPass,
    native_bf16_cpu,
    top_two_margin,
)
from imaging.deepmedic_inference import (  # noqa: E402
    DeepMedicSegmenter,
    open_blast_ct,
)
from imaging.volume import Volume, load_series  # noqa: E402

REALCT = Path(os.environ.get("CTSTUDY_REALCT", "/work/shared/realct"))


def inputs(names: list[str], tmp: Path) -> list[tuple[str, Volume]]:
    from realct_support import REFERENCE_DIR, volume_from_nifti

    from ctstudy import ct_ich

    out = []
    for name in names:
        if name == "ct-ich":
            for p in sorted({s.patient for s in ct_ich.slice_index()} - {81}):
                files = ct_ich.write_series(ct_ich.patient_slices(p), tmp / f"ctich-{p}")
                out.append((f"CT-ICH {p}", load_series(files, allow_irregular=True)))
        elif name == "p81":
            files = ct_ich.write_series(ct_ich.patient_slices(81, range(13, 28)), tmp / "p81")
            out.append(("CT-ICH 81 (13-27)", load_series(files)))
        elif name == "ge-head":
            out.append(("GE head", load_series(sorted((REALCT / "ge-head-ct").glob("*.dcm")), allow_irregular=True)))
        elif name == "phantom":
            out.append(("phantom crop", volume_from_nifti(REFERENCE_DIR / "phantom_input.nii.gz")))
        else:
            raise SystemExit(f"--inputs: unknown input {name!r} (ct-ich, ge-head, phantom, p81)")
    return out


def measure(seg: DeepMedicSegmenter, fast: FastPass, volume: Volume) -> dict:
    """Largest pairwise probability change, voxels in doubt at DELTA, wrong fast-pass labels, over the tiles."""
    worst, doubt, wrong, voxels, tiles = 0.0, 0, 0, 0, 0
    for inp, zs in seg.block_inputs(volume):
        tiles += 1
        with torch.inference_mode():
            exact = torch.softmax(seg._nets[0](inp, zs)[0].float(), dim=0)
            prob, _ = fast.probabilities(inp, zs)
        change = prob - exact
        worst = max(worst, float((change.max(dim=0).values - change.min(dim=0).values).max()))
        doubt += int((top_two_margin(prob) <= DELTA).sum())
        wrong += int((prob.argmax(dim=0) != exact.argmax(dim=0)).sum())
        voxels += prob[0].numel()
    return {"worst": worst, "doubt": doubt, "wrong": wrong, "voxels": voxels, "tiles": tiles}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--inputs", default="ct-ich,ge-head,phantom", help="comma-separated: ct-ich, ge-head, phantom, p81")
    a = ap.parse_args()
    if not native_bf16_cpu():
        raise SystemExit("this CPU has no native bf16 (avx512_bf16 or AMX): the fast pass is not used here")
    torch.set_num_threads(1)
    seg = open_blast_ct(torch.device("cpu"), 1, precision="fp32")
    fast = FastPass.of(seg._nets[0])
    print(f"load average {os.getloadavg()[0]:.1f}; DELTA in use {DELTA:.4f} (SAFETY {SAFETY:g}); network measured: "
          f"{seg.members[0].replace(':', ', sha256 ')} (listed in MEASURED_NETWORKS: {seg.bound_measured})")
    print(f"{'input':>20} {'tiles':>6} {'voxels':>10} {'largest change':>15} {'in doubt at DELTA':>18} "
          f"{'fast-pass labels wrong':>23}")
    worst = 0.0
    with tempfile.TemporaryDirectory(prefix="bf16-delta-") as tmp:
        for name, volume in inputs(a.inputs.split(","), Path(tmp)):
            r = measure(seg, fast, volume)
            worst = max(worst, r["worst"])
            print(f"{name:>20} {r['tiles']:6d} {r['voxels']:10,d} {r['worst']:15.4f} "
                  f"{100 * r['doubt'] / max(1, r['voxels']):17.2f}% {r['wrong']:23,d}")
    print(f"largest change over these inputs {worst:.4f}: DELTA = {SAFETY:g} x that = {SAFETY * worst:.4f} "
          f"(in use: {DELTA:.4f}); load average now {os.getloadavg()[0]:.1f}")


if __name__ == "__main__":
    main()
