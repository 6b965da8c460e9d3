"""The phantom U-Net prepared for CPU (traced without torch's trace check, frozen) labels as the eager network does."""

from __future__ import annotations

import numpy as np
import torch

from imaging.inference import UNetSegmenter
from imaging.model import DEFAULT_MODEL_PATH, load_model
from imaging.volume import Volume
from synthetic.phantom import single_hematoma_series


def test_traced_frozen_unet_gives_the_eager_networks_labels() -> None:
    r = single_hematoma_series(20, "left", "frontal", slice_thickness=5.0, matrix=256, seed=3)
    z = r.hu.shape[0]
    volume = Volume(hu=r.hu, spacing=r.spacing, affine=r.affine,
                    positions=np.array([r.affine @ [0, 0, k, 1] for k in range(z)])[:, :3],
                    sop_instance_uids=tuple(str(k) for k in range(z)))
    model = load_model(DEFAULT_MODEL_PATH)
    prepared = UNetSegmenter(model, torch.device("cpu"))
    fast, _ = prepared.segment(volume)
    assert isinstance(prepared._net, torch.jit.ScriptModule)  # the trace did not fall back to eager
    eager, _ = UNetSegmenter(model, torch.device("cpu"), optimize=False).segment(volume)
    assert (eager > 0).sum() > 1000  # the hematoma is found, so the comparison covers lesion labels
    assert np.mean(fast == eager) > 0.9999
