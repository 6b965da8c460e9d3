"""The BLAST-CT networks shipped in `imaging/models/blast_ct/`: names, hashes, state dicts.

The folder holds the trained DeepMedic networks of BLAST-CT (Monteiro et al., Lancet Digit
Health 2020; Apache-2.0, see LICENSE.txt and NOTICE there) converted to fp16 state dicts
(`member_NN.pt`, written by `bench/blast_ct_weights.py`, which also measures that labels agree
with the fp32 originals), plus `config.json` (architecture and preprocessing as published).
Nothing is ever downloaded: the files are package data.
"""

from __future__ import annotations

import hashlib
import io
import json
from functools import cache
from pathlib import Path

import torch

BLAST_CT_DIR = Path(__file__).parent / "models" / "blast_ct"


def member_names(folder: Path = BLAST_CT_DIR) -> list[str]:
    """The shipped networks, in the published order (member_01 is BLAST-CT's model_1)."""
    names = sorted(p.stem for p in folder.glob("member_*.pt"))
    if not names:
        raise FileNotFoundError(f"{folder}: no member_NN.pt networks; the BLAST-CT weights are missing from this "
                                "installation (reinstall ctstudy, or check that package data was included)")
    return names


@cache
def member_sha256(name: str, folder: Path = BLAST_CT_DIR) -> str:
    return hashlib.sha256((folder / f"{name}.pt").read_bytes()).hexdigest()


def version_of_hashes(hashes: list[str]) -> str:
    """One network: its file hash; an ensemble: the hash of its members' hashes, in order."""
    return hashes[0] if len(hashes) == 1 else hashlib.sha256(" ".join(hashes).encode()).hexdigest()


def load_member_state(name: str, folder: Path = BLAST_CT_DIR) -> dict[str, torch.Tensor]:
    return load_member(name, folder)[0]


def load_member(name: str, folder: Path = BLAST_CT_DIR) -> tuple[dict[str, torch.Tensor], str]:
    """The state dict of network `name` and the sha256 of the bytes it was read from (one read of the file)."""
    path = folder / f"{name}.pt"
    try:
        data = path.read_bytes()
        return torch.load(io.BytesIO(data), map_location="cpu", weights_only=True), hashlib.sha256(data).hexdigest()
    except Exception as exc:  # noqa: BLE001 - any unreadable file is named with what to do
        raise ValueError(f"{path}: not a readable BLAST-CT state dict ({exc}); reinstall ctstudy") from exc


def config(folder: Path = BLAST_CT_DIR) -> dict:
    return json.loads((folder / "config.json").read_text())
