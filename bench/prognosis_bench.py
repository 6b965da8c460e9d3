"""Prognosis speed and recovery: every outcome model with 200 bootstrap repetitions on 2,000 patients.

Prints wall times (median of repeats where cheap), the machine's load average, and for the two
hot spots the ratio against the naive way measured in the same run: bootstrap AUCs by a loop over
sklearn's roc_auc_score vs one vectorized rank computation; optimism-bootstrap refits by
statsmodels Logit per replicate vs a warm-started Newton on the prebuilt design. Every fit
imputes inside each CV fold and bootstrap replicate (m = 5 in CV); the models of one study
share those imputations (prognosis.imputation.ImputationCache: each drawn once, same results), and
the bench prints how many were drawn and how many reused. Target: everything within 2 minutes on an
idle machine. With --write-doc it also writes what the methods recover
(validated AUC against the generator's oracle AUC) to docs/prognosis-simulation.md, the page the
demo's report links to.

    .venv/bin/python bench/prognosis_bench.py [--patients 2000] [--n-boot 200] [--m 5] [--write-doc]
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import time
from pathlib import Path

import numpy as np
import statsmodels.api as sm
from sklearn.metrics import roc_auc_score
from threadpoolctl import threadpool_limits

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from prognosis.analysis_table import build_analysis_table  # noqa: E402
from prognosis.fitting import analysis_tables, compare_feature_sets, fit_outcome_model  # noqa: E402
from prognosis.imputation import ImputationCache  # noqa: E402
from prognosis.kaplan_meier import kaplan_meier_by_strata, quantile_strata  # noqa: E402
from prognosis.logistic import LogisticModel  # noqa: E402
from prognosis.metrics import auc, bootstrap_aucs, stratified_bootstrap_indices  # noqa: E402
from prognosis.terms import terms_of  # noqa: E402
from synthetic.outcomes import simulate_tabular  # noqa: E402


def timed(fn, repeats: int = 1) -> tuple[float, object]:  # noqa: ANN001
    times, out = [], None
    for _ in range(repeats):
        t0 = time.perf_counter()
        out = fn()
        times.append(time.perf_counter() - t0)
    return statistics.median(times), out


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--patients", type=int, default=2000)
    ap.add_argument("--n-boot", type=int, default=200)
    ap.add_argument("--m", type=int, default=5)
    ap.add_argument("--write-doc", action="store_true", help="Write docs/prognosis-simulation.md from this run.")
    args = ap.parse_args()
    study = simulate_tabular(args.patients, seed=1)
    table = build_analysis_table(study.clinical, study.outcomes, study.patient_level)
    load = os.getloadavg()[0]
    print(f"{len(table)} patients, {args.n_boot} bootstrap repetitions, MICE m = {args.m}; load average {load:.1f} "
          f"on {os.cpu_count()} CPUs")
    truth = table[["center", "patient_id"]].merge(study.truth, on=["center", "patient_id"], how="left")
    oracle = {"mortality": auc(table["died"], truth["p_death"]),
              "unfavourable": auc(table["unfavourable"].dropna(), truth.loc[table["unfavourable"].notna(),
                                                                             "p_unfavourable"])}
    doc_rows = []

    total = 0.0
    # One study: the models that impute the same rows (feature sets, model kinds, the comparison)
    # share each imputed data set, CV fold and bootstrap replicate.
    imputations = ImputationCache()
    cpu0 = time.process_time()
    runs = [("mortality", None, "kfold"), ("unfavourable", None, "kfold"), ("mortality", None, "center"),
            ("mortality", "penalized", "kfold"), ("mortality", "boosting", "kfold"), ("gos", None, "kfold"),
            ("survival", None, "kfold")]
    for feature_set in ("clinical", "clinical+imaging"):
        for outcome, kind, cv in runs:
            c0 = time.process_time()
            t, res = timed(lambda o=outcome, k=kind, c=cv, f=feature_set: fit_outcome_model(
                table, o, f, k, cv=c, m=args.m, n_boot=args.n_boot, imputations=imputations))
            cpu_fit = time.process_time() - c0
            total += t
            headline = res.metrics.get("cv_auc", res.metrics.get("cv_auc_death", res.metrics.get("cv_harrell_c")))
            print(f"  {outcome:12s} {feature_set:16s} {res.model_kind:9s} cv={cv:6s} {t:6.2f} s wall "
                  f"{cpu_fit:6.2f} s CPU   CV AUC/C {headline:.3f}", flush=True)
            doc_rows.append((outcome, feature_set, res.model_kind, cv, headline, res.metrics.get("corrected_auc"),
                             res.metrics.get("shrinkage"), oracle.get(outcome)))
    t, comparison = timed(lambda: compare_feature_sets(table, m=args.m, n_boot=args.n_boot, imputations=imputations))
    total += t
    print(f"  clinical vs clinical+imaging comparison (2 outcomes, m={args.m})      {t:6.2f} s")
    t, _ = timed(lambda: kaplan_meier_by_strata(table, quantile_strata(table["adm_hematoma_ml"], 3)), 3)
    total += t
    print(f"  Kaplan-Meier by hematoma tertile + log-rank                   {t:6.2f} s")
    cpu = time.process_time() - cpu0
    print(f"ALL MODELS: {total:.1f} s wall, {cpu:.1f} s CPU of this process (single-threaded BLAS: the CPU time is "
          f"what the wall time would be on an idle machine; target < 120 s); load average was {load:.1f}, "
          f"now {os.getloadavg()[0]:.1f}")
    print(f"imputations: {imputations.misses} drawn, {imputations.hits} reused by models on the same rows")
    if args.write_doc:
        write_doc(doc_rows, comparison[0], len(table), args, load)

    # Hot spot 1: bootstrap AUCs.
    d0 = analysis_tables(table, ["died"], terms_of("clinical+imaging"), "mice", 1, 0)[0]
    model = LogisticModel(terms_of("clinical+imaging"), "died").fit(d0)
    y, p = d0["died"].to_numpy(float), model.predict_proba(d0)
    idx = stratified_bootstrap_indices(y, args.n_boot, 0)
    t_fast, fast = timed(lambda: bootstrap_aucs(y, p, idx), 5)
    t_naive, naive = timed(lambda: np.array([roc_auc_score(y[i], p[i]) for i in idx]), 3)
    assert np.allclose(fast, naive)
    print(f"bootstrap AUCs x{args.n_boot}: vectorized {t_fast * 1e3:.1f} ms, sklearn loop {t_naive * 1e3:.1f} ms "
          f"({t_naive / t_fast:.0f}x)")

    # Hot spot 2: optimism-bootstrap refits.
    x = model.design(d0).to_numpy()
    with threadpool_limits(1):
        t_fast, _ = timed(lambda: model.bootstrap_risks(d0, idx), 3)
        t_naive, _ = timed(lambda: [sm.Logit(y[i], x[i]).fit(disp=0) for i in idx], 1)
    with threadpool_limits(None):
        t_threads, _ = timed(lambda: [sm.Logit(y[i], x[i]).fit(disp=0) for i in idx[:50]], 1)
    print(f"{args.n_boot} logistic refits: warm Newton {t_fast:.2f} s, statsmodels Logit per replicate "
          f"{t_naive:.2f} s ({t_naive / t_fast:.1f}x); statsmodels with default BLAS threads "
          f"{t_threads * args.n_boot / 50:.2f} s (extrapolated from 50)")


def write_doc(rows: list, comparison, n: int, args, load: float) -> None:  # noqa: ANN001
    """docs/prognosis-simulation.md: what the methods recover on the simulated study, from this run."""
    def f(v) -> str:  # noqa: ANN001
        return "–" if v is None else f"{v:.3f}"

    lines = ["# What the outcome models recover on a simulated study", "",
             f"Written by `bench/prognosis_bench.py --write-doc` ({n:,} simulated patients, 5 centers, "
             f"m = {args.m} imputations, {args.n_boot} bootstrap replicates; synthetic.outcomes' known model, "
             "with clinical values missing at random). The oracle AUC is that of the generator's true risks: "
             "no model can do better on these patients. A 60-patient demo cannot show this: its validated "
             "AUCs scatter widely around these values.", "",
             "| outcome | features | model | validation | validated AUC / C | bootstrap-corrected AUC | shrinkage "
             "| oracle AUC |", "|---|---|---|---|---|---|---|---|"]
    for outcome, features, kind, cv, headline, corrected, shrink, orc in rows:
        lines.append(f"| {outcome} | {features} | {kind} | {cv} | {f(headline)} | {f(corrected)} | {f(shrink)} "
                     f"| {f(orc)} |")
    lines += ["", "Clinical vs clinical + CT biomarkers, pooled over all imputations:", "",
              "| outcome | CV AUC clinical | CV AUC + CT | ΔAUC (95% CI) | D1 p |", "|---|---|---|---|---|"]
    for _, r in comparison.iterrows():
        lines.append(f"| {r['outcome']} | {r['auc_base']:.3f} | {r['auc_full']:.3f} | {r['delta_auc']:.3f} "
                     f"({r['delta_auc_lower']:.3f} to {r['delta_auc_upper']:.3f}) | {r['d1_p']:.2g} |")
    lines += ["", f"Load average during the run: {load:.1f} (shared machine).", ""]
    path = Path(__file__).resolve().parents[1] / "docs" / "prognosis-simulation.md"
    path.write_text("\n".join(lines), encoding="utf-8")
    print(f"wrote {path}")


if __name__ == "__main__":
    main()
