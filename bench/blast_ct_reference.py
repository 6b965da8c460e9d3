"""Run the reference BLAST-CT tool (`blast-ct` from PyPI) on one NIfTI, offline, and measure it.

The tool downloads its weights on first use; here the networks shipped in
`imaging/models/blast_ct/` are written where it looks for them
(`$BLAST_CT_CACHE_DIR/saved_models/model_N.torch_model`, as fp32 state dicts), so it runs with
exactly the weights our own inference uses. It works in the fixed folder /tmp/blast_ct and
deletes it afterwards, so two runs must never overlap.

    python bench/blast_ct_reference.py IN.nii.gz OUT.nii.gz [--ensemble]

Prints wall seconds, CPU seconds (user + system: steadier than wall time on a shared machine)
and the child's peak RSS (ru_maxrss of the waited-for children).
"""

from __future__ import annotations

import argparse
import os
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from imaging.blast_ct_weights import load_member_state, member_names  # noqa: E402


def blast_ct_command() -> str:
    exe = Path(sys.executable).with_name("blast-ct")
    if not exe.exists():
        raise FileNotFoundError(f"{exe}: the reference tool is not installed; `pip install blast-ct==2.1.0` "
                                "(a dev dependency of ctstudy)")
    return str(exe)


def run_reference(image: Path, out: Path, *, ensemble: bool = False, threads: int | None = None) -> dict[str, float]:
    """Run `blast-ct --input image --output out` on CPU with our weights; wall seconds and peak RSS (GB)."""
    names = member_names()
    with tempfile.TemporaryDirectory(prefix="blast-ct-cache-") as cache:
        saved = Path(cache) / "saved_models"
        saved.mkdir()
        for i, name in enumerate(names if ensemble else names[:1], start=1):
            state = {k: (v.float() if v.is_floating_point() else v) for k, v in load_member_state(name).items()}
            torch.save(state, saved / f"model_{i}.torch_model")
        env = {**os.environ, "BLAST_CT_CACHE_DIR": cache}
        if threads:
            env["OMP_NUM_THREADS"] = str(threads)
        out.parent.mkdir(parents=True, exist_ok=True)
        cmd = [blast_ct_command(), "--input", str(image), "--output", str(out), "--device", "cpu"]
        if ensemble:
            cmd.append("--ensemble")
        before = resource.getrusage(resource.RUSAGE_CHILDREN)
        cpu_before = before.ru_utime + before.ru_stime
        t0 = time.perf_counter()
        done = subprocess.run(cmd, env=env, capture_output=True, text=True, check=False)
        seconds = time.perf_counter() - t0
    if done.returncode != 0 or not out.exists():
        raise RuntimeError(f"blast-ct failed on {image} (exit {done.returncode}): {done.stderr[-2000:]}")
    usage = resource.getrusage(resource.RUSAGE_CHILDREN)
    return {"seconds": seconds, "cpu_seconds": usage.ru_utime + usage.ru_stime - cpu_before,
            "system_seconds": usage.ru_stime - before.ru_stime, "minor_faults": usage.ru_minflt - before.ru_minflt,
            "peak_rss_gb": usage.ru_maxrss / 1024**2}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("image", type=Path)
    parser.add_argument("out", type=Path)
    parser.add_argument("--ensemble", action="store_true")
    args = parser.parse_args()
    figures = run_reference(args.image, args.out, ensemble=args.ensemble)
    print(f"blast-ct reference: {figures['seconds']:.1f} s ({figures['cpu_seconds']:.0f} CPU s), "
          f"peak RSS {figures['peak_rss_gb']:.2f} GB -> {args.out}")


if __name__ == "__main__":
    main()
