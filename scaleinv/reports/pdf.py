"""Turn ``report.tex`` into ``report.pdf`` with latexmk (or pdflatex twice), when installed.

A LaTeX failure raises :class:`LatexError` carrying the first error line of the log, so the
user sees what broke without opening the log.
"""

from __future__ import annotations

import os
import re
import shutil
import signal
import subprocess
from collections.abc import Sequence
from pathlib import Path

from scaleinv.errors import ScaleinvError

__all__ = ["LatexError", "tex_engine", "compile_pdf", "how_to_get_pdf"]

_AUX = (".aux", ".fls", ".fdb_latexmk", ".out", ".toc")
_ERROR = re.compile(r"^(!.*|[^:\s]+\.tex:\d+:.*)$")


class LatexError(ScaleinvError):
    """LaTeX could not build the PDF; names the .tex file and the log's first error."""

    def __init__(self, tex: Path, first_error: str, log: Path | None) -> None:
        self.tex, self.first_error, self.log = tex, first_error, log
        where = f" (see {log})" if log is not None else ""
        super().__init__(f"LaTeX failed on {tex.name}: {first_error}{where}")

    def __reduce__(self) -> tuple:  # picklable, so that a build in a worker process reports it
        return (type(self), (self.tex, self.first_error, self.log))


def tex_engine() -> str | None:
    """``"latexmk"`` or ``"pdflatex"`` (the first one installed), or None."""
    for tool in ("latexmk", "pdflatex"):
        if shutil.which(tool):
            return tool
    return None


def how_to_get_pdf(directory: Path) -> str:
    """The sentence printed when no TeX is installed."""
    return (
        "no LaTeX found: install latexmk and TeX Live (e.g. apt-get install latexmk "
        "texlive-latex-base texlive-latex-recommended), then run "
        f"`latexmk -pdf report.tex` in {directory}"
    )


def first_error(log_text: str) -> str:
    """The first error line of a LaTeX log (with the ``l.<n>`` context line when present).

    Examples
    --------
    >>> first_error("This is pdfTeX\\n! Undefined control sequence.\\nl.12 \\\\foo\\n")
    'Undefined control sequence. (l.12 \\\\foo)'
    """
    lines = log_text.splitlines()
    for i, line in enumerate(lines):
        if _ERROR.match(line):
            message = line[1:].strip() if line.startswith("!") else line.strip()
            context = next((ln.strip() for ln in lines[i + 1 : i + 8] if ln.startswith("l.")), "")
            return f"{message} ({context})" if context else message
    return "no error line in the log (LaTeX stopped without one)"


def compile_pdf(tex: Path, timeout: float = 180.0, keep_fds: Sequence[int] = ()) -> Path:
    """Build ``tex`` into a PDF next to it; returns the PDF path.

    Runs ``latexmk -pdf -interaction=nonstopmode -halt-on-error`` (or ``pdflatex`` twice) in
    the .tex file's folder and removes the auxiliary files afterwards (the log stays). LaTeX
    runs with shell escape off and may read and write files only in that folder (kpathsea's
    paranoid ``openin_any``/``openout_any``; packages come from the TeX tree as usual). It
    runs in its own process group, which is killed when the build is interrupted, times out
    or fails, so no ``pdflatex`` outlives the build. ``keep_fds`` stay open in LaTeX's
    processes (the output folder's build lock: held while any of them runs).

    Raises
    ------
    LatexError
        With the log's first error line when LaTeX fails, or when no engine is installed.
    """
    engine = tex_engine()
    if engine is None:
        raise LatexError(tex, how_to_get_pdf(tex.parent), None)
    flags = ["-no-shell-escape", "-interaction=nonstopmode", "-halt-on-error", "-file-line-error"]
    if engine == "latexmk":
        commands = [["latexmk", "-pdf", "-norc", "-quiet", *flags, tex.name]]
    else:
        commands = [["pdflatex", *flags, tex.name]] * 2
    log = tex.with_suffix(".log")
    folder = str(tex.parent.resolve())
    env = {**os.environ, "openin_any": "p", "openout_any": "p", "TEXMFOUTPUT": folder}
    for command in commands:
        process = subprocess.Popen(
            command, cwd=folder, stdin=subprocess.DEVNULL, stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT, text=True, errors="replace", env=env,
            start_new_session=True, pass_fds=tuple(keep_fds),
        )  # fmt: skip
        try:
            stdout, _ = process.communicate(timeout=timeout)
        except subprocess.TimeoutExpired:
            raise LatexError(tex, f"{engine} did not finish within {timeout:g} s", log) from None
        finally:
            _kill_group(process)
        if process.returncode != 0:
            text = log.read_text(errors="replace") if log.exists() else stdout
            raise LatexError(tex, first_error(text), log if log.exists() else None)
    pdf = tex.with_suffix(".pdf")
    if not pdf.exists():
        raise LatexError(tex, f"{engine} finished but wrote no PDF", log)
    for suffix in _AUX:
        tex.with_suffix(suffix).unlink(missing_ok=True)
    return pdf


def _kill_group(process: subprocess.Popen) -> None:
    """Kill what is left of the process group LaTeX ran in (e.g. pdflatex under latexmk)."""
    try:
        os.killpg(process.pid, signal.SIGKILL)
    except (ProcessLookupError, PermissionError):
        pass  # the group is gone already
    process.wait()
