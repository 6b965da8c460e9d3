"""Fine-tune one of BLAST-CT's DeepMedic networks on a study's annotations (`imaging adapt --from blast-ct`).

Pure: scans in, a DeepMedic checkpoint and its held-out figures out; no database (`imaging.adapt_study` saves
and registers it).

- **Same preprocessing as inference.** Each scan is resampled to 1 mm and windowed exactly as
  `imaging.deepmedic_inference.DeepMedicSegmenter.segment` does; its labels go onto that grid by nearest
  neighbour (`imaging.regrid.labels_to_grid`), on the plane nearest each received slice; every other voxel is
  `vocabulary.labels.UNANNOTATED` and outside the loss, as are voxels an annotator left out.
- **Few parameters.** Only the fully connected (1x1x1) layers train, by default all three (`trainable_layers`
  counts from the classifier); the three convolutional pathways, every BatchNorm (statistics and affine) and
  the PReLU slopes stay as published. A study brings tens of annotated scans, BLAST-CT learned its pathways
  from hundreds: the pathways are the part a few labels would overfit, while the per-voxel classifier on
  their 150 features is where a new scanner's or a new annotator's boundary between classes is set.
- **Frozen pathways computed once.** Because the pathways are frozen, a 3D patch's output voxel sees the same
  150 features in every step; they are computed once per annotated plane (the inference's own tiling, on
  the planes read only) and the classifier trains on samples of them: the same optimisation as training on
  3D patches around those voxels, at a fraction of the cost, but without augmentation (augmenting would
  need the pathways again each step).
- **Sampling.** Each training scan gives all its annotated lesion voxels and `background_per_lesion` (30)
  times as many annotated background voxels (at least `min_background`), at most `max_voxels_per_scan`: about
  the share of blood in a hemorrhagic head's slices (1-3 % of the head voxels on CT-ICH). A lesion-rich
  sample (one background voxel in four) shifts the classifier's prior towards lesion: past the first epoch it
  calls blood where there is none, and whole held-out patients lose Dice (docs/benchmarks.md).
- **Loss.** `imaging.train.masked_dice_ce` (Dice + cross-entropy over annotated voxels) plus how far the
  classifier moved from the starting network on the same voxels (`kept_start_penalty`, learning without
  forgetting): `keep_start` times the KL divergence of the class probabilities, and `keep_unannotated` times
  the KL of each class that no training voxel is annotated with, so those classes stay near what BLAST-CT
  answered.
- **Never worse on validation.** Validation patients are carved from the training patients
  (`imaging.train.patient_split`); the starting weights are scored on all their annotated voxels as epoch 0,
  and compete with every epoch: the best is kept. Those scores are the inference's own labels on those
  voxels up to the features' float16 storage (the classifier is per voxel, so the same features give the
  same labels as `segment`).
- **Held out.** Held-out patients are scored before and after with the real inference path
  (`DeepMedicSegmenter.segment` with the checkpoint's weights) and `imaging.adapt.heldout_agreement`, as
  the U-Net path is.
- **Pseudo-labels.** Unannotated series of training patients contribute the starting network's own labels
  on their received planes (at most `pseudo_per_annotated` per annotated training series).

A DeepMedic checkpoint is a state dict file (`model.pt`) beside a `config.json` of BLAST-CT's architecture and
preprocessing; `segment --model <folder>/model.pt` runs it through `DeepMedicSegmenter`.
"""

from __future__ import annotations

import copy
import hashlib
import json
import tempfile
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pandas as pd
import torch
import torch.nn.functional as F

from imaging.adapt import (
    AdaptOptions,
    AdaptResult,
    Scan,
    heldout_agreement,
    holdout_patients,
    judged,
    model_card,
)
from imaging.agreement import summarize_agreement
from imaging.blast_ct_weights import config, load_member_state, member_names, member_sha256
from imaging.deepmedic import CONTEXT, DeepMedic
from imaging.deepmedic_inference import (
    DEFAULT_TILE,
    RESOLUTION_MM,
    DeepMedicSegmenter,
    head_mask,
    plan_tiles,
    tile_for_planes,
    windowed,
)
from imaging.model import file_sha256
from imaging.regrid import labels_to_grid, received_planes, regular_grid, resample_to_grid
from imaging.train import masked_dice_ce, patient_split
from vocabulary.labels import LESION_CLASSES, UNANNOTATED

CHECKPOINT_CONFIG = "config.json"
ADAPTED_NAME = "blast-ct-adapted"
N_FULLY_CONNECTED = 3


@dataclass
class DeepMedicTuning:
    epochs: int = 8
    steps_per_epoch: int = 25
    batch_voxels: int = 4096
    lr: float = 1e-4
    trainable_layers: int = N_FULLY_CONNECTED  # fully connected layers that train, counted from the classifier
    background_per_lesion: float = 30.0
    keep_start: float = 1.0  # weight of the KL divergence to the starting network's class probabilities
    keep_unannotated: float = 10.0  # weight of the per-class KL for classes no training voxel is annotated with
    min_background: int = 2000
    max_voxels_per_scan: int = 40000
    val_fraction: float = 0.2
    seed: int = 1

    def __post_init__(self) -> None:
        if not 1 <= self.trainable_layers <= N_FULLY_CONNECTED:
            raise ValueError(f"trainable_layers must be 1-{N_FULLY_CONNECTED} (the fully connected layers, counted "
                             f"from the classifier), not {self.trainable_layers}")


@dataclass
class DeepMedicCheckpoint:
    """One DeepMedic network's weights with the BLAST-CT config it runs under."""

    state: dict[str, torch.Tensor]
    config: dict
    name: str
    version: str = ""
    metadata: dict = field(default_factory=dict)

    def save(self, path: Path | str) -> str:
        """Write the state dict (atomically) and its `config.json` beside it; return the file's SHA-256."""
        path = Path(path)
        path.parent.mkdir(parents=True, exist_ok=True)
        tmp = path.with_name(path.name + ".part")
        torch.save({k: v.detach().cpu() for k, v in self.state.items()}, tmp)
        tmp.replace(path)
        (path.parent / CHECKPOINT_CONFIG).write_text(json.dumps(self.config, indent=1))
        self.version = file_sha256(path)
        return self.version

    def companions(self) -> dict[str, str]:
        """Files that must lie beside the checkpoint for it to run: name -> text."""
        return {CHECKPOINT_CONFIG: json.dumps(self.config, indent=1)}


def is_deepmedic_checkpoint(path: Path | str) -> bool:
    """A `.pt` state dict file beside a `config.json` that names the DeepMedic architecture."""
    path = Path(path)
    cfg = path.parent / CHECKPOINT_CONFIG
    if not (path.suffix == ".pt" and path.is_file() and cfg.is_file()):
        return False
    try:
        return "DeepMedic" in json.loads(cfg.read_text()).get("model", {})
    except (json.JSONDecodeError, AttributeError):
        return False


def blast_ct_start() -> DeepMedicCheckpoint:
    """BLAST-CT's first network (the default ensemble of one), in float32."""
    name = member_names()[0]
    state = {k: (v.float() if v.is_floating_point() else v) for k, v in load_member_state(name).items()}
    return DeepMedicCheckpoint(state, config(), "blast-ct", member_sha256(name))


def load_checkpoint(path: Path | str) -> DeepMedicCheckpoint:
    path = Path(path)
    if not is_deepmedic_checkpoint(path):
        raise ValueError(f"{path}: not a DeepMedic checkpoint (a state dict beside a DeepMedic config.json)")
    return DeepMedicCheckpoint(load_member_state(path.stem, path.parent), config(path.parent), ADAPTED_NAME,
                               file_sha256(path))


def open_checkpoint_segmenter(path: Path | str, device: torch.device, tile: int = DEFAULT_TILE,
                              precision: str = "auto") -> DeepMedicSegmenter:
    """The fast inference (`DeepMedicSegmenter`) running the network of a DeepMedic checkpoint file."""
    path = Path(path)
    if not is_deepmedic_checkpoint(path):
        raise ValueError(f"{path}: not a DeepMedic checkpoint (a state dict beside a DeepMedic config.json)")
    return DeepMedicSegmenter(device, [path.stem], tile=tile, folder=path.parent, name=ADAPTED_NAME,
                              precision=precision)


def checkpoint_segmenter(ckpt: DeepMedicCheckpoint, device: torch.device) -> Callable:
    """`volume -> labels` through the fast inference with `ckpt`'s weights (written to a scratch folder)."""
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "model.pt"
        copy.copy(ckpt).save(path)
        seg = open_checkpoint_segmenter(path, device)
    return lambda volume: seg.segment(volume)[0]


def network(ckpt: DeepMedicCheckpoint, device: torch.device) -> DeepMedic:
    data = ckpt.config["data"]
    net = DeepMedic(int(data["input_channels"]), int(data["num_classes"]))
    net.load_state_dict(ckpt.state)
    return net.eval().to(device)


def _window(ckpt: DeepMedicCheckpoint) -> tuple[float, float]:
    w = ckpt.config["data"]["transformation"]["IntensityWindowNormalization"]
    return float(w["lower_bound"]), float(w["upper_bound"])


def plane_features(net: DeepMedic, scan: Scan, window: tuple[float, float], device: torch.device,
                   tile: int = DEFAULT_TILE) -> tuple[np.ndarray, np.ndarray]:
    """The frozen pathways' features (N, 150) and the 1 mm labels (N,) of the head voxels on the grid planes
    nearest the received slices (labels: the scan's, UNANNOTATED where it has none)."""
    grid = regular_grid(scan.volume, RESOLUTION_MM)
    hu = resample_to_grid(scan.volume, grid)
    x = windowed(hu, *window)
    head = head_mask(hu, window[0])
    del hu
    planes = received_planes(grid, scan.volume)
    wanted = np.zeros(x.shape[0], bool)
    wanted[planes[planes >= 0]] = True
    labels = (labels_to_grid(scan.labels, grid, scan.volume, UNANNOTATED) if scan.labels is not None
              else np.full(x.shape, UNANNOTATED, np.uint8))
    mask = head & wanted[:, None, None]
    tiles = plan_tiles(mask, tile_for_planes(tile, float(wanted.mean())))
    end_pad = [max(0, max((t[a].stop for t in tiles), default=0) - x.shape[a]) for a in range(3)]
    padded = np.pad(x, [(CONTEXT, CONTEXT + e) for e in end_pad], mode="edge")
    feats, labs = [], []
    with torch.inference_mode():
        for t in tiles:
            src = tuple(slice(s.start, s.stop + 2 * CONTEXT) for s in t)
            inp = torch.from_numpy(np.ascontiguousarray(padded[src]))[None, None].to(device)
            zs = [z - t[0].start for z in range(t[0].start, min(t[0].stop, x.shape[0])) if wanted[z]]
            out_size = tuple(s.stop - s.start for s in t)
            f = torch.cat([p(inp, out_size, zs) for p in net.paths], dim=1)[0]  # (C, planes, y, x)
            ys, xs = (slice(s.start, min(s.stop, n)) for s, n in zip(t[1:], x.shape[1:], strict=True))
            f = f[:, :, : ys.stop - ys.start, : xs.stop - xs.start].float().cpu().numpy()
            zz = [t[0].start + z for z in zs]
            keep = mask[zz][:, ys, xs]
            feats.append(f[:, keep].T.astype(np.float16))
            labs.append(labels[zz][:, ys, xs][keep])
    if not feats:
        return np.zeros((0, net.fully_connected[0].bn.num_features), np.float16), np.zeros(0, np.uint8)
    return np.concatenate(feats), np.concatenate(labs)


def cached_plane_features(net: DeepMedic, scan: Scan, window: tuple[float, float], device: torch.device,
                          cache: Path, network_version: str) -> tuple[np.ndarray, np.ndarray]:
    """`plane_features`, read from (or written to) `cache`, keyed by the network's version, the window and a
    hash of the scan's image, geometry and labels: repeated adaptations of a study compute each scan's once."""
    h = hashlib.sha256(f"{network_version} {window} {scan.volume.spacing}".encode())
    for a in (scan.volume.hu, scan.volume.affine, scan.volume.positions,
              np.zeros(0) if scan.labels is None else scan.labels):
        h.update(np.ascontiguousarray(a).tobytes())
    path = Path(cache) / f"features-{h.hexdigest()[:24]}.npz"
    if path.is_file():
        with np.load(path) as z:
            return z["feats"], z["labels"]
    feats, labels = plane_features(net, scan, window, device)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(path.stem + ".part.npz")
    np.savez(tmp, feats=feats, labels=labels)
    tmp.replace(path)
    return feats, labels


def _classify(net: DeepMedic, feats: np.ndarray, device: torch.device, chunk: int = 65536) -> np.ndarray:
    out = []
    with torch.inference_mode():
        for i in range(0, len(feats), chunk):
            f = torch.from_numpy(feats[i : i + chunk].astype(np.float32)).to(device)[:, :, None, None, None]
            out.append(net.fully_connected(f)[:, :, 0, 0, 0].argmax(1).to(torch.uint8).cpu().numpy())
    return np.concatenate(out) if out else np.zeros(0, np.uint8)


def classifier_logits(net: DeepMedic, feats: torch.Tensor) -> torch.Tensor:
    """Logits (N, classes) of the fully connected layers on pathway features (N, 150), differentiably.

    The same operations as `net.fully_connected` (BatchNorm with its running statistics -> PReLU -> 1x1x1
    convolution, plus the input when widths match), written out of place: the inference blocks apply the
    PReLU in place, which autograd cannot differentiate for the published (negative) slopes.
    """
    h = feats
    for block in net.fully_connected:
        z = F.batch_norm(h, block.bn.running_mean, block.bn.running_var, block.bn.weight, block.bn.bias,
                         training=False, eps=block.bn.eps)
        out = F.linear(F.prelu(z, block.prelu.weight), block.conv.weight[:, :, 0, 0, 0])
        h = out + h if out.shape[1] == h.shape[1] else out
    return h


def _sample(feats: np.ndarray, labels: np.ndarray, tuning: DeepMedicTuning,
            rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray]:
    """All annotated lesion voxels and a seeded draw of annotated background ones, capped per scan."""
    annotated = labels != UNANNOTATED
    lesion = np.flatnonzero(annotated & (labels > 0))
    background = np.flatnonzero(annotated & (labels == 0))
    n_bg = min(len(background), max(tuning.min_background, int(tuning.background_per_lesion * len(lesion))))
    idx = np.concatenate([lesion, rng.choice(background, n_bg, replace=False)])
    if len(idx) > tuning.max_voxels_per_scan:
        idx = rng.choice(idx, tuning.max_voxels_per_scan, replace=False)
    return feats[idx], labels[idx]


def validation_score(pred: np.ndarray, ref: np.ndarray) -> float:
    """Mean pooled Dice over the lesion classes present in `ref` (annotated voxels only); nan if none."""
    keep = ref != UNANNOTATED
    pred, ref = pred[keep], ref[keep]
    dices = []
    for c in LESION_CLASSES:
        r = ref == c.value
        if r.any():
            p = pred == c.value
            dices.append(2.0 * np.count_nonzero(p & r) / (np.count_nonzero(p) + np.count_nonzero(r)))
    return float(np.mean(dices)) if dices else float("nan")


def kept_start_penalty(start: DeepMedic, logits: torch.Tensor, feats: torch.Tensor,
                       unannotated: Sequence[int], weights: tuple[float, float]) -> torch.Tensor:
    """How far the tuned classifier has moved from the starting network on `feats` (learning without forgetting).

    `weights[0]` times KL(start || tuned) of the class probabilities, mean per voxel, plus `weights[1]` times,
    for each class in `unannotated` (no annotated voxel in the training set), the KL of that class's
    probability as a yes/no answer, summed over those classes. A study's annotations seldom hold every class
    (on CT-ICH a patient's scan holds one kind of hemorrhage); trained on them alone, the classifier unlearns
    the classes nobody annotated, since every sampled voxel says "not that class" (docs/benchmarks.md: the
    held-out patient with intraventricular blood). The whole-distribution term lets the annotated classes
    move; the per-class term holds each unannotated class's probability where BLAST-CT put it.
    """
    with torch.no_grad():
        target = torch.softmax(classifier_logits(start, feats), 1)
    penalty = weights[0] * F.kl_div(torch.log_softmax(logits, 1), target, reduction="batchmean")
    if unannotated and weights[1]:
        eps = 1e-6
        q0 = target[:, list(unannotated)].clamp(eps, 1 - eps)
        q = torch.softmax(logits, 1)[:, list(unannotated)].clamp(eps, 1 - eps)
        yes_no = q0 * (q0.log() - q.log()) + (1 - q0) * ((1 - q0).log() - (1 - q).log())
        penalty = penalty + weights[1] * yes_no.sum(1).mean()
    return penalty


def _trainable(net: DeepMedic, layers: int) -> list[torch.nn.Parameter]:
    for p in net.parameters():
        p.requires_grad_(False)
    params = []
    for block in list(net.fully_connected)[N_FULLY_CONNECTED - layers :]:
        block.conv.weight.requires_grad_(True)
        params.append(block.conv.weight)
    return params


def fine_tune(initial: DeepMedicCheckpoint, train: Sequence[tuple[np.ndarray, np.ndarray]],
              val: Sequence[tuple[np.ndarray, np.ndarray]], tuning: DeepMedicTuning, device: torch.device,
              on_step: Callable[[int, int, float], None] | None = None) -> tuple[DeepMedicCheckpoint, dict]:
    """The classifier trained on (features, labels) samples; the best of the start and each epoch on `val`."""
    torch.manual_seed(tuning.seed)
    rng = np.random.default_rng(tuning.seed)
    net = network(initial, device)
    params = _trainable(net, tuning.trainable_layers)
    x = torch.from_numpy(np.concatenate([f for f, _ in train]).astype(np.float32))
    y = torch.from_numpy(np.concatenate([lab for _, lab in train]).astype(np.int64))
    val_f = np.concatenate([f for f, _ in val]) if val else np.zeros((0, x.shape[1]), np.float16)
    val_y = np.concatenate([lab for _, lab in val]) if val else np.zeros(0, np.uint8)
    start = network(initial, device) if tuning.keep_start or tuning.keep_unannotated else None
    annotated_classes = set(np.unique(np.concatenate([lab for _, lab in train])).tolist()) - {UNANNOTATED}
    unannotated = [c for c in range(int(initial.config["data"]["num_classes"])) if c not in annotated_classes]
    opt = torch.optim.Adam(params, lr=tuning.lr)
    history = [{"epoch": 0, "loss": None, "val_score": validation_score(_classify(net, val_f, device), val_y)}]
    best = (history[0]["val_score"], copy.deepcopy(net.state_dict()), 0)
    for epoch in range(1, tuning.epochs + 1):
        t0, losses = time.perf_counter(), []
        for step in range(tuning.steps_per_epoch):
            idx = torch.from_numpy(rng.integers(0, len(x), min(tuning.batch_voxels, len(x))))
            batch = x[idx].to(device)
            logits = classifier_logits(net, batch)  # (N, classes)
            loss = masked_dice_ce(logits.T[None, :, :, None], y[idx].to(device)[None, None, :, None])
            if start is not None:
                loss = loss + kept_start_penalty(start, logits, batch, unannotated,
                                                 (tuning.keep_start, tuning.keep_unannotated))
            opt.zero_grad()
            loss.backward()
            opt.step()
            losses.append(float(loss.detach()))
            if on_step:
                on_step(epoch, step, losses[-1])
        score = validation_score(_classify(net, val_f, device), val_y)
        history.append({"epoch": epoch, "loss": float(np.mean(losses)), "val_score": score,
                        "seconds": time.perf_counter() - t0})
        if np.isfinite(score) and (not np.isfinite(best[0]) or score > best[0]):
            best = (score, copy.deepcopy(net.state_dict()), epoch)
    state = {k: v.detach().cpu().clone() for k, v in best[1].items()}
    out = DeepMedicCheckpoint(state, initial.config, ADAPTED_NAME)
    return out, {"best_epoch": best[2], "history": history, "train_voxels": int(len(x)),
                 "unannotated_classes": unannotated,
                 "val_voxels": int(len(val_y))}


def adapt_deepmedic(initial: DeepMedicCheckpoint, scans: Sequence[Scan], options: AdaptOptions,
                    tuning: DeepMedicTuning, device: torch.device | str = "cpu", *,
                    on_step: Callable[[int, int, float], None] | None = None,
                    segmenter: Callable[[DeepMedicCheckpoint], Callable] | None = None,
                    feature_cache: Path | None = None) -> AdaptResult:
    """Fine-tune `initial`'s classifier on the training patients' scans; score start and result on held-out ones.

    `segmenter(ckpt)` labels a volume with a checkpoint (default: the fast inference, `checkpoint_segmenter`).
    `feature_cache`: a folder where the frozen pathways' features of each scan are kept (`cached_plane_features`).
    """
    device = torch.device(device)
    seg = segmenter or (lambda c: checkpoint_segmenter(c, device))
    held = set(options.held_out) if options.held_out is not None else holdout_patients(
        ((s.center, s.patient_key) for s in scans if s.labels is not None), options.holdout_fraction, options.seed)
    held_out = [s for s in scans if s.patient_key in held and s.labels is not None]
    annotated = [s for s in scans if s.patient_key not in held and s.labels is not None]
    train_keys, val_keys = patient_split([s.patient_key for s in annotated], tuning.val_fraction, tuning.seed)
    if not train_keys or not val_keys:
        raise ValueError(f"after holding out {len(held)} patient(s), annotated scans of "
                         f"{len({s.patient_key for s in annotated})} patient(s) are left to train on: adapting "
                         "needs at least 2 (its own validation split); import more annotations")
    candidates = sorted((s for s in scans if s.labels is None and s.patient_key not in held | val_keys),
                        key=lambda s: s.series_instance_uid)
    rng = np.random.default_rng(options.seed)
    n_train = sum(s.patient_key in train_keys for s in annotated)
    n_pseudo = min(len(candidates), int(round(options.pseudo_per_annotated * n_train)))
    pseudo = [candidates[i] for i in sorted(rng.choice(len(candidates), n_pseudo, replace=False))] if n_pseudo else []

    net, window = network(initial, device), _window(initial)
    train, val = [], []
    for s in annotated + pseudo:
        feats, labels = (plane_features(net, s, window, device) if feature_cache is None else
                         cached_plane_features(net, s, window, device, feature_cache, initial.version))
        if s.labels is None:  # pseudo-labels: the starting network's own classes on the head voxels
            labels = _classify(net, feats, device)
        if s.patient_key in val_keys:
            keep = labels != UNANNOTATED
            val.append((feats[keep], labels[keep]))
        else:
            train.append(_sample(feats, labels, tuning, rng))
    if not any(((lab > 0) & (lab != UNANNOTATED)).any() for _, lab in train):
        raise ValueError("the training patients' annotations hold no lesion voxel: nothing to adapt to")
    del net
    model, metrics = fine_tune(initial, train, val, tuning, device, on_step)
    model.name = f"{ADAPTED_NAME} from {initial.name} {initial.version[:12]}"

    rows = pd.concat([heldout_agreement(seg(initial), held_out, "before"),
                      heldout_agreement(seg(model), held_out, "after")], ignore_index=True)
    summary = summarize_agreement(rows.rename(columns={"model": "comparison"}))
    present = sorted(rows.loc[(rows["ref_voxels"] > 0) & rows["class"].isin([c.key for c in LESION_CLASSES]),
                              "class"].unique())
    verdict = judged(summary, present, options.min_gain, options.max_class_loss)
    annotated_train = [s for s in annotated if s.patient_key in train_keys or s.patient_key in val_keys]
    card = model_card(initial, scans, held, annotated_train, pseudo, summary, verdict, tuning, device)  # type: ignore[arg-type]
    card["network"] = {"architecture": "DeepMedic (BLAST-CT)", "trained": f"the last {tuning.trainable_layers} "
                       "fully connected layers' weights; pathways, BatchNorm and PReLU as published",
                       "preprocessing": "1 mm grid, window "
                       f"{window[0]:g}..{window[1]:g} HU, as BLAST-CT's inference"}
    card["fine_tuning"] = {**metrics, "validation_patients": len(val_keys)}
    model.metadata["adaptation"] = card
    return AdaptResult(model, summary, verdict.before, verdict.after, verdict.improved, card,  # type: ignore[arg-type]
                       verdict.text)
