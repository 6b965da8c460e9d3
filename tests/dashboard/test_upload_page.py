"""The Upload page: who may upload, and for which center."""

from __future__ import annotations

from dashboard_apptest import ADMIN, COORD1, INV, page


def test_upload_page_is_refused_to_roles_that_do_not_upload(small) -> None:
    at = page("8_Upload.py", INV)
    assert [e.value for e in at.error] == ["Only coordinators (for their center) and administrators upload data."]
    assert not at.tabs


def test_coordinator_uploads_for_their_own_center_only(small) -> None:
    at = page("8_Upload.py", COORD1)
    assert not at.error and [t.label for t in at.tabs] == ["DICOM", "Clinical or outcome table"]
    assert "Uploads are stored for center IT01." in [c.value for c in at.caption]
    assert not at.selectbox  # no choice of center
    assert any("Rows of other centers are refused." in c.value for c in at.caption)


def test_admin_chooses_any_center_or_a_new_one(small) -> None:
    at = page("8_Upload.py", ADMIN)
    center = at.selectbox(key="upload_center")
    assert "IT01" in center.options and "IT02" in center.options and center.options[-1] == "another center..."
    at = center.select("another center...").run()
    assert at.text_input(key="upload_new_center") is not None
