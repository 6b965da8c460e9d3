"""The report as PDF: the HTML report printed by a headless Chromium, where one is installed.

The HTML report draws its figures with Plotly's JavaScript, so a PDF of the same report needs a browser
engine; a pure-Python HTML-to-PDF library runs no JavaScript and would print empty figure boxes. Chromium
is used at run time only where present (Debian's `chromium`, or Chrome), never required: without it the
HTML report is written as always and the caller says why there is no PDF.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import tempfile
from pathlib import Path

BROWSERS = ("chromium", "chromium-browser", "google-chrome", "google-chrome-stable")
ENV_BROWSER = "CTSTUDY_CHROMIUM"  # a browser binary to use instead of searching PATH
# Virtual time the page gets to run its scripts (draw the figures) before it is printed.
RENDER_BUDGET_MS = 15000


class PdfUnavailable(RuntimeError):
    """No browser to print with, or it failed: the message says which and what to do."""


def find_browser() -> str | None:
    """The headless-capable browser to print with: $CTSTUDY_CHROMIUM, else the first of BROWSERS on PATH."""
    chosen = os.environ.get(ENV_BROWSER)
    if chosen:
        return chosen if Path(chosen).exists() else None
    for name in BROWSERS:
        found = shutil.which(name)
        if found:
            return found
    return None


def html_to_pdf(html_path: Path, pdf_path: Path, timeout_s: float = 180.0) -> Path:
    """Print `html_path` to `pdf_path` with a headless Chromium; PdfUnavailable says why it could not."""
    browser = find_browser()
    if browser is None:
        raise PdfUnavailable(f"no PDF: no Chromium found (looked for {', '.join(BROWSERS)} on PATH, and "
                             f"${ENV_BROWSER}); install chromium for a PDF, or print the HTML report from a browser")
    pdf_path = pdf_path.resolve()
    partial = pdf_path.with_name(pdf_path.name + ".part")
    with tempfile.TemporaryDirectory(prefix="ctstudy-chromium-") as profile:
        command = [browser, "--headless", "--disable-gpu", "--no-sandbox", "--no-pdf-header-footer",
                   f"--user-data-dir={profile}", f"--virtual-time-budget={RENDER_BUDGET_MS}",
                   f"--print-to-pdf={partial}", html_path.resolve().as_uri()]
        try:
            done = subprocess.run(command, capture_output=True, text=True, timeout=timeout_s, check=False)
        except subprocess.TimeoutExpired as exc:
            partial.unlink(missing_ok=True)
            raise PdfUnavailable(f"no PDF: {browser} did not finish printing {html_path} within {timeout_s:.0f} s"
                                 ) from exc
    if done.returncode != 0 or not partial.exists() or partial.stat().st_size == 0:
        partial.unlink(missing_ok=True)
        tail = (done.stderr or done.stdout or "").strip().splitlines()[-3:]
        raise PdfUnavailable(f"no PDF: {browser} failed on {html_path} (exit {done.returncode}): {' | '.join(tail)}")
    partial.replace(pdf_path)
    return pdf_path
