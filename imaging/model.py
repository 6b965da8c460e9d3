"""The segmentation network and its checkpoint: weights + preprocessing + label map + provenance.

A checkpoint is one `torch.save` dict of plain types and tensors (loaded with
`weights_only=True`, so opening a model file never executes code). Its version is the SHA-256 of
the file: that is what `SegmentationRun.model_version` records and what makes `segment`
idempotent per model.

The network has one output channel per class of the project's label map (`vocabulary.labels`),
which the checkpoint records. A checkpoint of the older two-class map ({1: hematoma, 2: edema})
still loads: `output_lut` maps its outputs into the label map (1 -> IPH, 2 -> edema).
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch
from monai.networks.layers import Norm
from monai.networks.nets import UNet

from imaging.preprocess import Preprocessing
from vocabulary import labels as L

CHECKPOINT_FORMAT = 1
LABEL_MAP = dict(L.LABEL_MAP)  # the network's classes: the project's label map, read from vocabulary.labels
# Class names of checkpoints made before the four-class map, and where they go in it.
_LEGACY_CLASS_NAMES = {"hematoma": L.IPH, "edema": L.EDEMA}
DEFAULT_MODEL_PATH = Path(__file__).parent / "default_model" / "model.pt"
DEFAULT_NET = {"channels": [8, 16, 32, 64], "strides": [2, 2, 2], "num_res_units": 1}


def build_unet(in_channels: int, out_channels: int, net: dict[str, Any] | None = None) -> torch.nn.Module:
    """MONAI's 2D U-Net with BatchNorm (folded away at inference) and the given widths."""
    cfg = {**DEFAULT_NET, **(net or {})}
    return UNet(
        spatial_dims=2,
        in_channels=in_channels,
        out_channels=out_channels,
        channels=tuple(cfg["channels"]),
        strides=tuple(cfg["strides"]),
        num_res_units=int(cfg["num_res_units"]),
        norm=Norm.BATCH,
    )


@dataclass
class SegmentationModel:
    """A trained network with everything needed to apply it the way it was trained."""

    net: torch.nn.Module
    preprocessing: Preprocessing
    net_config: dict[str, Any]
    label_map: dict[int, str] = field(default_factory=lambda: dict(LABEL_MAP))
    name: str = "unet2d"
    version: str = ""  # checkpoint SHA-256; empty until saved or loaded
    metadata: dict[str, Any] = field(default_factory=dict)

    def checkpoint(self) -> dict[str, Any]:
        return {
            "format": CHECKPOINT_FORMAT,
            "name": self.name,
            "state_dict": {k: v.detach().cpu() for k, v in self.net.state_dict().items()},
            "net_config": self.net_config,
            "preprocessing": self.preprocessing.to_dict(),
            "label_map": {int(k): v for k, v in self.label_map.items()},
            **{k: v for k, v in self.metadata.items() if k not in ("state_dict",)},
        }

    def save(self, path: Path | str) -> str:
        """Write the checkpoint (atomically) and return its version (SHA-256 of the file)."""
        path = Path(path)
        path.parent.mkdir(parents=True, exist_ok=True)
        tmp = path.with_name(path.name + ".part")
        torch.save(self.checkpoint(), tmp)
        tmp.replace(path)
        self.version = file_sha256(path)
        return self.version


def output_lut(label_map: dict[int, str]) -> np.ndarray:
    """uint8 look-up table from a checkpoint's output classes to the project's label values.

    A checkpoint names its classes; names of the label map keep their value, the two-class names
    `hematoma` and `edema` map to IPH and edema (vocabulary.labels.LEGACY_TWO_CLASS).
    """
    by_name = {name: value for value, name in L.LABEL_MAP.items()} | _LEGACY_CLASS_NAMES
    lut = np.zeros(max(label_map) + 1, dtype=np.uint8)
    for k, name in label_map.items():
        if name not in by_name:
            raise ValueError(f"checkpoint class {k} {name!r} is not in the label map ({L.describe()})")
        lut[k] = by_name[name]
    return lut


def file_sha256(path: Path | str) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as fh:
        for chunk in iter(lambda: fh.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()


def load_model(path: Path | str | None = None) -> SegmentationModel:
    """Load a checkpoint (the committed default model when `path` is None), on CPU, in eval mode."""
    path = Path(path) if path is not None else DEFAULT_MODEL_PATH
    if not path.exists():
        raise FileNotFoundError(f"no model checkpoint at {path}; train one with `ctstudy imaging train --out {path}`")
    try:
        ckpt = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as exc:  # noqa: BLE001 - report any unpickling failure with the file
        raise ValueError(f"{path}: not a ctstudy imaging checkpoint ({exc})") from exc
    if not isinstance(ckpt, dict) or ckpt.get("format") != CHECKPOINT_FORMAT:
        raise ValueError(f"{path}: not a ctstudy imaging checkpoint of format {CHECKPOINT_FORMAT}")
    pre = Preprocessing.from_dict(ckpt["preprocessing"])
    label_map = {int(k): str(v) for k, v in ckpt["label_map"].items()}
    net = build_unet(pre.in_channels, len(label_map), ckpt["net_config"])
    net.load_state_dict(ckpt["state_dict"])
    net.eval()
    meta = {k: v for k, v in ckpt.items()
            if k not in ("format", "name", "state_dict", "net_config", "preprocessing", "label_map")}
    return SegmentationModel(net=net, preprocessing=pre, net_config=ckpt["net_config"], label_map=label_map,
                             name=str(ckpt.get("name", "unet2d")), version=file_sha256(path), metadata=meta)
