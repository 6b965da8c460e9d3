"""Every segmentation model behind one interface, chosen by name or path.

`open_segmenter(spec, device)` returns a `LesionSegmenter`: something with a `name`, a `version`
(content hash of its weights: what `SegmentationRun.model_version` records and what makes
`segment` idempotent per model), the ensemble `members` it averages, its `device`, and
`segment(volume) -> (labels, timings)` where labels are (z, y, x) uint8 in the project's label
map (`vocabulary.labels`) on the volume's own grid.

Specs:
- `phantom`: the 2.5D U-Net trained on synthetic phantoms that ships in `imaging/default_model/`
  (demo and tests only: it has never seen a patient);
- a path to a ctstudy U-Net checkpoint (trained on a study's annotations, or distilled);
- a path to a DeepMedic checkpoint (`model.pt` beside a DeepMedic `config.json`: BLAST-CT's network adapted
  to a study by `imaging adapt --from blast-ct`), run by the same fast inference as `blast-ct`;
- `blast-ct`: the real-CT DeepMedic networks of BLAST-CT that ship in `imaging/models/blast_ct/`
  (trained on real TBI CT; the default for real studies), run by `imaging.deepmedic_inference`;
  `ensemble` networks averaged in probability (default: `default_ensemble(device)`).
"""

from __future__ import annotations

from pathlib import Path
from typing import Protocol, runtime_checkable

import numpy as np
import torch

from imaging.volume import Volume

PHANTOM = "phantom"
BLAST_CT = "blast-ct"


@runtime_checkable
class LesionSegmenter(Protocol):
    name: str
    version: str
    members: list[str]
    device: torch.device

    def segment(self, volume: Volume) -> tuple[np.ndarray, dict[str, float]]: ...


def open_segmenter(spec: str | Path | None, device: torch.device, *, batch_size: int = 16,
                   ensemble: int | None = None, precision: str = "auto") -> LesionSegmenter:
    """The segmenter named by `spec` (see the module doc), prepared for `device`.

    `precision` (DeepMedic models: blast-ct and its adapted checkpoints): "auto" runs verified bf16 on a CPU
    with native bf16 (labels equal to fp32's, `imaging.deepmedic_bf16`), "fp32" fp32 throughout. The U-Net
    runs fp32 on CPU either way.
    """
    from imaging.inference import UNetSegmenter
    from imaging.model import DEFAULT_MODEL_PATH, load_model

    if spec is None or str(spec) == PHANTOM:
        if ensemble not in (None, 1):
            raise ValueError(f"--ensemble {ensemble}: the phantom model is a single network")
        return UNetSegmenter(load_model(DEFAULT_MODEL_PATH), device, batch_size)
    if str(spec) == BLAST_CT:
        from imaging.deepmedic_inference import open_blast_ct

        return open_blast_ct(device, ensemble, precision=precision)
    if ensemble not in (None, 1):
        raise ValueError(f"--ensemble {ensemble} needs a model with several networks (blast-ct); {spec} is one")
    path = Path(spec)
    if not path.is_file():
        raise FileNotFoundError(f"--model {spec}: neither {PHANTOM!r}, {BLAST_CT!r} nor a checkpoint file")
    from imaging.deepmedic_finetune import is_deepmedic_checkpoint, open_checkpoint_segmenter

    if is_deepmedic_checkpoint(path):
        return open_checkpoint_segmenter(path, device, precision=precision)
    return UNetSegmenter(load_model(Path(spec)), device, batch_size)
