"""Apply a `SegmentationModel` to a `Volume`: labels on the native grid, fast on CPU or GPU.

What makes it fast (measured in bench/segment_bench.py, see DESIGN.md's performance notes):
only slices that contain head reach the network, cropped to the head; on CPU the network is
rewritten for inference (`imaging.unet_for_inference`), traced and frozen (BatchNorm folded into
the convolutions) in channels_last layout (bf16 on request, `cpu_bf16`); on CUDA it runs under bf16
(or fp16) autocast. Everything under `torch.inference_mode`.
"""

from __future__ import annotations

import time
import warnings
from dataclasses import dataclass, field

import numpy as np
import torch

from imaging.devices import cpu_has_native_bf16, select_device
from imaging.model import LABEL_MAP, SegmentationModel, output_lut
from imaging.unet_for_inference import for_inference
from imaging.volume import Volume


@dataclass
class UNetSegmenter:
    """A 2.5D U-Net prepared for one device; reuse it across series (preparation costs a trace on CPU).

    A `imaging.segmenters.LesionSegmenter`: `name`, `version`, `members`, `device`, `segment`.
    """

    model: SegmentationModel
    device: torch.device
    batch_size: int = 16
    optimize: bool = True  # on CPU: traced and frozen (else eager)
    # bf16 on CPU (only where `cpu_has_native_bf16`): opt-in. It halves the network's CPU time, but with it the
    # distilled student's IPH agreement with its teacher fell 0.004 under the acceptance bar of
    # tests/imaging/test_distill.py (0.929 against 0.933), so fp32 stays the default.
    cpu_bf16: bool = False
    _net: torch.nn.Module | None = field(default=None, init=False, repr=False)
    _dtype: torch.dtype = field(default=torch.float32, init=False, repr=False)

    @property
    def name(self) -> str:
        return self.model.name

    @property
    def version(self) -> str:
        return self.model.version

    @property
    def members(self) -> list[str]:
        return [self.model.version]

    def __getstate__(self) -> dict:
        # Sent to Dask workers: the prepared network (traced, frozen, on this process' device) cannot be
        # pickled and belongs to this process anyway; each worker prepares its own on first use.
        return {**self.__dict__, "_net": None, "_dtype": torch.float32}

    def _prepared(self, example: torch.Tensor) -> torch.nn.Module:
        if self._net is not None:
            return self._net
        net = self.model.net.eval().to(self.device)
        if self.device.type == "cpu":
            net = net.to(memory_format=torch.channels_last)
            if self.optimize:
                # A copy rewritten for inference (`imaging.unet_for_inference`); the model's own stays as it is,
                # fp32, for training.
                net = for_inference(net)  # a deep copy: keeps the channels-last layout
                if self.cpu_bf16 and cpu_has_native_bf16():
                    self._dtype = torch.bfloat16
                    net = net.to(torch.bfloat16)
                    example = example.to(torch.bfloat16)
                try:
                    with warnings.catch_warnings(), torch.inference_mode(False), torch.no_grad():
                        warnings.simplefilter("ignore")
                        # check_trace off: the check runs the network twice more and imports
                        # torch.distributed.tensor to compare the outputs: about 80 % of the preparation's time
                        # (bench/demo_bench.py --prepare). The labels are compared with the eager network's by
                        # tests/imaging/test_inference.py.
                        traced = torch.jit.trace(net, example.to(memory_format=torch.channels_last),
                                                 check_trace=False)
                        net = torch.jit.freeze(traced)  # folds BatchNorm into the preceding convolutions
                except Exception:  # noqa: BLE001 - tracing is an optimization; eager gives the same labels
                    self._dtype = torch.float32
                    net = self.model.net.eval().to(memory_format=torch.channels_last)
        else:
            net = net.to(memory_format=torch.channels_last)
        self._net = net
        return net

    def segment(self, volume: Volume) -> tuple[np.ndarray, dict[str, float]]:
        """(z, y, x) uint8 labels on the volume's grid, and timings in seconds."""
        pre = self.model.preprocessing
        t0 = time.perf_counter()
        box = pre.head_box(volume.hu)
        slices = pre.windowed(volume.hu, box)
        index = np.flatnonzero(box.in_head)
        out = np.zeros(volume.shape, np.uint8)
        t1 = time.perf_counter()
        net_s = 0.0
        if index.size:
            amp = self.device.type == "cuda"
            amp_dtype = torch.bfloat16 if amp and torch.cuda.is_bf16_supported() else torch.float16
            with torch.inference_mode():
                for start in range(0, index.size, self.batch_size):
                    chunk = index[start : start + self.batch_size]
                    x = torch.from_numpy(np.ascontiguousarray(pre.channels(slices, chunk)))
                    x = x.to(self.device, non_blocking=True).contiguous(memory_format=torch.channels_last)
                    net = self._prepared(x)
                    x = x.to(self._dtype)
                    tn = time.perf_counter()
                    with torch.autocast(self.device.type, dtype=amp_dtype, enabled=amp):
                        scores = net(x)
                    if amp:
                        torch.cuda.synchronize()
                    net_s += time.perf_counter() - tn
                    pre.to_native(scores.float(), box, chunk, out)
        if self.model.label_map != LABEL_MAP:  # an older two-class checkpoint: outputs into the label map
            out = output_lut(self.model.label_map)[out]
        t2 = time.perf_counter()
        timings = {"preprocess_s": t1 - t0, "network_s": net_s, "postprocess_s": t2 - t1 - net_s,
                   "total_s": t2 - t0, "slices": int(volume.shape[0]), "slices_in_head": int(index.size)}
        return out, timings


_CACHE: dict[tuple[str, str, int], UNetSegmenter] = {}


def segment_volume(volume: Volume, model: SegmentationModel, device: str | torch.device = "auto",
                   batch_size: int = 16) -> np.ndarray:
    """(z, y, x) uint8 labels (the label map of vocabulary.labels) of `volume`, on its native grid."""
    dev = device if isinstance(device, torch.device) else select_device(device)
    key = (model.version or str(id(model)), str(dev), batch_size)
    if key not in _CACHE or _CACHE[key].model is not model:
        _CACHE.clear()
        _CACHE[key] = UNetSegmenter(model, dev, batch_size)
    labels, _ = _CACHE[key].segment(volume)
    return labels
