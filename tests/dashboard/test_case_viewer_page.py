"""Case viewer page and the display arithmetic behind it."""

from __future__ import annotations

import json

import numpy as np
import pandas as pd
import streamlit as st
from dashboard_apptest import COORD2, STAT, page
from dashboard_registry_factory import VOXEL_ML, mask_zyx
from sqlalchemy import select
from sqlalchemy.orm import Session

from dashboard import case_view, figures, imageview
from registry.db.engine import make_engine
from registry.db.models import Patient, Series, Study
from vocabulary.labels import LESION_CLASSES


def test_window_maps_level_minus_half_width_to_black_and_plus_half_to_white() -> None:
    grey = imageview.windowed_uint8(np.array([-1000, 0, 40, 80, 3000]), *imageview.WINDOW_PRESETS["brain"])
    assert grey.tolist() == [0, 0, 127, 255, 255]
    bone = imageview.windowed_uint8(np.array([-800, 600, 2000]), *imageview.WINDOW_PRESETS["bone"])
    assert bone.tolist() == [0, 127, 255]


def test_overlay_paints_each_class_in_its_colour_from_the_label_map_only_where_labelled() -> None:
    grey = np.full((2, 3), 100, np.uint8)
    rgb = imageview.overlay_rgb(grey, np.array([[0, 1, 2], [3, 4, 0]], np.uint8), alpha=1.0)
    assert rgb[0, 0].tolist() == [100, 100, 100] and rgb[1, 2].tolist() == [100, 100, 100]
    painted = [rgb[0, 1].tolist(), rgb[0, 2].tolist(), rgb[1, 0].tolist(), rgb[1, 1].tolist()]
    for c, colour in zip(LESION_CLASSES, painted, strict=True):
        assert colour == [int(c.colour[i:i + 2], 16) for i in (1, 3, 5)], c.key
    assert len({tuple(v) for v in painted}) == 4  # four distinguishable colours
    legend = imageview.legend_html()
    assert all(c.colour in legend and c.name in legend for c in LESION_CLASSES)
    assert "Intraventricular" not in imageview.legend_html({1, 3})


def test_thumbnails_and_richest_slice() -> None:
    assert imageview.thumbnail_indices(5, 8) == [0, 1, 2, 3, 4]
    picks = imageview.thumbnail_indices(100, 8)
    assert len(picks) == 8 and picks[0] == 10 and picks[-1] == 89
    labels = np.zeros((6, 4, 4), np.uint8)
    labels[4, :2, :2] = 1
    assert imageview.richest_slice(labels, 6) == 4 and imageview.richest_slice(None, 6) == 3


def test_case_viewer_shows_timeline_volumes_and_masks(small) -> None:
    _, uids = small
    at = page("3_Case_viewer.py", STAT)
    assert not at.exception
    assert len(at.selectbox(key="case_patient").options) == 5
    assert at.selectbox(key="case_patient").value == "pA1aaaaaaaaaaaaa"  # the largest lesion (S2: 63 mL)
    volumes = at.dataframe[0].value
    assert sorted(volumes["IPH (mL)"].tolist()) == ["11.0", "12.5", "18.0"]  # S1 auto + manual, S2 auto
    assert at.selectbox(key="case_series_pA1aaaaaaaaaaaaa").value == uids["S1"]  # the series with masks first
    assert at.radio(key=f"case_mask_{uids['S1']}").options == ["automatic", "manual", "none"]
    assert at.slider(key=f"case_slice_{uids['S1']}_automatic").value == 5  # the slice with most lesion voxels
    truth = mask_zyx()
    hematoma, edema = (truth == 1).sum() * VOXEL_ML, (truth == 3).sum() * VOXEL_ML
    assert any(f"automatic mask: Intraparenchymal hematoma / contusion {hematoma:.1f} mL, Extra-axial hemorrhage 0.0 "
               f"mL, Perilesional edema {edema:.1f} mL" in c.value for c in at.caption)
    assert any("Intraventricular hemorrhage" in m.value and "#9467bd" in m.value for m in at.markdown)  # the legend
    at.radio(key=f"case_mask_{uids['S1']}").set_value("manual")
    at.radio(key="case_window").set_value("bone").run()
    assert not at.exception
    assert any(f"manual mask: Intraparenchymal hematoma / contusion {hematoma:.1f} mL" in c.value
               and "Perilesional edema 0.0 mL" in c.value for c in at.caption)


def test_opens_on_a_patient_with_findings_not_the_one_with_most_scans(small) -> None:
    home, _ = small
    engine = make_engine(home.db_url)
    with Session(engine) as s, s.begin():  # pC1 (no biomarkers, no lesion) gets the most scans
        patient = s.scalar(select(Patient).where(Patient.pseudo_id == "pC1ccccccccccccc"))
        for k in range(4):
            study = Study(study_instance_uid=f"1.2.826.0.1.3680043.10.998.{k}", patient=patient)
            s.add(Series(series_instance_uid=f"1.2.826.0.1.3680043.10.997.{k}", study=study, qc_status="passed"))
    engine.dispose()
    st.cache_data.clear()
    at = page("3_Case_viewer.py", STAT)
    assert not at.exception
    assert at.selectbox(key="case_patient").value == "pA1aaaaaaaaaaaaa"
    labels = at.selectbox(key="case_patient").options
    assert any(o.startswith("pA1aaaaaaaaaaaaa") and "lesions up to 63.0 mL" in o for o in labels)
    assert any(o.startswith("pC1ccccccccccccc") and "5 series" in o and "lesions" not in o for o in labels)


def test_series_without_files_or_features_says_so(small) -> None:
    at = page("3_Case_viewer.py", STAT)
    at.selectbox(key="case_patient").set_value("pA2aaaaaaaaaaaaa").run()  # switching patients keeps working
    assert not at.exception
    at.selectbox(key="case_patient").set_value("pC1ccccccccccccc").run()
    assert not at.exception
    assert any("No imaging biomarkers for this patient yet" in i.value for i in at.info)
    assert at.selectbox(key="case_series_pC1ccccccccccccc").options[0].startswith("day unknown")
    assert any("No image files are registered" in i.value for i in at.info)


def test_coordinator_lists_only_own_center_patients(small) -> None:
    at = page("3_Case_viewer.py", COORD2)
    assert not at.exception
    options = at.selectbox(key="case_patient").options  # labels: "pseudo_id · center · n series[ · lesions]"
    assert [o.split(" · ")[:2] for o in options] == [["pA2aaaaaaaaaaaaa", "IT02"], ["pB2bbbbbbbbbbbbb", "IT02"]]


def _class_features() -> pd.DataFrame:
    """Two scans of one patient with every lesion class measured: the second has 45.8 mL of extra-axial blood."""
    return pd.DataFrame({"series_uid": ["1.2.3", "1.2.4"], "source": ["segmentation"] * 2,
                         "days_from_injury": [0.2, 2.5], "hematoma_ml": [3.0, 4.0], "iph_ml": [3.0, 4.0],
                         "eah_ml": [20.0, 45.8], "edema_ml": [1.0, 2.0], "ivh_ml": [0.0, 1.5],
                         "midline_shift_mm": [2.0, 6.5], "lesion_count": [1.0, 2.0]})


def test_volume_chart_draws_every_lesion_class_in_its_colour() -> None:
    fig = figures.volumes_over_time_figure(_class_features())
    lines = {t.name: t for t in fig.data}  # legend: class, mask source
    assert set(lines) == {f"{c.name}, Automatic segmentation" for c in LESION_CLASSES}
    extra_axial = lines["Extra-axial hemorrhage, Automatic segmentation"]
    assert list(extra_axial.y) == [20.0, 45.8] and extra_axial.line.color == "#ff7f0e"
    assert fig.layout.xaxis.title.text == "Day from injury (days)"
    undated = figures.volumes_over_time_figure(_class_features().assign(days_from_injury=None))
    assert list(undated.data[0].x) == [1, 2] and "no injury time" in undated.layout.xaxis.title.text


def test_scan_table_keeps_ivh_midline_shift_and_lesions_under_short_headings() -> None:
    scans = case_view.scan_table(_class_features().assign(days_from_injury=[None, 2.5]))
    assert list(scans.table.columns) == ["Day", "Mask", "IPH (mL)", "EAH (mL)", "Edema (mL)", "IVH (mL)",
                                         "Midline shift (mm)", "Lesions"]
    assert sum(len(c) for c in scans.table.columns) < 80  # eight narrow columns fit beside the sidebar
    assert scans.table.iloc[1].tolist() == ["2.5", "Automatic segmentation", "4.0", "45.8", "2.0", "1.5", "6.5", "2"]
    assert scans.table.iloc[0, 0] == "unknown"
    assert "Intraventricular hemorrhage volume" in scans.help["IVH (mL)"]
    two_class = case_view.scan_table(_class_features().drop(columns=["iph_ml", "eah_ml", "ivh_ml"]))
    assert two_class.table["IPH (mL)"].tolist() == ["3.0", "4.0"] and two_class.table["EAH (mL)"].tolist() == ["", ""]


def test_patient_without_injury_time_gets_a_message_not_an_empty_timeline(small) -> None:
    at = page("3_Case_viewer.py", STAT)
    at.selectbox(key="case_patient").set_value("pC1ccccccccccccc").run()
    assert not at.exception
    assert any("No injury time in this patient's clinical data" in i.value for i in at.info)
    assert "case_timeline" not in [getattr(e, "key", None) for e in at._tree if getattr(e, "type", "") != "dataframe"]
    assert not any(getattr(e.proto, "id", "").endswith("case_timeline") for e in at._tree if hasattr(e, "proto"))


def test_slice_viewer_zooms_has_window_presets_and_steps_through_slices(small) -> None:
    _, uids = small
    at = page("3_Case_viewer.py", STAT)
    slider = f"case_slice_{uids['S1']}_automatic"
    assert at.radio(key="case_window").options == ["brain 40/80", "subdural 75/215", "bone 600/2800"]
    charts = [json.loads(e.proto.spec) for e in at._tree if hasattr(getattr(e, "proto", None), "spec")]
    image = next(c for c in charts if c["data"] and c["data"][0]["type"] == "image")
    assert image["layout"]["dragmode"] == "zoom" and image["data"][0]["source"].startswith("data:image/png")
    assert image["layout"]["uirevision"]  # the zoom stays while stepping through slices
    assert at.slider(key=slider).value == 5
    at.button(key=f"case_next_{uids['S1']}").click().run()
    assert at.slider(key=slider).value == 6 and any(c.value.startswith("slice 6/8") for c in at.caption)
    at.button(key=f"case_prev_{uids['S1']}").click().run()
    at.button(key=f"case_prev_{uids['S1']}").click().run()
    assert at.slider(key=slider).value == 4
