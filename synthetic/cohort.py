"""The synthetic patients: clinical picture, lesions and how they evolve, scan schedule. Pure computation.

One latent severity per patient drives lesion burden, GCS motor score, pupils, glucose and the
rest, so the variables are correlated the way TBI cohorts are. Distributions aim at
IMPACT/CREACTIVE-like cohorts (age skewed to 30-70, about 3 in 4 male, motor score 1-4 in about
half, both pupils unreactive in about 1 in 8).

Lesion evolution (days t from injury), per intraparenchymal hematoma:
- volume  V(t) = V0 * (1 + (G-1) * min(1, t/1.5)) * exp(-ln2 * max(0, t-3) / half_life): expansion
  in the first 36 h in about 30 % (G 1.2-1.9), then resorption (half-life 8-16 days);
- density d(t) = max(52, d0 - 0.9 * max(0, t-2)) HU with d0 62-82: it falls as the clot ages
  (kept >= 52 so that every hematoma voxel stays within 50-90 HU);
- edema   E(t) = Vmax * (r0 + (rp-r0) * t/tp) up to the peak day tp (3-8), then Vmax * rp * exp(-(t-tp)/tau)
  with r0 0.3-0.8, rp 1.0-2.5, tau 8-14 days: it grows over the first days, then recedes.
Extra-axial (subdural-like) collections in about 1 in 5: those over 30 mL are evacuated after the
admission scan in 70 % (Marshall V; absent on follow-up), the others resorb (half-life 20 days).
An extra-axial collection is lentiform (epidural-like) in about 3 in 10, crescentic (subdural-like) otherwise;
the clinical `edh` is 1 exactly when it is lentiform. Diffuse brain swelling (compressing the basal
cisterns, see synthetic.phantom) in about 1 in 5, more often the more severe: 20-70 mL on admission, from
day 5 halving every 5 days. Shape and swelling come from random streams of their own.
Intraventricular hemorrhage in about 1 in 5 (more often the more severe): 0.5-12 mL on admission,
cleared with a half-life of 3-6 days. It is drawn from a random stream of its own, so that adding
it left every other variable of every patient (and so the outcomes) as it was.
"""

from __future__ import annotations

import datetime as dt
import math
from dataclasses import dataclass

import numpy as np
import pandas as pd

from synthetic.centers import CenterProfile, patients_per_center
from synthetic.phantom import REGIONS, ExtraAxial, HeadShape, Hematoma, Intraventricular, SeriesSpec, region_center_mm

REGION_PROBABILITIES = {"frontal": 0.40, "temporal": 0.30, "parietal": 0.12, "occipital": 0.08, "basal_ganglia": 0.10}
FOLLOW_UP_PROBABILITIES = (0.30, 0.35, 0.20, 0.10, 0.05)  # 0..4 follow-up scans
# Follow-up windows (days from injury): early control, first week, second week, weeks 3-4.
FOLLOW_UP_WINDOWS = ((0.5, 2.0), (3.0, 7.0), (8.0, 15.0), (16.0, 30.0))
CLINICAL_COLUMNS = ("center", "patient_id", "injury_datetime", "age", "sex", "gcs_total", "gcs_motor",
                    "pupils_unreactive", "hypoxia", "hypotension", "glucose_mmol_l", "hemoglobin_g_dl",
                    "marshall_ct", "tsah", "edh", "major_extracranial_injury")
# Missing completely at random, per column (secondary and laboratory variables, as in IMPACT's data).
MISSING_RATES = {"gcs_total": 0.12, "pupils_unreactive": 0.04, "hypoxia": 0.08, "hypotension": 0.06,
                 "glucose_mmol_l": 0.15, "hemoglobin_g_dl": 0.12, "marshall_ct": 0.03}


@dataclass(frozen=True)
class LesionPlan:
    """One intraparenchymal hematoma over all scans of a patient."""

    region: str
    side: str
    center_mm: tuple[float, float, float]
    elongation: tuple[float, float, float]
    shape_seed: int
    volume_ml: tuple[float, ...]  # per scan
    edema_ml: tuple[float, ...]
    density_hu: tuple[float, ...]


@dataclass(frozen=True)
class PatientPlan:
    center: str
    patient_id: str
    injury_datetime: dt.datetime
    scan_days: tuple[float, ...]  # days from injury of each scan; 0 is the admission scan
    lesions: tuple[LesionPlan, ...]
    extra_axial_side: str | None
    extra_axial_ml: tuple[float, ...]
    extra_axial_density_hu: float
    evacuated: bool
    head: HeadShape
    head_offsets_mm: tuple[tuple[float, float, float], ...]  # per scan: patients lie differently each time
    head_yaw_deg: tuple[float, ...]
    patient_seed: int
    ivh_ml: tuple[float, ...] = ()  # per scan; empty: no intraventricular blood
    ivh_density_hu: float = 60.0
    extra_axial_shape: str = "crescentic"  # or "lentiform" (synthetic.phantom.ExtraAxial.shape)
    swelling_ml: tuple[float, ...] = ()  # per scan; empty: no diffuse swelling

    def series_spec(self, timepoint: int, noise_sigma_hu: float) -> SeriesSpec:
        """What the phantom renders for this patient's scan number `timepoint`."""
        hematomas = tuple(
            Hematoma(center_mm=les.center_mm, volume_ml=les.volume_ml[timepoint], edema_ml=les.edema_ml[timepoint],
                     density_hu=les.density_hu[timepoint], elongation=les.elongation, shape_seed=les.shape_seed)
            for les in self.lesions)
        extra = None
        if self.extra_axial_side is not None and self.extra_axial_ml[timepoint] > 0:
            extra = ExtraAxial(self.extra_axial_side, self.extra_axial_ml[timepoint], self.extra_axial_density_hu,
                               shape=self.extra_axial_shape)
        ivh = None
        if self.ivh_ml and self.ivh_ml[timepoint] > 0:
            ivh = Intraventricular(self.ivh_ml[timepoint], self.ivh_density_hu,
                                   shape_seed=self.patient_seed % 1_000_003)
        return SeriesSpec(hematomas=hematomas, extra_axial=extra, intraventricular=ivh, head=self.head,
                          head_offset_mm=self.head_offsets_mm[timepoint], head_yaw_deg=self.head_yaw_deg[timepoint],
                          noise_sigma_hu=noise_sigma_hu,
                          swelling_ml=self.swelling_ml[timepoint] if self.swelling_ml else 0.0,
                          render_cisterns=True)


@dataclass(frozen=True)
class Cohort:
    plans: tuple[PatientPlan, ...]
    clinical_complete: pd.DataFrame  # clinical.csv columns, before missing values are applied


def _expit(x):
    return 1.0 / (1.0 + np.exp(-x))


def _radius_mm(volume_ml: float) -> float:
    return (3 * volume_ml * 1000 / (4 * math.pi)) ** (1 / 3)


def _hematoma_trajectory(days: np.ndarray, v0: float, rng: np.random.Generator):
    growth = rng.uniform(1.2, 1.9) if rng.random() < 0.30 else 1.0
    half_life = rng.uniform(8.0, 16.0)
    vol = v0 * (1 + (growth - 1) * np.minimum(1.0, days / 1.5)) * np.exp(-math.log(2) * np.maximum(0, days - 3)
                                                                         / half_life)
    r0, rp, tp, tau = rng.uniform(0.3, 0.8), rng.uniform(1.0, 2.5), rng.uniform(3.0, 8.0), rng.uniform(8.0, 14.0)
    vmax = v0 * growth
    edema = np.where(days <= tp, vmax * (r0 + (rp - r0) * days / tp), vmax * rp * np.exp(-(days - tp) / tau))
    d0 = rng.uniform(62.0, 82.0)
    density = np.maximum(52.0, d0 - 0.9 * np.maximum(0, days - 2))
    return vol, edema, density


def _lesion_plans(n: int, severity: float, days: np.ndarray, head: HeadShape, seed_base: int,
                  rng: np.random.Generator) -> tuple[LesionPlan, ...]:
    regions = list(REGION_PROBABILITIES)
    p = np.array([REGION_PROBABILITIES[r] for r in regions])
    slots: list[tuple[str, str]] = []
    plans: list[LesionPlan] = []
    total = 0.0
    for k in range(n):
        for _ in range(20):
            slot = (regions[rng.choice(len(regions), p=p)], "left" if rng.random() < 0.5 else "right")
            if slot not in slots:
                break
        else:
            continue
        v0 = float(np.clip(np.exp(rng.normal(math.log(4.0) + 0.6 * severity, 1.0)), 0.3, 60.0))
        if plans:
            v0 = min(v0, 0.6 * plans[0].volume_ml[0] + 2.0)  # secondary contusions are smaller
        if total + v0 > 90.0:
            break
        vol, edema, density = _hematoma_trajectory(days, v0, rng)
        jitter = rng.normal(0, 4.0, size=3)
        c = np.asarray(region_center_mm(slot[0], slot[1], head)) + jitter
        # Keep lesions apart so that each stays one connected component (lesion counts are truth).
        reach = _radius_mm(float(vol.max() + edema.max()))
        if any(np.linalg.norm(c - np.asarray(o.center_mm)) < 1.15 * (reach + _radius_mm(max(o.volume_ml)
                                                                                         + max(o.edema_ml)))
               for o in plans):
            continue
        slots.append(slot)
        total += v0
        plans.append(LesionPlan(region=slot[0], side=slot[1], center_mm=tuple(float(v) for v in c),
                                elongation=tuple(float(v) for v in rng.uniform(0.8, 1.3, size=3)),
                                shape_seed=seed_base + k,
                                volume_ml=tuple(float(v) for v in vol), edema_ml=tuple(float(v) for v in edema),
                                density_hu=tuple(float(v) for v in density)))
    return tuple(plans)


def _scan_days(severity: float, rng: np.random.Generator) -> np.ndarray:
    p = np.asarray(FOLLOW_UP_PROBABILITIES, dtype=float)
    # Sicker patients stay in intensive care and get more control scans.
    p = p * np.exp(0.25 * severity * np.arange(len(p)))
    n_follow = int(rng.choice(len(p), p=p / p.sum()))
    days = [rng.uniform(1 / 24, 6 / 24)]  # admission CT 1-6 h after injury
    days += [rng.uniform(*FOLLOW_UP_WINDOWS[i]) for i in range(n_follow)]
    return np.round(np.asarray(days), 3)


def simulate_cohort(n_patients: int, seed: int, centers: tuple[CenterProfile, ...], id_tag: str = "") -> Cohort:
    """Patients spread over `centers`, with lesion plans and complete clinical data (no missing values yet).

    Patient IDs are `<CENTER>-<id_tag><number>`: cohorts with different tags never share an ID."""
    rng = np.random.default_rng(np.random.SeedSequence([seed, 1]))
    counts = patients_per_center(n_patients, centers, rng)
    plans: list[PatientPlan] = []
    rows: list[dict] = []
    start = dt.datetime(2016, 1, 1)
    for center, count in zip(centers, counts, strict=True):
        # Centers number their patients with gaps (screened, excluded, other studies).
        numbers = np.sort(rng.choice(np.arange(1, 3 * count + 10), size=count, replace=False))
        for number in numbers:
            pid = f"{center.code}-{id_tag}{int(number):04d}"
            pseed = int(rng.integers(2**31))
            prng = np.random.default_rng(np.random.SeedSequence([seed, 2, pseed]))
            plan, row = _simulate_patient(center.code, pid, start, pseed, prng)
            plans.append(plan)
            rows.append(row)
    clinical = pd.DataFrame(rows, columns=list(CLINICAL_COLUMNS))
    return Cohort(plans=tuple(plans), clinical_complete=clinical)


def _simulate_patient(center: str, pid: str, start: dt.datetime, pseed: int,
                      rng: np.random.Generator) -> tuple[PatientPlan, dict]:
    severity = float(rng.normal())
    age = float(np.round(16 + 79 * rng.beta(2.2, 2.8), 0))
    sex = "M" if rng.random() < 0.74 else "F"
    injury = start + dt.timedelta(minutes=int(rng.integers(0, 4 * 365 * 24 * 60)))
    days = _scan_days(severity, rng)
    head = HeadShape().scaled(float(rng.uniform(0.93, 1.05) * (0.96 if sex == "F" else 1.0)),
                              fold_phase=float(rng.uniform(0, 2 * np.pi)))

    lam = math.exp(0.25 + 0.45 * severity)
    n_lesions = int(min(3, rng.poisson(lam)))
    lesions = _lesion_plans(n_lesions, severity, days, head, pseed % 1_000_000 * 10, rng)

    extra_side: str | None = None
    extra = np.zeros(len(days))
    extra_density = float(rng.uniform(55.0, 75.0))
    evacuated = False
    if rng.random() < float(np.clip(0.2 + 0.1 * severity, 0.05, 0.6)):
        extra_side = "left" if rng.random() < 0.5 else "right"
        e0 = float(np.clip(np.exp(rng.normal(math.log(12.0) + 0.3 * severity, 0.8)), 2.0, 80.0))
        evacuated = e0 > 30.0 and rng.random() < 0.7
        extra = np.where(days <= days[0], e0, 0.0 if evacuated else e0 * np.exp(-math.log(2) * (days - days[0]) / 20))

    offsets = tuple(tuple(float(v) for v in rng.normal(0, [4.0, 5.0, 3.0])) for _ in days)
    yaws = tuple(float(v) for v in rng.normal(0, 3.0, size=len(days)))
    plan = PatientPlan(center=center, patient_id=pid, injury_datetime=injury, scan_days=tuple(float(d) for d in days),
                       lesions=lesions, extra_axial_side=extra_side, extra_axial_ml=tuple(float(v) for v in extra),
                       extra_axial_density_hu=extra_density, evacuated=evacuated, head=head,
                       head_offsets_mm=offsets, head_yaw_deg=yaws, patient_seed=pseed,
                       **_ivh_plan(severity, days, pseed), **_swelling_plan(severity, days, pseed),
                       extra_axial_shape=_extra_axial_shape(pseed))

    adm_mass = sum(les.volume_ml[0] + les.edema_ml[0] for les in lesions) + float(extra[0])
    m_latent = 0.75 * severity + 0.25 * (math.log1p(adm_mass) - 1.6) + rng.normal(0, 0.6)
    # Thresholds on the ~N(0,1) latent give motor 6/5/4/3/2/1 in about 40/12/17/9/8/14 %.
    gcs_motor = 6 - int(np.searchsorted([-0.253, 0.050, 0.496, 0.772, 1.080], m_latent))
    p_latent = 0.8 * m_latent + rng.normal(0, 0.6)
    pupils = int(np.searchsorted([0.772, 1.175], p_latent))  # about 78 % both reactive, 10 % one, 12 % none
    v_latent = m_latent + rng.normal(0, 0.5)
    eye = 4 - int(np.searchsorted([-0.3, 0.4, 1.0], v_latent))
    verbal = 5 - int(np.searchsorted([-0.6, -0.1, 0.4, 0.9], v_latent))
    extracranial = int(rng.random() < _expit(-0.6 + 0.3 * severity))
    hypoxia = int(rng.random() < _expit(-2.0 + 0.5 * severity + 0.5 * extracranial))
    hypotension = int(rng.random() < _expit(-2.2 + 0.4 * severity + 0.9 * extracranial))
    glucose = float(np.clip(np.exp(rng.normal(math.log(7.4) + 0.10 * severity + 0.04 * (age - 50) / 10, 0.22)),
                            3.0, 30.0))
    hemoglobin = float(np.clip(rng.normal(13.8 - 0.8 * extracranial - 0.6 * hypotension - 0.9 * (sex == "F"), 1.5),
                               5.0, 19.0))
    tsah = int(rng.random() < _expit(-0.3 + 0.7 * severity))
    rng.random()  # a draw once used for EDH: kept so that every variable drawn after it stays as it was
    edh = int(extra_side is not None and plan.extra_axial_shape == "lentiform")
    shift = abs(plan.series_spec(0, 0.0).midline_shift_signed_mm())
    marshall = _marshall_class(lesions, float(extra[0]), shift, evacuated, severity, tsah, rng)
    row = {"center": center, "patient_id": pid, "injury_datetime": injury.strftime("%Y-%m-%dT%H:%M"), "age": age,
           "sex": sex, "gcs_total": eye + verbal + gcs_motor, "gcs_motor": gcs_motor, "pupils_unreactive": pupils,
           "hypoxia": hypoxia, "hypotension": hypotension, "glucose_mmol_l": round(glucose, 1),
           "hemoglobin_g_dl": round(hemoglobin, 1), "marshall_ct": marshall, "tsah": tsah, "edh": edh,
           "major_extracranial_injury": extracranial}
    return plan, row


def _ivh_plan(severity: float, days: np.ndarray, pseed: int) -> dict:
    """Intraventricular blood over the scans, from its own stream (see the module doc)."""
    rng = np.random.default_rng(np.random.SeedSequence([pseed, 4]))
    if rng.random() >= _expit(-1.7 + 0.8 * severity):
        return {}
    v0 = float(np.clip(np.exp(rng.normal(math.log(3.0) + 0.3 * severity, 0.6)), 0.5, 12.0))
    half_life = rng.uniform(3.0, 6.0)
    vol = v0 * np.exp(-math.log(2) * (days - days[0]) / half_life)
    vol = np.where(vol < 0.2, 0.0, vol)  # cleared
    return {"ivh_ml": tuple(float(v) for v in vol), "ivh_density_hu": float(rng.uniform(52.0, 72.0))}


def _extra_axial_shape(pseed: int) -> str:
    """Lentiform (epidural-like) in about 3 in 10, from its own stream (see the module doc)."""
    return "lentiform" if np.random.default_rng(np.random.SeedSequence([pseed, 5])).random() < 0.3 else "crescentic"


def _swelling_plan(severity: float, days: np.ndarray, pseed: int) -> dict:
    """Diffuse swelling over the scans, from its own stream (see the module doc)."""
    rng = np.random.default_rng(np.random.SeedSequence([pseed, 6]))
    if rng.random() >= _expit(-1.8 + 0.9 * severity):
        return {}
    s0 = float(rng.uniform(20.0, 70.0))
    vol = s0 * np.exp(-math.log(2) * np.maximum(0.0, days - 5.0) / 5.0)
    return {"swelling_ml": tuple(float(v) for v in vol)}


def _marshall_class(lesions, extra_ml: float, shift: float, evacuated: bool, severity: float, tsah: int,
                    rng: np.random.Generator) -> int:
    """Marshall CT class (Marshall et al. 1991, see ANCHORS.md) as a center would read the admission scan.

    Cisterns are not rendered, so "compressed cisterns" (class III) is drawn from the latent severity.
    """
    hyperdense = sum(les.volume_ml[0] for les in lesions) + extra_ml
    if evacuated:
        return 5
    if hyperdense > 25:
        return 6
    if shift > 5:
        return 4
    if hyperdense == 0 and not tsah:
        return 1
    return 3 if severity + rng.normal(0, 0.5) > 0.9 else 2


def apply_missingness(clinical: pd.DataFrame, seed: int) -> pd.DataFrame:
    """The clinical table as sent: values missing completely at random at MISSING_RATES."""
    rng = np.random.default_rng(np.random.SeedSequence([seed, 3]))
    out = clinical.copy()
    for col, rate in MISSING_RATES.items():
        out[col] = out[col].astype("Float64" if out[col].dtype.kind == "f" else "Int64")
        out.loc[rng.random(len(out)) < rate, col] = pd.NA
    return out


__all__ = ["REGIONS", "Cohort", "LesionPlan", "PatientPlan", "apply_missingness", "simulate_cohort"]
