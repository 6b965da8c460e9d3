"""A copy of a MONAI U-Net (`imaging.model`) rewritten for CPU inference: the same function, fewer passes over memory.

`torch.jit.freeze` folds a BatchNorm into the convolution before it only where that is an ordinary
convolution, and a traced network keeps PReLU and the residual units' additions as operations that
each read a tensor and write a new one. In the U-Nets here the last up-sampling level works on the 5
label channels at full resolution (256 x 256), where such a pass costs about as much as a
convolution: on the distilled student's architecture that level took about 60 % of the network's time.
On a copy of the network (the model's own stays as it is, for training):

- a transposed convolution followed by BatchNorm gets the BatchNorm folded into its weights and bias,
  as freeze does for ordinary convolutions (the same values up to float rounding);
- a PReLU with one slope becomes a leaky ReLU with that slope, in place (the same values);
- a residual unit adds its residual in place into the output of its convolutions (the same values).

Measured by `bench/distill_bench.py` (the student's CPU seconds per scan) and checked against the eager
network's labels by `tests/imaging/test_unet_preparation.py`.
"""

from __future__ import annotations

import copy

import torch
import torch.nn.functional as F
from monai.networks.blocks import ADN, Convolution, ResidualUnit
from torch import nn

_TRANSPOSED = (nn.ConvTranspose1d, nn.ConvTranspose2d, nn.ConvTranspose3d)
_BATCH_NORMS = (nn.BatchNorm1d, nn.BatchNorm2d, nn.BatchNorm3d)


class LeakyReluInPlace(nn.Module):
    """A one-slope PReLU as an in-place leaky ReLU: its input must be a tensor nothing else reads."""

    def __init__(self, slope: float) -> None:
        super().__init__()
        self.slope = slope

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return F.leaky_relu_(x, self.slope)


class ResidualAddedInPlace(nn.Module):
    """A MONAI `ResidualUnit` whose residual is added into its convolutions' output in place."""

    def __init__(self, unit: ResidualUnit) -> None:
        super().__init__()
        self.conv = unit.conv
        self.residual = unit.residual

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        res = self.residual(x)
        return self.conv(x).add_(res)


def folded_transposed_batch_norm(conv: nn.Module, bn: nn.Module) -> None:
    """Fold the inference-mode BatchNorm `bn` into the transposed convolution `conv` before it, in place.

    A transposed convolution's weight is (in, out / groups, *kernel): the BatchNorm's per-channel
    scale multiplies the output channels, its axis 1 (one group, as in MONAI's U-Net).
    """
    if conv.groups != 1:
        raise ValueError("folding BatchNorm into a grouped transposed convolution is not supported")
    with torch.no_grad():
        scale = bn.weight / torch.sqrt(bn.running_var + bn.eps)
        bias = conv.bias if conv.bias is not None else torch.zeros_like(bn.running_mean)
        conv.weight.mul_(scale.reshape(1, -1, *([1] * (conv.weight.dim() - 2))))
        conv.bias = nn.Parameter((bias - bn.running_mean) * scale + bn.bias, requires_grad=False)


def _fold_convolution(block: Convolution) -> None:
    """A MONAI `Convolution` (conv, then ADN) with its transposed conv's BatchNorm folded in, if it has one first."""
    adn = getattr(block, "adn", None)
    if not isinstance(block.conv, _TRANSPOSED) or not isinstance(adn, ADN):
        return
    first = next(iter(adn.named_children()), None)
    if first is not None and first[0] == "N" and isinstance(first[1], _BATCH_NORMS) and first[1].track_running_stats:
        folded_transposed_batch_norm(block.conv, first[1])
        adn.N = nn.Identity()


def _one_slope_prelus_in_place(module: nn.Module) -> None:
    for name, child in module.named_children():
        if isinstance(child, nn.PReLU) and child.weight.numel() == 1:
            setattr(module, name, LeakyReluInPlace(float(child.weight.detach())))
        else:
            _one_slope_prelus_in_place(child)


def _residuals_in_place(module: nn.Module) -> None:
    for name, child in module.named_children():
        _residuals_in_place(child)
        if isinstance(child, ResidualUnit):
            setattr(module, name, ResidualAddedInPlace(child))


def for_inference(net: nn.Module) -> nn.Module:
    """An eval-mode copy of `net` rewritten as the module docstring says; `net` itself is left unchanged."""
    out = copy.deepcopy(net).eval()
    for m in out.modules():
        if isinstance(m, Convolution):
            _fold_convolution(m)
    _one_slope_prelus_in_place(out)
    _residuals_in_place(out)
    return out
