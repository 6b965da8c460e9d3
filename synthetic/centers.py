"""The participating centers: scanner and protocol per center, and how patients are spread over them.

Codes and the skew of patient counts follow the CREACTIVE imaging-substudy repository table
(seeds/creactive-imaging-substudy-slides.txt, 6 Nov 2018: SI009 206, IT100 207, IT064 135,
IT544 57, IT099 45, GR001 42, ... patients). Vendors, kernels, intercepts and storage differ the
way real scanners' DICOM does.

Slice thickness: 5 mm or 2.5 mm at most centers (the routine for trauma head CT); the small
center IT101 sends 1.25 mm (from --centers 8 up). Keeping thin slices out of the five largest
centers keeps the default demo study's file count and size modest (see README).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np


@dataclass(frozen=True)
class CenterProfile:
    code: str
    institution: str
    manufacturer: str
    model: str
    kernel: str
    slice_thickness_mm: float
    fov_mm: float
    rescale_intercept: float
    pixel_representation: int  # 1 signed int16, 0 unsigned uint16
    bits_stored: int
    noise_sigma_hu: float  # at 5 mm; thinner slices are noisier (sigma ~ 1/sqrt(thickness))
    kvp: float
    mA: int
    weight: float  # relative number of patients
    pad_outside_fov: bool = False  # pixels outside the reconstruction circle set to a padding value
    descending: bool = False  # instance numbers run from the vertex down

    def noise_sigma(self) -> float:
        return self.noise_sigma_hu * float(np.sqrt(5.0 / self.slice_thickness_mm))


CATALOGUE: tuple[CenterProfile, ...] = (
    CenterProfile("SI009", "Univerzitetni klinicni center Ljubljana (synthetic)", "SIEMENS", "SOMATOM Definition AS",
                  "J40s", 5.0, 230.0, -1024.0, 0, 12, 3.5, 120.0, 320, 206.0),
    CenterProfile("IT100", "Ospedale Niguarda (synthetic)", "Philips", "Brilliance 64", "UB", 5.0, 235.0, -1000.0,
                  1, 16, 3.8, 120.0, 300, 207.0, descending=True),
    CenterProfile("IT064", "Ospedale Papa Giovanni XXIII (synthetic)", "GE MEDICAL SYSTEMS", "LightSpeed VCT",
                  "SOFT", 2.5, 225.0, -1024.0, 1, 16, 3.2, 120.0, 280, 135.0, pad_outside_fov=True),
    CenterProfile("IT544", "Ospedale San Gerardo (synthetic)", "TOSHIBA", "Aquilion ONE", "FC26", 5.0, 220.0,
                  -1024.0, 1, 16, 4.2, 120.0, 250, 57.0),
    CenterProfile("IT099", "Azienda Ospedaliera di Padova (synthetic)", "SIEMENS", "SOMATOM Force", "Hr38", 2.5,
                  220.0, -1024.0, 0, 12, 2.8, 120.0, 350, 45.0),
    CenterProfile("GR001", "University Hospital of Larissa (synthetic)", "GE MEDICAL SYSTEMS", "BrightSpeed",
                  "STANDARD", 5.0, 240.0, -1024.0, 1, 16, 4.5, 120.0, 220, 42.0, pad_outside_fov=True),
    CenterProfile("IT438", "Ospedale di Bergamo Est (synthetic)", "Philips", "iCT 256", "UB", 2.5, 230.0, -1000.0,
                  1, 16, 3.6, 120.0, 300, 10.0),
    CenterProfile("IT036", "Ospedale di Cesena (synthetic)", "SIEMENS", "SOMATOM Emotion 16", "H40s", 5.0, 225.0,
                  -1024.0, 0, 12, 4.8, 130.0, 230, 32.0),
    CenterProfile("IT442", "Ospedale di Cremona (synthetic)", "TOSHIBA", "Aquilion 64", "FC21", 5.0, 230.0,
                  -1024.0, 1, 16, 4.4, 120.0, 260, 17.0),
    CenterProfile("IT101", "Ospedale di Parma (synthetic)", "GE MEDICAL SYSTEMS", "Revolution CT", "SOFT", 1.25,
                  225.0, -1024.0, 1, 16, 3.0, 120.0, 300, 17.0),
)


def center_profiles(n_centers: int) -> tuple[CenterProfile, ...]:
    """The first n centers of the catalogue (largest first, so small studies still look like the consortium)."""
    if not 1 <= n_centers <= len(CATALOGUE):
        raise ValueError(f"--centers must be between 1 and {len(CATALOGUE)}, not {n_centers}")
    order = sorted(CATALOGUE, key=lambda c: -c.weight)
    return tuple(order[:n_centers])


def patients_per_center(n_patients: int, centers: tuple[CenterProfile, ...], rng: np.random.Generator) -> list[int]:
    """Skewed counts (multinomial on the centers' weights), at least one patient per center when possible."""
    if n_patients < 1:
        raise ValueError(f"--patients must be at least 1, not {n_patients}")
    w = np.array([c.weight for c in centers], dtype=float)
    base = np.ones(len(centers), dtype=int) if n_patients >= len(centers) else np.zeros(len(centers), dtype=int)
    rest = n_patients - int(base.sum())
    return (base + rng.multinomial(rest, w / w.sum())).tolist()
