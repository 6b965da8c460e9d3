"""The report's PDF: printed by headless Chromium after the page's scripts ran; without Chromium, a clear reason."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from prognosis.report_pdf import ENV_BROWSER, PdfUnavailable, find_browser, html_to_pdf

# The page is one short line until its script runs; then it fills several pages (the report's figures are drawn
# by Plotly's script the same way).
SCRIPTED = """<html><body><h1>Report</h1><div id="figure"></div><script>
document.getElementById('figure').innerHTML = Array.from({length: 400}, (_, i) => '<p>row ' + i + '</p>').join('');
</script></body></html>"""


def _pages(pdf: bytes) -> int:
    return len(re.findall(rb"/Type\s*/Page(?!s)", pdf))


@pytest.mark.skipif(find_browser() is None, reason="no Chromium installed: the PDF is not printed (HTML only)")
def test_pdf_is_printed_after_the_pages_scripts_ran(tmp_path: Path) -> None:
    html = tmp_path / "report.html"
    html.write_text(SCRIPTED, encoding="utf-8")
    pdf = html_to_pdf(html, tmp_path / "report.pdf")
    data = pdf.read_bytes()
    assert data.startswith(b"%PDF-") and _pages(data) >= 3  # the script's 400 rows, not one heading
    assert not (tmp_path / "report.pdf.part").exists()


def test_without_chromium_the_reason_is_given_and_nothing_is_written(tmp_path: Path, monkeypatch) -> None:
    monkeypatch.setenv(ENV_BROWSER, str(tmp_path / "no-such-browser"))
    html = tmp_path / "report.html"
    html.write_text(SCRIPTED, encoding="utf-8")
    with pytest.raises(PdfUnavailable, match="no PDF: no Chromium found"):
        html_to_pdf(html, tmp_path / "report.pdf")
    assert not any(tmp_path.glob("report.pdf*"))
