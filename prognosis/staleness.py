"""Whether a stored model fit still describes the registry's data: its data snapshot against the current one.

Every ModelFit keeps the SHA-256 of the analysis table it was fitted on (`analysis_table.analysis_table_hash`).
When series, biomarkers, clinical rows or outcomes change, the analysis table built now hashes differently, and
a report or a screen that shows the old fit must say so, and how to refit. Pure: fits as dicts
(`store.model_fit_dict`) and the current hash in, the out-of-date ones and the commands that refit them out.
"""

from __future__ import annotations

import shlex
from typing import Any

# `prognosis fit`'s defaults (prognosis/cli.py): an option is written out only where the fit used another value.
_DEFAULTS = {"cv": "kfold", "imputation": "mice", "m": 5, "n_boot": 200, "seed": 0}


def is_stale(fit: dict[str, Any], current_hash: str) -> bool:
    """True when the fit was made on another data snapshot than the analysis table's now."""
    return fit["data_hash"] != current_hash


def stale_fits(fits: list[dict[str, Any]], current_hash: str) -> list[dict[str, Any]]:
    """The fits whose data snapshot is not the current one, in the given order."""
    return [f for f in fits if is_stale(f, current_hash)]


def refit_command(fit: dict[str, Any]) -> str:
    """The `ctstudy prognosis fit ...` command that fits this model again, with the settings it was fitted with."""
    spec = fit.get("spec") or {}
    words = ["ctstudy", "prognosis", "fit", "--outcome", fit["outcome"], "--features", fit["feature_set"]]
    cv = "none" if spec.get("cv", fit.get("cv")) is None else spec.get("cv", fit.get("cv"))
    settings = {"cv": cv, "imputation": spec.get("imputation", _DEFAULTS["imputation"]), "m": spec.get("m"),
                "n_boot": spec.get("n_boot"), "seed": spec.get("seed")}
    for key, value in settings.items():
        if value is not None and value != _DEFAULTS[key]:
            words += [f"--{key.replace('_', '-')}", str(value)]
    if spec.get("model_kind") in ("penalized", "boosting"):
        words += ["--model", spec["model_kind"]]
    if spec.get("age_spline_knots"):
        words += ["--age-spline", str(spec["age_spline_knots"])]
    return shlex.join(words)


def stale_notice(stale: list[dict[str, Any]], current_hash: str) -> str:
    """One paragraph in words: which fits are out of date, and what to run (plain text)."""
    if not stale:
        return ""
    ids = ", ".join(f"#{f['id']}" for f in stale)
    snapshots = sorted({f["data_hash"][:12] for f in stale})
    return (f"{len(stale)} model fit(s) ({ids}) are out of date: they were fitted on data snapshot "
            f"{', '.join(snapshots)}, and the registry's analysis table is now {current_hash[:12]} (series, "
            "biomarkers, clinical data or outcomes changed since). Their figures describe the earlier data. Refit "
            "each with the command shown, then write the report again (`ctstudy prognosis report --out DIR`).")
