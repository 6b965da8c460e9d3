"""Train the 2D U-Net on annotated volumes: pure (arrays in, a `SegmentationModel` out; no database).

- split by patient (all series of one patient on one side), seeded;
- slices are preprocessed once (the checkpoint's `Preprocessing`), kept as uint8 to save memory;
- the network has one output per class of the label map (`vocabulary.labels`: background, IPH,
  EAH, edema, IVH);
- batches: slices with lesions drawn `lesion_fraction` of the time (lesions are a few percent of
  the slices); `class_balanced_fraction` of those draws are class-balanced (a lesion class chosen
  uniformly among those in the training set, then a slice holding it), so that rare classes
  (IVH, thin extra-axial blood) are seen often, the rest any slice with a lesion (mostly hematoma
  and edema, the classes CREACTIVE's features rest on); augmented with one random affine per slice (rotation, shift,
  scale) and an intensity gain/offset/noise, then cropped to `patch` pixels around a voxel of
  the chosen class (or anywhere in the head) - a fully convolutional net trained on patches
  applies to the whole slice;
- rehearsal series (`rehearsal`, e.g. `imaging.rehearsal`'s phantoms) train only, never validate: a
  `rehearsal_fraction` share of each batch's slices is drawn from them (by the same lesion and class
  rules), so that a warm-started model keeps seeing what it already knew while it learns new data;
- loss MONAI DiceCELoss, AdamW with cosine decay, bf16/fp16 autocast on CUDA only;
- validation Dice per series on the network grid after each epoch; the best epoch is kept;
- optionally warm-started from another checkpoint (`initial`), also one of another label map (the
  two-class U-Net): see `warm_start_state`; then the initial weights are validated as epoch 0 and kept
  unless a trained epoch validates better, and `freeze_batchnorm` keeps their BatchNorm statistics.
Deterministic for a given seed on CPU.
"""

from __future__ import annotations

import copy
import hashlib
import math
import time
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field

import numpy as np
import torch
import torch.nn.functional as F
from monai.losses import DiceCELoss

from imaging.model import _LEGACY_CLASS_NAMES, DEFAULT_NET, LABEL_MAP, SegmentationModel, build_unet
from imaging.preprocess import Preprocessing
from vocabulary.labels import UNANNOTATED


@dataclass(frozen=True)
class TrainingExample:
    """One annotated series: HU volume and labels on the same (z, y, x) grid."""

    series_instance_uid: str
    patient_key: str  # the split unit: all series of one patient go to the same side
    hu: np.ndarray
    labels: np.ndarray


@dataclass
class _Prepared:
    uid: str
    patient: str
    images: np.ndarray  # (z, S, S) uint8: windowed slices x 255
    labels: np.ndarray  # (z, S, S) uint8
    in_head: np.ndarray  # (z,) bool


@dataclass
class TrainingConfig:
    epochs: int = 30
    steps_per_epoch: int = 40
    batch_size: int = 16
    patch: int = 128
    lesion_fraction: float = 0.7
    class_balanced_fraction: float = 0.5  # of the lesion draws; see the module doc
    lr: float = 3e-3
    weight_decay: float = 1e-4
    val_fraction: float = 0.2
    seed: int = 1
    max_rotation_deg: float = 10.0
    max_shift: float = 0.06  # fraction of the image
    scale_range: tuple[float, float] = (0.9, 1.1)
    intensity_gain: float = 0.08
    intensity_offset: float = 0.04
    noise_sigma: float = 0.02
    # Fine-tuning: keep BatchNorm's running statistics (and affine weights) of the initial model, so that a few
    # lesion-centred patches of a new source do not rewrite the normalisation the whole network relies on.
    freeze_batchnorm: bool = False
    # Of each batch's slices, the share drawn from `train_model`'s rehearsal series (when it is given any).
    rehearsal_fraction: float = 0.25
    net: dict = field(default_factory=lambda: dict(DEFAULT_NET))


@dataclass
class EpochReport:
    epoch: int
    loss: float
    val_dice: dict[str, float]
    seconds: float


def patient_split(patients: Sequence[str], val_fraction: float, seed: int) -> tuple[set[str], set[str]]:
    """(train, validation) patient keys: a seeded shuffle of the sorted distinct keys."""
    keys = sorted(set(patients))
    rng = np.random.default_rng(seed)
    rng.shuffle(keys)
    n_val = max(1, round(len(keys) * val_fraction)) if len(keys) > 1 else 0
    return set(keys[n_val:]), set(keys[:n_val])


def training_data_sha256(examples: Sequence[TrainingExample]) -> str:
    """A hash of every image and label array, in series order: the checkpoint's 'trained on what'."""
    h = hashlib.sha256()
    for ex in sorted(examples, key=lambda e: e.series_instance_uid):
        h.update(ex.series_instance_uid.encode())
        h.update(np.ascontiguousarray(ex.hu, dtype=np.float32).tobytes())
        h.update(np.ascontiguousarray(ex.labels, dtype=np.uint8).tobytes())
    return h.hexdigest()


def uid_digest(uid: str) -> str:
    """Checkpoints list their split by digest, not by SeriesInstanceUID (a DICOM identifier)."""
    return hashlib.sha256(uid.encode()).hexdigest()[:16]


def _prepare(ex: TrainingExample, pre: Preprocessing) -> _Prepared:
    if ex.hu.shape != ex.labels.shape:
        raise ValueError(f"series {ex.series_instance_uid}: image {ex.hu.shape} and labels {ex.labels.shape} differ")
    box = pre.head_box(ex.hu)
    img = np.round(pre.windowed(ex.hu, box) * 255).astype(np.uint8)
    return _Prepared(ex.series_instance_uid, ex.patient_key, img, pre.labels(ex.labels, box), box.in_head)


def _augment(x: torch.Tensor, y: torch.Tensor, cfg: TrainingConfig, gen: torch.Generator,
             ) -> tuple[torch.Tensor, torch.Tensor]:
    """One random rotation/shift/scale per slice via affine_grid + grid_sample.

    Hand-written on torch primitives rather than MONAI's RandAffined because it transforms the
    whole batch (image and labels with the same grid) in one call, which matters on 2 CPU cores.
    """
    n = x.shape[0]
    angle = (torch.rand(n, generator=gen) * 2 - 1) * math.radians(cfg.max_rotation_deg)
    scale = cfg.scale_range[0] + torch.rand(n, generator=gen) * (cfg.scale_range[1] - cfg.scale_range[0])
    shift = (torch.rand(n, 2, generator=gen) * 2 - 1) * cfg.max_shift * 2
    cos, sin = torch.cos(angle) / scale, torch.sin(angle) / scale
    theta = torch.stack([torch.stack([cos, -sin, shift[:, 0]], 1), torch.stack([sin, cos, shift[:, 1]], 1)], 1)
    grid = F.affine_grid(theta.to(x.device), list(x.shape), align_corners=False)
    x = F.grid_sample(x, grid, mode="bilinear", padding_mode="zeros", align_corners=False)
    y = F.grid_sample(y[:, None].float(), grid, mode="nearest", padding_mode="zeros", align_corners=False)[:, 0]
    gain = 1 + (torch.rand(n, 1, 1, 1, generator=gen) * 2 - 1) * cfg.intensity_gain
    offset = (torch.rand(n, 1, 1, 1, generator=gen) * 2 - 1) * cfg.intensity_offset
    noise = torch.randn(x.shape, generator=gen) * cfg.noise_sigma
    x = (x * gain.to(x.device) + offset.to(x.device) + noise.to(x.device)).clamp_(0, 1)
    return x, y.round().long()


ANY_LESION = 0  # crop focus: any lesion voxel of the slice (a class value focuses on that class)


@dataclass
class _SlicePools:
    """Slices to draw training batches from, as (series index, slice index) pairs: every in-head slice, those
    holding each lesion class, and those holding any lesion."""

    every: list[tuple[int, int]]
    by_class: dict[int, list[tuple[int, int]]]
    lesion: list[tuple[int, int]]

    @classmethod
    def of(cls, data: Sequence[_Prepared], series: Iterable[int], classes: dict[int, str]) -> _SlicePools:
        every = [(i, int(z)) for i in series for z in np.flatnonzero(data[i].in_head)]
        by_class = {k: [(i, z) for i, z in every if (data[i].labels[z] == k).any()] for k in classes if k}
        by_class = {k: v for k, v in by_class.items() if v}
        return cls(every, by_class, sorted({s for v in by_class.values() for s in v}))

    def draw(self, data: Sequence[_Prepared], cfg: TrainingConfig, rng: np.random.Generator,
             ) -> tuple[tuple[int, int], int | None]:
        """One slice and its crop focus: a lesion slice `lesion_fraction` of the time (class-balanced for
        `class_balanced_fraction` of those), else any in-head slice."""
        classes = sorted(self.by_class)
        if classes and rng.random() < cfg.lesion_fraction:
            if rng.random() < cfg.class_balanced_fraction:
                k = classes[int(rng.integers(len(classes)))]
                return self.by_class[k][int(rng.integers(len(self.by_class[k])))], k
            return self.lesion[int(rng.integers(len(self.lesion)))], ANY_LESION
        i, z = self.every[int(rng.integers(len(self.every)))]
        lab = data[i].labels[z]
        return (i, z), (ANY_LESION if ((lab > 0) & (lab != UNANNOTATED)).any() else None)


def _crop_centres(y: torch.Tensor, focus: Sequence[int | None], patch: int,
                  rng: np.random.Generator) -> list[tuple]:
    """Patch centres: near a voxel of the focus class (any lesion if it left the slice), else anywhere."""
    size = y.shape[-1]
    half = patch // 2
    centres = []
    for i in range(y.shape[0]):
        fg = None
        if focus[i] is not None:
            fg = torch.nonzero(y[i] == focus[i]) if focus[i] != ANY_LESION else None
            if fg is None or not len(fg):
                fg = torch.nonzero((y[i] > 0) & (y[i] != UNANNOTATED))
        if fg is not None and len(fg):
            cy, cx = fg[int(rng.integers(len(fg)))].tolist()
            cy += int(rng.integers(-half // 2, half // 2 + 1))
            cx += int(rng.integers(-half // 2, half // 2 + 1))
        else:
            cy, cx = int(rng.integers(half, size - half + 1)), int(rng.integers(half, size - half + 1))
        centres.append((min(max(cy, half), size - half), min(max(cx, half), size - half)))
    return centres


def _dice_by_class(pred: np.ndarray, truth: np.ndarray, label_map: dict[int, str] | None = None) -> dict[str, float]:
    out = {}
    annotated = truth != UNANNOTATED
    for k, name in (label_map or LABEL_MAP).items():
        if k == 0:
            continue
        t, p = truth == k, (pred == k) & annotated
        if t.sum() == 0:
            continue
        out[name] = 2.0 * float(np.logical_and(t, p).sum()) / float(t.sum() + p.sum())
    return out


def masked_dice_ce(logits: torch.Tensor, target: torch.Tensor, smooth: float = 1e-5) -> torch.Tensor:
    """Dice + cross-entropy over the annotated voxels only (`target` (B, 1, H, W); UNANNOTATED voxels skipped).

    The same terms as MONAI's `DiceCELoss(to_onehot_y=True, softmax=True, batch=True)` (background included,
    Dice averaged over classes, smoothing 1e-5), each restricted to the voxels someone annotated: MONAI's
    losses have no ignore label for the Dice part.
    """
    valid = target != UNANNOTATED
    labels = torch.where(valid, target, torch.zeros_like(target))[:, 0]
    mask = valid.to(logits.dtype)
    if not bool(valid.any()):
        return logits.sum() * 0.0  # nothing annotated in this batch: no gradient, no NaN
    ce = F.cross_entropy(logits, labels, reduction="none")[valid[:, 0]].mean()
    prob = torch.softmax(logits, 1) * mask
    onehot = F.one_hot(labels, logits.shape[1]).permute(0, 3, 1, 2).to(logits.dtype) * mask
    inter = (prob * onehot).sum((0, 2, 3))
    denom = prob.sum((0, 2, 3)) + onehot.sum((0, 2, 3))
    return (1.0 - (2.0 * inter + smooth) / (denom + smooth)).mean() + ce


NEW_CLASS_BIAS = -2.0  # logit offset of a class the initial model lacks: it starts out less likely than its source


def warm_start_state(initial: SegmentationModel, net: torch.nn.Module) -> dict[str, torch.Tensor]:
    """`net`'s state dict filled from `initial`'s weights, class channels mapped by name.

    Same label map: a plain copy. Another one (the two-class U-Net: background, hematoma, edema):
    every class the initial model has keeps its weights (hematoma -> IPH, edema -> edema); a class
    it lacks (EAH, IVH: blood, like a hematoma) starts as a copy of the IPH channel with its final
    logit lowered by `NEW_CLASS_BIAS`, so the network starts out as the initial model and training
    teaches it where the new classes differ. In a weight whose output and input are both class
    channels, an input copied for a new class is zeroed, so nothing is counted twice.
    """
    by_name = {name: value for value, name in LABEL_MAP.items()} | _LEGACY_CLASS_NAMES
    old_index = {by_name[name]: k for k, name in initial.label_map.items() if name in by_name}
    blood = old_index.get(1)
    source = [old_index.get(k, blood) for k in sorted(LABEL_MAP)]
    if None in source:
        raise ValueError(f"initial model's classes {initial.label_map} cannot seed {LABEL_MAP}")
    primary = [source.index(j) == k for k, j in enumerate(source)]  # first new class fed by each old one
    old = initial.net.state_dict()
    new = net.state_dict()
    out: dict[str, torch.Tensor] = {}
    last_bias = None
    n_old, n_new = len(initial.label_map), len(LABEL_MAP)
    for key, target in new.items():
        src = old[key]
        if src.shape == target.shape:
            out[key] = src.clone()
            continue
        dims = [d for d in range(src.ndim) if src.shape[d] == n_old and target.shape[d] == n_new]
        if not dims or [d for d in range(src.ndim) if src.shape[d] != target.shape[d] and d not in dims]:
            raise ValueError(f"initial model's layer {key} {tuple(src.shape)} does not fit {tuple(target.shape)}")
        t = src.index_select(dims[0], torch.tensor(source))
        if len(dims) > 1:  # (output, input) of a class-to-class convolution
            t = t.index_select(dims[1], torch.tensor(source))
            mask = torch.tensor(primary, dtype=t.dtype).reshape([-1 if d == dims[1] else 1 for d in range(t.ndim)])
            t = t * mask
        out[key] = t.contiguous()
        if key.endswith("bias") and src.ndim == 1:
            last_bias = key
    if last_bias is not None:  # the network's output logits
        for k in sorted(LABEL_MAP):
            if k not in old_index:
                out[last_bias][k] += NEW_CLASS_BIAS
    return out


def _train_mode(net: torch.nn.Module, freeze_batchnorm: bool) -> None:
    """Training mode; with `freeze_batchnorm`, BatchNorm layers stay in eval mode (running statistics kept)."""
    net.train()
    if freeze_batchnorm:
        for m in net.modules():
            if isinstance(m, torch.nn.modules.batchnorm._BatchNorm):
                m.eval()


def _validate(net: torch.nn.Module, data: Sequence[_Prepared], pre: Preprocessing, device: torch.device,
              batch_size: int, label_map: dict[int, str] | None = None) -> dict[str, float]:
    """Mean Dice per class over validation series that have that class (network grid)."""
    per_class: dict[str, list[float]] = {}
    net.eval()
    with torch.inference_mode():
        for d in data:
            idx = np.flatnonzero(d.in_head)
            pred = np.zeros_like(d.labels)
            imgs = d.images.astype(np.float32) / 255.0
            for s in range(0, idx.size, batch_size):
                chunk = idx[s : s + batch_size]
                x = torch.from_numpy(pre.channels(imgs, chunk)).to(device)
                with torch.autocast(device.type, dtype=torch.bfloat16, enabled=device.type == "cuda"):
                    pred[chunk] = net(x).argmax(1).to(torch.uint8).cpu().numpy()
            for name, v in _dice_by_class(pred, d.labels, label_map).items():
                per_class.setdefault(name, []).append(v)
    return {name: float(np.mean(v)) for name, v in per_class.items()}


def train_model(
    examples: Sequence[TrainingExample],
    config: TrainingConfig | None = None,
    preprocessing: Preprocessing | None = None,
    device: torch.device | str = "cpu",
    on_step: Callable[[int, int, float], None] | None = None,
    on_epoch: Callable[[EpochReport], None] | None = None,
    label_map: dict[int, str] | None = None,
    initial: SegmentationModel | None = None,
    rehearsal: Sequence[TrainingExample] = (),
) -> SegmentationModel:
    """Fit a U-Net to `examples`; the returned model holds the best-validation weights and its provenance.

    `label_map` (default `LABEL_MAP`) sets the classes the network outputs; examples' labels come from any
    source (manual annotations, a teacher model's masks) as long as their values are in it.
    `initial`: start from this model's weights (fine-tuning) instead of a random initialization; its
    network widths and preprocessing must be those of `config` and `preprocessing`.
    `rehearsal`: labelled series that only train (never validate), `config.rehearsal_fraction` of every batch's
    slices drawn from them: what a warm-started model already knew, kept in view while it learns `examples`.
    """
    cfg = config or TrainingConfig()
    classes = dict(label_map or LABEL_MAP)
    pre = preprocessing or Preprocessing()
    device = torch.device(device)
    if len(examples) < 2:
        raise ValueError(f"need annotated series of at least 2 patients to train and validate, got {len(examples)}")
    torch.manual_seed(cfg.seed)
    rng = np.random.default_rng(cfg.seed)
    gen = torch.Generator().manual_seed(cfg.seed)
    if device.type == "cpu":
        torch.use_deterministic_algorithms(True, warn_only=True)

    train_keys, val_keys = patient_split([e.patient_key for e in examples], cfg.val_fraction, cfg.seed)
    prepared = [_prepare(e, pre) for e in sorted(examples, key=lambda e: e.series_instance_uid)]
    train = [p for p in prepared if p.patient in train_keys]
    val = [p for p in prepared if p.patient in val_keys]
    # Rehearsal series train only (never validate), drawn for `rehearsal_fraction` of each batch's slices.
    rehearsed = [_prepare(e, pre) for e in sorted(rehearsal, key=lambda e: e.series_instance_uid)]
    sources = train + rehearsed  # the (series, slice) pairs of both pools index this list
    own = _SlicePools.of(sources, range(len(train)), classes)
    replay = _SlicePools.of(sources, range(len(train), len(sources)), classes) if rehearsed else None
    if not own.every:
        raise ValueError("no training slice contains head (is the HU scaling right?)")

    net = build_unet(pre.in_channels, len(classes), cfg.net)
    if initial is not None:
        if initial.preprocessing != pre:
            raise ValueError("the initial model was trained with other preprocessing "
                             f"({initial.preprocessing.to_dict()}); pass the same --size and --context-slices")
        net.load_state_dict(warm_start_state(initial, net))
    net = net.to(device)
    if cfg.freeze_batchnorm:
        for m in net.modules():
            if isinstance(m, torch.nn.modules.batchnorm._BatchNorm):
                m.requires_grad_(False)
    loss_fn = DiceCELoss(to_onehot_y=True, softmax=True, batch=True)
    opt = torch.optim.AdamW([p for p in net.parameters() if p.requires_grad], lr=cfg.lr, weight_decay=cfg.weight_decay)
    total = cfg.epochs * cfg.steps_per_epoch
    sched = torch.optim.lr_scheduler.OneCycleLR(opt, max_lr=cfg.lr, total_steps=total,
                                                pct_start=min(0.3, max(0.1, 2.5 / total)))
    use_amp = device.type == "cuda"
    amp_dtype = torch.bfloat16 if use_amp and torch.cuda.is_bf16_supported() else torch.float16
    scaler = torch.amp.GradScaler("cuda", enabled=use_amp and amp_dtype == torch.float16)

    best: tuple[float, dict, int, dict] | None = None
    history = []
    if initial is not None and val:
        # Epoch 0: the initial weights compete with every trained epoch on the validation patients, so
        # fine-tuning never returns a model that validates worse than the one it started from.
        val_dice = _validate(net, val, pre, device, cfg.batch_size, classes)
        history.append({"epoch": 0, "loss": float("nan"), "val_dice": val_dice, "seconds": 0.0})
        if on_epoch:
            on_epoch(EpochReport(0, float("nan"), val_dice, 0.0))
        best = (float(np.mean(list(val_dice.values()))) if val_dice else -math.inf,
                copy.deepcopy(net.state_dict()), 0, val_dice)
    half = cfg.patch // 2
    for epoch in range(1, cfg.epochs + 1):
        t0 = time.perf_counter()
        _train_mode(net, cfg.freeze_batchnorm)
        losses = []
        for step in range(cfg.steps_per_epoch):
            picks, focus = [], []
            for _ in range(cfg.batch_size):
                pools = replay if replay is not None and rng.random() < cfg.rehearsal_fraction else own
                pick, f = pools.draw(sources, cfg, rng)
                picks.append(pick)
                focus.append(f)
            x = np.stack([pre.channels(sources[i].images, np.array([z]))[0] for i, z in picks]).astype(np.float32) / 255
            y = np.stack([sources[i].labels[z] for i, z in picks])
            xt, yt = _augment(torch.from_numpy(x), torch.from_numpy(y), cfg, gen)
            centres = _crop_centres(yt, focus, cfg.patch, rng)
            xt = torch.stack([xt[b, :, cy - half : cy + half, cx - half : cx + half] for b, (cy, cx) in
                              enumerate(centres)]).to(device)
            yt = torch.stack([yt[b, cy - half : cy + half, cx - half : cx + half] for b, (cy, cx) in
                              enumerate(centres)])[:, None].to(device)
            opt.zero_grad(set_to_none=True)
            with torch.autocast(device.type, dtype=amp_dtype, enabled=use_amp):
                partial = bool((yt == UNANNOTATED).any())
                loss = masked_dice_ce(net(xt).float(), yt) if partial else loss_fn(net(xt), yt)
            scaler.scale(loss).backward()
            scaler.step(opt)
            scaler.update()
            sched.step()
            losses.append(float(loss.detach()))
            if on_step:
                on_step(epoch, step, losses[-1])
        val_dice = _validate(net, val, pre, device, cfg.batch_size, classes) if val else {}
        report = EpochReport(epoch, float(np.mean(losses)), val_dice, time.perf_counter() - t0)
        history.append({"epoch": epoch, "loss": report.loss, "val_dice": val_dice, "seconds": report.seconds})
        if on_epoch:
            on_epoch(report)
        score = float(np.mean(list(val_dice.values()))) if val_dice else -report.loss
        if best is None or score > best[0]:
            best = (score, copy.deepcopy(net.state_dict()), epoch, val_dice)

    assert best is not None
    net.load_state_dict(best[1])
    net.eval()
    meta = {
        "seed": cfg.seed,
        "training_config": {k: (list(v) if isinstance(v, tuple) else v) for k, v in cfg.__dict__.items()},
        "training_data_sha256": training_data_sha256(examples),
        "rehearsal": ({"series": len(rehearsed), "sha256": training_data_sha256(rehearsal),
                       "fraction": cfg.rehearsal_fraction} if rehearsed else None),
        "initial_model": ({"name": initial.name, "version": initial.version, "label_map": initial.label_map}
                          if initial is not None else None),
        "split": {"train": sorted(uid_digest(p.uid) for p in train),
                  "validation": sorted(uid_digest(p.uid) for p in val)},
        "n_series": {"train": len(train), "validation": len(val)},
        "metrics": {"best_epoch": best[2], "val_dice": best[3], "history": history},
        "device": str(device),
        "torch": str(torch.__version__),
        "created_at": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
    }
    return SegmentationModel(net=net.cpu(), preprocessing=pre, net_config=dict(cfg.net), label_map=classes,
                             metadata=meta)
