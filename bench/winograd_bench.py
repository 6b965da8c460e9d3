"""One 3x3x3 layer of the real-CT model: oneDNN's direct fp32 convolution against Winograd F(2,3) in torch ops.

Winograd F(2x2x2, 3x3x3) needs 64 multiplies per 8 outputs where the direct convolution needs 216
(3.4x fewer). Written with torch operations (input transform, 64 batched matrix products, output
transform), each transform pass writes a tensor up to 8x the input: this bench prints whether that
beats oneDNN's direct convolution on this CPU, and each result's largest error against float64.

    .venv/bin/python bench/winograd_bench.py [--channels 40] [--size 32 98 98] [--repeats 3] [--threads 1]
"""

from __future__ import annotations

import argparse
import os
import statistics
import time

import torch

# Winograd F(2,3) (Lavin & Gray 2016): output = A^T [(G g G^T) * (B^T d B)] A, per axis.
G = torch.tensor([[1, 0, 0], [0.5, 0.5, 0.5], [0.5, -0.5, 0.5], [0, 0, 1]], dtype=torch.float64)


def direct(x: torch.Tensor, w: torch.Tensor) -> torch.Tensor:
    """The network's own convolution call (`imaging.deepmedic._convolve` on CPU)."""
    return torch.ops.aten.mkldnn_convolution(x, w, None, [0, 0, 0], [1, 1, 1], [1, 1, 1], 1)


def transformed_weights(w: torch.Tensor) -> torch.Tensor:
    """(64, C_in, C_out): G g G^T along the three kernel axes."""
    u = torch.einsum("ai,bj,ck,oxijk->abcxo", G, G, G, w.double()).float()
    return u.reshape(64, w.shape[1], w.shape[0]).contiguous()


def _input_transform(t: torch.Tensor, dim: int) -> torch.Tensor:
    """B^T d along `dim` (length 2n + 2): a new axis of 4 at `dim`, the n tiles after it."""
    n = (t.shape[dim] - 2) // 2
    a0, a1, a2, a3 = (t.narrow(dim, o, 2 * n - 1).unfold(dim, 1, 2).squeeze(-1) for o in range(4))
    return torch.stack([a0 - a2, a1 + a2, a2 - a1, a1 - a3], dim=dim)


def _output_transform(m: torch.Tensor, dim: int) -> torch.Tensor:
    m0, m1, m2, m3 = m.unbind(dim)
    return torch.stack([m0 + m1 + m2, m1 - m2 - m3], dim=dim)


def winograd(x: torch.Tensor, u: torch.Tensor) -> torch.Tensor:
    """Valid 3x3x3 convolution of x (1, C, D, H, W), each of D-2, H-2, W-2 even, with transformed weights u."""
    t = x[0].permute(1, 2, 3, 0)  # (D, H, W, C)
    for dim in (0, 2, 4):
        t = _input_transform(t, dim)  # ends (4, nD, 4, nH, 4, nW, C)
    _, nd, _, nh, _, nw, c = t.shape
    m = torch.bmm(t.permute(0, 2, 4, 1, 3, 5, 6).reshape(64, nd * nh * nw, c), u)
    m = m.reshape(4, 4, 4, nd, nh, nw, u.shape[2])
    for dim in (0, 1, 2):
        m = _output_transform(m, dim)  # ends (2, 2, 2, nD, nH, nW, C_out)
    y = m.permute(3, 0, 4, 1, 5, 2, 6).reshape(2 * nd, 2 * nh, 2 * nw, u.shape[2])
    return y.permute(3, 0, 1, 2)[None]


def _timed(fn, repeats: int) -> tuple[float, float]:  # noqa: ANN001
    walls, cpus = [], []
    for _ in range(repeats):
        t0, c0 = time.perf_counter(), time.process_time()
        fn()
        walls.append(time.perf_counter() - t0)
        cpus.append(time.process_time() - c0)
    return statistics.median(walls), statistics.median(cpus)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--channels", type=int, default=40, help="Input and output channels (the network's 40->40).")
    ap.add_argument("--size", type=int, nargs=3, default=[32, 98, 98], help="Input D H W (each minus 2 even).")
    ap.add_argument("--repeats", type=int, default=3)
    ap.add_argument("--threads", type=int, default=1)
    args = ap.parse_args()
    if any((s - 2) % 2 or s < 4 for s in args.size):
        ap.error(f"--size {args.size}: each side minus 2 must be even and positive")
    torch.set_num_threads(args.threads)
    gen = torch.Generator().manual_seed(0)
    c = args.channels
    x = torch.randn(1, c, *args.size, generator=gen).to(memory_format=torch.channels_last_3d)
    w = torch.randn(c, c, 3, 3, 3, generator=gen) * 0.05
    u = transformed_weights(w)
    exact = torch.nn.functional.conv3d(x.double(), w.double())
    for name, fn in (("direct (oneDNN)", lambda: direct(x, w)), ("Winograd F(2,3)", lambda: winograd(x, u))):
        err = float((fn().double() - exact).abs().max())
        fn()  # warm-up
        wall, cpu = _timed(fn, args.repeats)
        if name.startswith("direct"):
            base = cpu
        flop = 2 * c * c * 27 * (args.size[0] - 2) * (args.size[1] - 2) * (args.size[2] - 2)
        print(f"{name:16s} {wall:7.3f} s wall  {cpu:7.3f} CPU s  {flop / 1e9 / cpu:6.1f} direct-equivalent GFLOP/s  "
              f"max |error| vs float64 {err:.2e}  CPU {cpu / base:.2f}x the direct convolution's")
    print(f"{args.threads} thread(s), load average {os.getloadavg()[0]:.1f}")


if __name__ == "__main__":
    main()
