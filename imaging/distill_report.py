"""The distillation report a study lead decides on: tables with human labels, saved next to the student.

Pure (a `DistillResult` in, tables and text out) apart from `write_report`, which writes
`<student>.report.md` (readable), `<student>.report.json` (everything, for tools) and
`<student>.agreement.csv` (one row per held-out series, comparison and class). Series appear by
digest (`imaging.train.uid_digest`), as in the checkpoint, because the report travels with the
model.
"""

from __future__ import annotations

import json
import math
from pathlib import Path
from typing import Any

import pandas as pd

from imaging.distill import DistillResult, plain
from imaging.train import uid_digest
from vocabulary.labels import BY_KEY

# Below this many held-out series containing a class, its agreement is printed but called too thin to judge.
MIN_SERIES_TO_JUDGE = 5
# A student more than this below the teacher against readers (Dice) is flagged.
MANUAL_DICE_MARGIN = 0.05


def _num(v: Any, digits: int = 3) -> str:
    if v is None or (isinstance(v, float) and math.isnan(v)):
        return "–"
    return f"{v:.{digits}f}" if isinstance(v, float) else str(v)


def _class_name(key: str) -> str:
    return BY_KEY[key].name if key in BY_KEY else key


def ratio_text(ratio: float | None) -> str:
    if not ratio:
        return "not measured"
    return f"{ratio:.0f}x" if ratio >= 10 else f"{ratio:.2f}x"


def sample_table(result: DistillResult) -> pd.DataFrame:
    s = result.sample
    g = s.groupby("stratum", sort=True)
    return pd.DataFrame({
        "Center / scanner": list(g.groups),
        "Series": g.size().tolist(),
        "Patients": g["patient_key"].nunique().tolist(),
        "Manual labels": g["label_source"].apply(lambda x: int((x == "manual").sum())).tolist(),
        "Teacher labels": g["label_source"].apply(lambda x: int((x == "teacher").sum())).tolist(),
        "Held out": g["held_out"].sum().astype(int).tolist(),
        "Left out": g["label_source"].apply(lambda x: int((x == "skipped").sum())).tolist(),
    })


def student_teacher_table(result: DistillResult) -> pd.DataFrame:
    if result.summary.empty:
        return pd.DataFrame()
    s = result.summary[result.summary["comparison"] == "student_vs_teacher"]
    return pd.DataFrame({
        "Class": [_class_name(k) for k in s["class"]],
        "Held-out series with class": s["with_class"].astype(int).tolist(),
        "Dice, mean (SD)": [f"{_num(m)} ({_num(sd)})" for m, sd in zip(s["dice_mean"], s["dice_sd"], strict=True)],
        "Dice, pooled": [_num(v) for v in s["dice_pooled"]],
        "Absolute volume difference, median mL": [_num(v, 2) for v in s["abs_volume_diff_ml_median"]],
        "Absolute volume difference, mean mL": [_num(v, 2) for v in s["abs_volume_diff_ml_mean"]],
        "Teacher volume, mean mL": [_num(v, 2) for v in s["ref_ml_mean"]],
    })


def manual_table(result: DistillResult) -> pd.DataFrame:
    """Teacher and student against manual annotations of held-out series, side by side; empty when none."""
    if result.summary.empty:
        return pd.DataFrame()
    t = result.summary[result.summary["comparison"] == "teacher_vs_manual"].set_index("class")
    st = result.summary[result.summary["comparison"] == "student_vs_manual"].set_index("class")
    if st.empty:
        return pd.DataFrame()
    classes = list(st.index)
    get = lambda df, k, col: df.at[k, col] if k in df.index else None  # noqa: E731
    return pd.DataFrame({
        "Class": [_class_name(k) for k in classes],
        "Annotated series with class": [int(st.at[k, "with_class"]) for k in classes],
        "Teacher Dice, mean": [_num(get(t, k, "dice_mean")) for k in classes],
        "Student Dice, mean": [_num(get(st, k, "dice_mean")) for k in classes],
        "Teacher Dice, pooled": [_num(get(t, k, "dice_pooled")) for k in classes],
        "Student Dice, pooled": [_num(get(st, k, "dice_pooled")) for k in classes],
        "Teacher abs. volume difference, median mL": [_num(get(t, k, "abs_volume_diff_ml_median"), 2)
                                                      for k in classes],
        "Student abs. volume difference, median mL": [_num(get(st, k, "abs_volume_diff_ml_median"), 2)
                                                      for k in classes],
    })


def cost_table(result: DistillResult) -> pd.DataFrame:
    c = result.cost
    return pd.DataFrame({
        "Model": ["Teacher", "Student"],
        "Device": [c["teacher_device"], c["student_device"]],
        "Seconds per scan, median": [_num(c["teacher_s_per_scan"], 3), _num(c["student_s_per_scan"], 3)],
        "Scans timed": [c["teacher_scans"], c["student_scans"]],
        "Timed on": [c["teacher_basis"], "held-out scans in this run"],
    })


def cautions(result: DistillResult) -> list[str]:
    """What a reader must know before trusting the student, from the figures themselves."""
    out = []
    if result.summary.empty:
        return ["No held-out series could be compared: the report says nothing about the student's agreement."]
    s = result.summary[result.summary["comparison"] == "student_vs_teacher"]
    for r in s.to_dict("records"):
        if r["with_class"] < MIN_SERIES_TO_JUDGE:
            out.append(f"{_class_name(r['class'])}: only {int(r['with_class'])} held-out series contain it (teacher or "
                       f"student); too few to judge (need {MIN_SERIES_TO_JUDGE}). Distil on more series.")
    t = result.summary[result.summary["comparison"] == "teacher_vs_manual"].set_index("class")
    st = result.summary[result.summary["comparison"] == "student_vs_manual"].set_index("class")
    for k in st.index.intersection(t.index):
        td, sd = t.at[k, "dice_mean"], st.at[k, "dice_mean"]
        if not (math.isnan(td) or math.isnan(sd)) and sd < td - MANUAL_DICE_MARGIN:
            out.append(f"{_class_name(k)}: against manual annotations the student (Dice {sd:.3f}) is more than "
                       f"{MANUAL_DICE_MARGIN} below the teacher ({td:.3f}).")
    if st.empty:
        out.append("No held-out series has a manual annotation: agreement with the teacher is all this report "
                   "shows, and the student inherits the teacher's errors. Import a few annotations "
                   "(`ctstudy registry import-annotations`) to see both against readers.")
    if result.skipped:
        out.append(f"{len(result.skipped)} drawn series were left out (listed in the JSON report).")
    start = result.metadata.get("start")
    if start and result.model.metadata["metrics"]["best_epoch"] == 0:
        out.append(f"The student is its start ({start['name']}) unchanged: no trained epoch agreed better with the "
                   "teacher on the validation patients.")
    return out


def _markdown_table(df: pd.DataFrame) -> str:
    # Hand-written (four lines) rather than pandas.to_markdown, which needs the tabulate package.
    if df.empty:
        return "_none_\n"
    head = "| " + " | ".join(map(str, df.columns)) + " |"
    rule = "|" + "|".join("---" for _ in df.columns) + "|"
    body = ["| " + " | ".join(str(v) for v in row) + " |" for row in df.itertuples(index=False)]
    return "\n".join([head, rule, *body]) + "\n"


def report_markdown(result: DistillResult, model_path: Path, version: str) -> str:
    m, c = result.metadata, result.cost
    teacher, learned = m["teacher"], m["learned_from"]
    held = result.sample[result.sample["held_out"]]
    ratio = ratio_text(c["ratio"])
    lines = [
        f"# Distilled student: {result.model.name}",
        "",
        f"- Student: `{model_path.name}`, version {version[:16]}, created {m['created_at']}.",
        f"- Teacher: {teacher['name']} (`{teacher['spec']}`), version {teacher['version'][:16]}, "
        f"{len(teacher['members'])} ensemble member(s), on {teacher['device']}.",
        f"- Learned from {learned['series']} series of {learned['patients']} patients "
        f"({learned['label_sources']['manual']} with manual annotations, which take precedence; "
        f"{learned['label_sources']['teacher']} with the teacher's masks); "
        f"held out for validation: {len(held)} series of {held['patient_key'].nunique()} patients.",
        f"- Teacher labels: {len(result.teacher_labelled)} made in this run, {len(result.teacher_reused)} reused "
        "from earlier runs (stored as segmentation runs of the teacher).",
        f"- Cost per scan: teacher {_num(c['teacher_s_per_scan'])} s, student {_num(c['student_s_per_scan'])} s "
        f"(the student is {ratio} faster).",
        "",
        "## Sample by center and scanner",
        "",
        _markdown_table(sample_table(result)),
        "## Student against teacher, held-out series",
        "",
        _markdown_table(student_teacher_table(result)),
        "## Teacher and student against manual annotations, held-out series",
        "",
        _markdown_table(manual_table(result)),
        "## Cost per scan, measured in this run",
        "",
        _markdown_table(cost_table(result)),
        "## Before trusting the student",
        "",
        "Agreement with the teacher measures how well the student copies it, not accuracy: the student "
        "inherits the teacher's errors. Dice is 2|A∩B|/(|A|+|B|) per series over series where either mask "
        "has the class (mean, SD) and over all their voxels together (pooled).",
        "",
        *[f"- {x}" for x in cautions(result)],
        "",
    ]
    return "\n".join(lines)


def report_paths(model_path: Path) -> dict[str, Path]:
    stem = model_path.with_suffix("")
    return {"markdown": Path(f"{stem}.report.md"), "json": Path(f"{stem}.report.json"),
            "csv": Path(f"{stem}.agreement.csv")}


def write_report(result: DistillResult, model_path: Path, version: str) -> dict[str, Path]:
    """Write the three report files next to the student checkpoint; returns their paths."""
    paths = report_paths(model_path)
    paths["markdown"].write_text(report_markdown(result, model_path, version), encoding="utf-8")
    payload = {
        "model": {"path": model_path.name, "version": version, "name": result.model.name},
        "distillation": result.metadata,
        "summary": plain(result.summary.to_dict("records")),
        "sample": plain(sample_table(result).to_dict("records")),
        "teacher_labelled_this_run": len(result.teacher_labelled),
        "teacher_reused": len(result.teacher_reused),
        "left_out": [{"series_digest": uid_digest(u), "reason": r.replace(u, uid_digest(u))}
                     for u, r in result.skipped.items()],
        "cautions": cautions(result),
    }
    paths["json"].write_text(json.dumps(payload, indent=2, default=str), encoding="utf-8")
    result.per_series.to_csv(paths["csv"], index=False)
    return paths
