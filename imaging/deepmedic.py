"""The DeepMedic network of BLAST-CT, state-dict compatible with `blast_ct.models.deepmedic.DeepMedic`.

Written here rather than imported from the `blast-ct` package because that package's runtime
requirements include TensorBoard (its training hooks are imported by its inference tool) and
its forward pass is tied to its own patch sampler; this module is the same architecture
(Kamnitsas et al. 2017 as configured by Monteiro et al. 2020) with the same parameter names, so
the published weights load unchanged (`load_state_dict(strict=True)`), and
`tests/imaging/test_deepmedic.py` checks that both give the same outputs.

Geometry (what `imaging.deepmedic_inference` tiles with): three pathways see the input at
scale factors 5, 3 and 1; each is 8 valid 3x3x3 convolutions, so an output block of `T` voxels
per axis needs an input block of `T + 2 * CONTEXT` (CONTEXT = 40 voxels: 8 layers x 5 at the
coarsest scale). The coarse pathways sample every 5th / 3rd voxel from the block's start, so
tiles whose outputs start on multiples of 15 voxels see exactly the samples the reference tool
sees (its output patches are 30 voxels, starting at multiples of 30).
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

SCALE_FACTORS = ((5, 5, 5), (3, 3, 3), (1, 1, 1))
FEATURE_MAPS = (30, 30, 40, 40, 40, 40, 50, 50)
FULLY_CONNECTED = (250, 250)
N_CONV = len(FEATURE_MAPS)
CONTEXT = N_CONV * max(max(s) for s in SCALE_FACTORS)  # voxels of input needed on each side of an output
TILE_STEP = 15  # lcm of the scale factors: tile origins on this grid keep the coarse samples aligned


def _convolve(x: torch.Tensor, conv: nn.Conv3d) -> torch.Tensor:
    """`conv(x)`, on CPU always through oneDNN (MKL-DNN), in fp32 or bf16 (`imaging.deepmedic_bf16`'s fast pass).

    PyTorch picks oneDNN for a 3D convolution only when N*C*D*H of the input exceeds 20,480 (a
    rule written for 2D); the coarse pathways' small inputs (e.g. 40 x 22^3) and the 1-channel
    first layer fell to `slow_conv3d`, about 6x slower per multiply-add on this machine, which made
    them a tenth of the whole network's time (bench/segment_bench.py --real-ct). The same
    convolution up to float32 summation order; the labels equal the reference tool's
    (tests/imaging/test_deepmedic.py).
    """
    if x.device.type == "cpu" and x.dtype in (torch.float32, torch.bfloat16) and torch.backends.mkldnn.is_available():
        return torch.ops.aten.mkldnn_convolution(x, conv.weight, conv.bias, [0, 0, 0], [1, 1, 1], [1, 1, 1], 1)
    return conv(x)


class _PreActBlock(nn.Module):
    """BatchNorm -> PReLU -> convolution (valid), plus the centre of the input when widths match.

    Inference only (fine-tuning, `imaging.deepmedic_finetune`, computes these layers out of place): on CPU
    the PReLU (one shared slope) is applied in place as a leaky ReLU with that slope, and the residual is
    added in place, which spares two full-size temporaries per layer; the values are the same.
    """

    def __init__(self, in_channels: int, out_channels: int, kernel: int) -> None:
        super().__init__()
        self.bn = nn.BatchNorm3d(in_channels)
        self.conv = nn.Conv3d(in_channels, out_channels, kernel_size=kernel, bias=False)
        self.prelu = nn.PReLU()
        self.crop = kernel // 2

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        h = self.bn(x)
        if h.device.type == "cpu" and self.prelu.weight.numel() == 1:
            h = F.leaky_relu_(h, float(self.prelu.weight))
        else:  # on CUDA the slope stays on the device (reading it would synchronize every layer)
            h = self.prelu(h)
        out = _convolve(h, self.conv)
        del h
        if x.shape[1] == out.shape[1]:
            c = self.crop
            out.add_(x[:, :, c:-c, c:-c, c:-c] if c else x)
        return out


class _Subsample(nn.Module):
    """Every `s`-th voxel from offset s // 2: the reference's strided (not averaged) subsampling."""

    def __init__(self, scale: int) -> None:
        super().__init__()
        self.scale = scale

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        s = self.scale
        return x if s == 1 else x[:, :, s // 2 :: s, s // 2 :: s, s // 2 :: s]


class _Upsample(nn.Module):
    def __init__(self, scale: int) -> None:
        super().__init__()
        self.scale = scale

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x if self.scale == 1 else F.interpolate(x, scale_factor=self.scale, mode="nearest")


class _Pathway(nn.Module):
    def __init__(self, scale: int, in_channels: int) -> None:
        super().__init__()
        self.scale = scale
        layers: list[nn.Module] = [_Subsample(scale)]
        widths = (in_channels, *FEATURE_MAPS)
        layers += [_PreActBlock(widths[i], widths[i + 1], 3) for i in range(N_CONV)]
        layers.append(_Upsample(scale))
        self.path = nn.Sequential(*layers)

    def input_size(self, output_size: int) -> int:
        coarse = output_size // self.scale + bool(output_size % self.scale)
        return (coarse + 2 * N_CONV) * self.scale

    def forward(self, x: torch.Tensor, output_size: tuple[int, int, int],
                planes: list[int] | None = None) -> torch.Tensor:
        need = [self.input_size(o) for o in output_size]
        x = _crop_center(x, need)
        if planes is None:
            return _crop_center(self.path(x), list(output_size))
        return self._planes(x, output_size, planes)

    def _planes(self, x: torch.Tensor, output_size: tuple[int, int, int], planes: list[int]) -> torch.Tensor:
        """Output planes `planes` of the pathway on the block `x` (already cropped to its input size).

        Only the z range those planes need is computed: pathway output plane j (coarse units) reads
        input planes [j * s, (j + 2 * N_CONV + 1) * s), so the block is cut to the span of the planes'
        coarse indices (e.g. 71 planes of a 75-plane output block are read: 4 planes less per layer).
        The planes kept are computed from the same inputs, so the values equal the whole block's.
        """
        s = self.scale
        coarse_planes = x.shape[2] // s - 2 * N_CONV
        start = [c * s // 2 - o // 2 for c, o in
                 zip((coarse_planes, x.shape[3] // s - 2 * N_CONV, x.shape[4] // s - 2 * N_CONV), output_size,
                     strict=True)]
        index = [(p + start[0]) // s for p in planes]
        lo, hi = min(index), max(index)
        x = x[:, :, lo * s : (hi + 1 + 2 * N_CONV) * s]
        index = [i - lo for i in index]
        if s != 1:
            return self._upsampled_planes(self.path[:-1](x), output_size, index, start)
        # Full resolution: the last layers run on a batch of thin z-slabs around the planes (each layer
        # needs one plane less on each side), which gives the same values and skips the planes nobody reads.
        blocks = list(self.path)[1 : 1 + N_CONV]
        slab_layers = 2
        h = x
        for block in blocks[: N_CONV - slab_layers]:
            h = block(h)
        width = 2 * slab_layers + 1
        h = torch.cat([h[:, :, p : p + width] for p in index], dim=0)
        for block in blocks[N_CONV - slab_layers :]:
            h = block(h)
        return h[:, :, 0].transpose(0, 1).unsqueeze(0)  # (planes, C, y, x) -> (1, C, planes, y, x)

    def _upsampled_planes(self, coarse: torch.Tensor, output_size: tuple[int, int, int], index: list[int],
                          start: list[int]) -> torch.Tensor:
        """Coarse planes `index`, upsampled in y and x and cropped there to the output block (origin `start`).

        Nearest-neighbour upsampling copies values, so picking the coarse planes first and upsampling
        in y and x only gives the same numbers as upsampling the whole block and then taking the
        planes, without the whole block's memory traffic (4/5 of it on 5 mm slices).
        """
        s = self.scale
        h = F.interpolate(coarse.index_select(2, torch.tensor(index, device=coarse.device)), scale_factor=(1, s, s),
                          mode="nearest")
        return h[:, :, :, start[1] : start[1] + output_size[1], start[2] : start[2] + output_size[2]]


def _crop_center(x: torch.Tensor, size: list[int]) -> torch.Tensor:
    """The centre `size` of the spatial axes, rounding as the reference does (c//2 - s//2)."""
    if list(x.shape[2:]) == list(size):
        return x
    idx = tuple(slice(c // 2 - s // 2, c // 2 - s // 2 + s) for c, s in zip(x.shape[2:], size, strict=True))
    return x[(slice(None), slice(None), *idx)]


class DeepMedic(nn.Module):
    """Input (N, 1, T+80, ...) windowed CT; output (N, 5, T, ...) class logits (T a multiple of 15)."""

    def __init__(self, input_channels: int = 1, num_classes: int = 5) -> None:
        super().__init__()
        self.paths: list[_Pathway] = []
        for i, sf in enumerate(SCALE_FACTORS):
            path = _Pathway(sf[0], input_channels)
            self.paths.append(path)
            self.add_module(f"path{sf}{i}", path)  # the reference's parameter names, e.g. 'path(5, 5, 5)0'
        widths = (FEATURE_MAPS[-1] * len(SCALE_FACTORS), *FULLY_CONNECTED, num_classes)
        self.fully_connected = nn.Sequential(*(_PreActBlock(widths[i], widths[i + 1], 1)
                                               for i in range(len(widths) - 1)))

    def forward(self, x: torch.Tensor, planes: list[int] | None = None) -> torch.Tensor:
        """Logits of the whole output block, or of its z planes `planes` only (batch of one then)."""
        out_size = tuple(int(s) - 2 * CONTEXT for s in x.shape[2:])
        if min(out_size) <= 0 or any(s % TILE_STEP for s in out_size):
            raise ValueError(f"DeepMedic input {tuple(x.shape[2:])}: each side must be {2 * CONTEXT} + a multiple "
                             f"of {TILE_STEP} voxels")
        if planes is not None and x.shape[0] != 1:
            raise ValueError("DeepMedic: output planes can be chosen for a batch of one block only")
        parts = [p(x, out_size, planes) for p in self.paths]  # type: ignore[arg-type]
        # On CPU the fully connected layers' input is made channels-last (oneDNN's layout, as the pathways run):
        # a plain cat of these parts is NCDHW, which oneDNN reordered inside the first layer at half its speed.
        layout = torch.channels_last_3d if x.device.type == "cpu" else torch.contiguous_format
        features = torch.empty((parts[0].shape[0], sum(p.shape[1] for p in parts), *parts[0].shape[2:]),
                               dtype=parts[0].dtype, device=x.device, memory_format=layout)
        return self.fully_connected(torch.cat(parts, dim=1, out=features))
