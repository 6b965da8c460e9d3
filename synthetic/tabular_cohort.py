"""The study's patients without images: clinical data and outcomes for patients whose CT stayed at their center.

A consortium registers many more patients than send their scans to the imaging substudy (CREACTIVE:
thousands of patients, a few hundred with CT in the repository). This cohort is drawn from the same
generative model as the imaged one (`simulate_cohort`: one latent severity per patient, the same lesions,
clinical picture and outcome model; `apply_missingness`: the same missing values), over the same centers,
from a random stream of its own, so that adding it leaves the imaged cohort exactly as it was. Its
outcomes come from the planned lesion volumes (what `--tabular-only` does); its imaging features exist
only as truth, never in the clinical or outcome CSVs.

Patient IDs are `<CENTER>-T<number>` (the imaged cohort's are `<CENTER>-<number>`): the two never share an
ID, whatever the sizes and seed.
"""

from __future__ import annotations

import numpy as np

from synthetic.centers import CenterProfile
from synthetic.cohort import simulate_cohort
from synthetic.features import timepoint_table_from_plans
from synthetic.outcomes import TabularStudy, outcomes_for_cohort

ID_TAG = "T"
# The SeedSequence branch of this cohort (the imaged cohort's streams are branches 1-7 of the study seed).
STREAM = 8


def tabular_seed(seed: int) -> int:
    """The seed of the tabular cohort of study seed `seed`: a stream of its own, so that its draws (patients,
    missing values, outcomes) are independent of the imaged cohort's, and the same for the same `seed`."""
    return int(np.random.SeedSequence([seed, STREAM]).generate_state(1)[0])


def tabular_cohort(n_patients: int, seed: int, centers: tuple[CenterProfile, ...]) -> TabularStudy:
    """`n_patients` patients without images over `centers`: clinical.csv and outcomes.csv rows (with missing
    values) and their truth, deterministic by `seed`."""
    if n_patients < 1:
        raise ValueError(f"--tabular-patients must be at least 1 (or 0 for none), not {n_patients}")
    own = tabular_seed(seed)
    cohort = simulate_cohort(n_patients, own, centers, id_tag=ID_TAG)
    return outcomes_for_cohort(cohort, timepoint_table_from_plans(cohort.plans), own)


__all__ = ["ID_TAG", "tabular_cohort", "tabular_seed"]
