"""What a report build returns: :class:`BuildResult` (its files and findings) and its rows.

Its own module so that both builders (:mod:`~scaleinv.reports.builder` and
:mod:`~scaleinv.reports.indexed_build`) return it without importing each other.
"""

from __future__ import annotations

import base64
import html
import shutil
import subprocess
import tempfile
from dataclasses import dataclass
from pathlib import Path

from scaleinv.reports.spec_verdicts import SpecVerdicts
from scaleinv.reports.verdicts import VerdictRow

__all__ = ["BuildResult", "ResultRow", "page_images"]


@dataclass(frozen=True)
class ResultRow:
    """One rule run from one start: what the results table shows."""

    rule: str
    start: tuple[float, ...]
    steps: int
    final_x: tuple[float, ...]
    final_loss: float
    status: str


@dataclass(frozen=True)
class BuildResult:
    """Where a build put its files, and what it found.

    Attributes
    ----------
    title : str
        The spec's title.
    out_dir, tex, figures_dir : Path
        The output folder, ``report.tex`` and the figures folder in it.
    pdf : Path or None
        ``report.pdf``, or None when it was not built (``note`` says why and how).
    figures : tuple of Path
        Every figure file (PDF and PNG).
    results : tuple of ResultRow
    verdicts : tuple of VerdictRow
        The rows of the report's verdict tables and its claims appendix.
    checks : SpecVerdicts
        The verdicts those rows show, the same objects ``scaleinv verify`` prints
        (:func:`~scaleinv.reports.spec_verdicts.spec_verdicts`).
    note : str
        How to get the PDF when it was not built, else ``""``.
    seconds : float
        Wall time of the build.
    inverse_note : str
        The ``note:`` line saying that a rule solves ``P(x) = y`` numerically, else ``""``
        (the driver's warning is not repeated per run).
    """

    title: str
    out_dir: Path
    tex: Path
    pdf: Path | None
    figures_dir: Path
    figures: tuple[Path, ...]
    results: tuple[ResultRow, ...]
    verdicts: tuple[VerdictRow, ...]
    checks: SpecVerdicts
    note: str
    seconds: float
    inverse_note: str = ""

    def pages(self, dpi: int = 60) -> list[bytes]:
        """The PDF's pages as PNG images (needs ``pdftoppm``; empty without a PDF)."""
        return page_images(self.pdf, dpi) if self.pdf is not None else []

    def _repr_html_(self) -> str:
        """A notebook shows the report's pages (or, without a PDF, its figures) inline."""
        images = self.pages() or [f.read_bytes() for f in self.figures if f.suffix == ".png"]
        title = html.escape(self.title)
        where = html.escape(str(self.pdf or self.tex))
        tags = "".join(
            f'<img src="data:image/png;base64,{base64.b64encode(b).decode()}" '
            'style="max-width:32%;margin:2px;border:1px solid #ccc">'
            for b in images
        )
        note = f"<p>{html.escape(self.note)}</p>" if self.note else ""
        return f"<div><b>{title}</b> — <code>{where}</code>{note}<div>{tags}</div></div>"


def page_images(pdf: Path, dpi: int = 60) -> list[bytes]:
    """Every page of ``pdf`` as PNG bytes, rendered by ``pdftoppm`` (empty if not installed)."""
    if shutil.which("pdftoppm") is None:
        return []
    with tempfile.TemporaryDirectory() as tmp:
        subprocess.run(
            ["pdftoppm", "-png", "-r", str(dpi), str(pdf), f"{tmp}/page"],
            check=True, capture_output=True, timeout=120,
        )  # fmt: skip
        return [p.read_bytes() for p in sorted(Path(tmp).glob("page-*.png"), key=_page_number)]


def _page_number(path: Path) -> int:
    return int(path.stem.rsplit("-", 1)[1])
