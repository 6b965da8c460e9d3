"""The true CT classifications of a rendered series: Marshall class and Rotterdam and Helsinki scores.

Computed from what the phantom rendered (its lesions, extra-axial shape, midline shift and cistern state)
and the patient's tSAH and evacuation, with the published definitions (shared ANCHORS.md): Marshall et al.
J Neurosurg 1991; Maas et al. Neurosurgery 2005 (Rotterdam); Raj et al. Neurosurgery 2014 (Helsinki).
Written independently of `biomarkers.ct_scores` on purpose: this is the truth that one is tested against
(and synthetic imports no other package of the project).

The Marshall "high or mixed density lesion" and the Helsinki "mass lesion" are the largest single
hemorrhagic lesion: the largest intraparenchymal hematoma or the extra-axial collection.
"""

from __future__ import annotations

from synthetic.phantom import RenderedSeries


def true_ct_classes(r: RenderedSeries, tsah: bool, evacuated: bool) -> dict[str, object]:
    """`basal_cisterns`, `edh_ml`, `sdh_ml`, `tsah`, `evacuated`, `marshall_ct_class`, `rotterdam_ct_score`,
    `helsinki_ct_score` of one rendered series."""
    cisterns = r.basal_cisterns
    if cisterns not in ("present", "compressed", "absent"):
        raise ValueError("true CT classes need the basal cisterns rendered: SeriesSpec(render_cisterns=True)")
    mass = max([les.volume_ml for les in r.lesions] + [r.extra_axial_ml])
    edh, sdh, ivh, ich = r.epidural_ml > 0, r.subdural_ml > 0, r.ivh_ml > 0, r.hematoma_ml > 0
    visible = ich or r.extra_axial_ml > 0 or ivh or r.edema_ml > 0
    shift = r.midline_shift_mm > 5.0
    if evacuated:
        marshall = 5
    elif mass > 25.0:
        marshall = 6
    elif shift:
        marshall = 4
    elif cisterns != "present":
        marshall = 3
    elif not (visible or tsah):
        marshall = 1
    else:
        marshall = 2
    cistern_points = {"present": 0, "compressed": 1, "absent": 2}[cisterns]
    rotterdam = 1 + cistern_points + int(shift) + int(not edh) + int(ivh or tsah)
    helsinki = (2 * sdh + 2 * ich - 3 * edh + 2 * (mass > 25.0) + 3 * ivh
                + {"present": 0, "compressed": 1, "absent": 5}[cisterns])
    return {"basal_cisterns": cisterns, "edh_ml": r.epidural_ml, "sdh_ml": r.subdural_ml, "tsah": int(tsah),
            "evacuated": int(evacuated), "marshall_ct_class": marshall, "rotterdam_ct_score": rotterdam,
            "helsinki_ct_score": int(helsinki)}
