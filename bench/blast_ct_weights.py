"""Convert BLAST-CT's published fp32 networks to the fp16 files shipped, and measure label agreement.

    .venv/bin/python bench/blast_ct_weights.py --originals DIR [--members 1-5] [--write]

DIR holds BLAST-CT's `model_N.pt` (biomedia-mira/blast-ct at commit 361e8c79...,
blast_ct/data/saved_models; Apache-2.0). `--write` (re)writes `imaging/models/blast_ct/member_NN.pt`
(fp16 state dicts: half the bytes; the network still computes in fp32, or bf16 on CUDA).
Always prints, per member, the share of voxels whose label is the same with the fp16 weights
as with the originals, on the CT-ICH stack of patient 81 (must be >= 99.9 %) and the file sizes.
"""

from __future__ import annotations

import argparse
import sys
import tempfile
from pathlib import Path

import numpy as np
import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from ctstudy import ct_ich  # noqa: E402
from imaging.blast_ct_weights import BLAST_CT_DIR  # noqa: E402
from imaging.deepmedic_inference import DeepMedicSegmenter  # noqa: E402
from imaging.volume import load_series  # noqa: E402


def fp16_state(original: Path) -> dict[str, torch.Tensor]:
    state = torch.load(original, map_location="cpu", weights_only=True)
    return {k: (v.half() if v.dtype == torch.float32 else v) for k, v in state.items()}


def labels_with(state: dict[str, torch.Tensor], volume, folder: Path) -> np.ndarray:  # noqa: ANN001
    torch.save(state, folder / "member_99.pt")
    seg = DeepMedicSegmenter(torch.device("cpu"), ["member_99"], folder=folder)
    labels, _ = seg.segment(volume)
    return labels


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--originals", type=Path, required=True)
    ap.add_argument("--members", default="1-5", help="e.g. 1-5 or 1,3")
    ap.add_argument("--write", action="store_true")
    a = ap.parse_args()
    if "-" in a.members:
        lo, hi = (int(v) for v in a.members.split("-"))
        numbers = list(range(lo, hi + 1))
    else:
        numbers = [int(v) for v in a.members.split(",")]
    with tempfile.TemporaryDirectory(prefix="blast-ct-weights-") as tmp_name:
        tmp = Path(tmp_name)
        (tmp / "config.json").write_bytes((BLAST_CT_DIR / "config.json").read_bytes())
        files = ct_ich.write_series(ct_ich.patient_slices(81, range(13, 28)), tmp / "p81")
        volume = load_series(files)
        for n in numbers:
            original = a.originals / f"model_{n}.pt"
            half = fp16_state(original)
            if a.write:
                torch.save(half, BLAST_CT_DIR / f"member_{n:02d}.pt")
            full = {k: (v.float() if v.is_floating_point() else v) for k, v in
                    torch.load(original, map_location="cpu", weights_only=True).items()}
            ref = labels_with(full, volume, tmp)
            ours = labels_with(half, volume, tmp)
            agree = 100 * float((ref == ours).mean())
            lesion = (ref > 0) | (ours > 0)
            lesion_agree = 100 * float((ref[lesion] == ours[lesion]).mean()) if lesion.any() else 100.0
            torch.save(half, tmp / "size.pt")
            print(f"model_{n}: fp16 vs fp32 labels agree on {agree:.4f} % of voxels ({lesion_agree:.2f} % of those "
                  f"either labels as lesion); file {original.stat().st_size / 1e6:.2f} MB -> "
                  f"{(tmp / 'size.pt').stat().st_size / 1e6:.2f} MB")


if __name__ == "__main__":
    main()
