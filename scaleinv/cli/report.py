"""``scaleinv report SPEC [--out DIR] [--no-pdf]``: build a report and print where it is.

Progress lines go to stderr while the report builds; the one-screen summary (files, results
and verdicts) goes to stdout.
"""

from __future__ import annotations

import argparse
import sys
import time
from collections import Counter
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np

from scaleinv.cli.exit_status import exit_status_help
from scaleinv.reports.text import format_ends, format_table

if TYPE_CHECKING:
    from scaleinv.reports.builder import BuildResult

__all__ = ["register", "cmd_report", "summary"]

_EPILOG = """\
examples:
  scaleinv report reports/scaling.toml             -> out/scaling/report.pdf
  scaleinv report my.toml --out build/my --no-pdf  LaTeX and figures only

The spec's [report] table sets the figures (param = "alpha", alphas = [1, 10, 100],
sample = [x...], window = [[lo, hi], ...]); [units] gives dimensions for the units check;
[analysis] chooses scalings, output_scalings, claims and a composition chain.

""" + exit_status_help("the report was written, whatever its verdicts say")


def register(sub: argparse._SubParsersAction) -> None:
    """Add the ``report`` subcommand to the CLI's subparsers."""
    parser = sub.add_parser(
        "report",
        help="build a LaTeX/PDF report with derivations, verdicts, results and figures",
        description="Write the report of SPEC into DIR (default out/<spec>/): report.pdf "
        "(unless --no-pdf, or without a LaTeX engine), report.tex and its figures (.pdf and "
        ".png). Prints progress to stderr and a summary to stdout: where the files are, the "
        "results table and the verdicts.",
        epilog=_EPILOG,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("spec", type=Path, help="problem spec file (TOML)")
    parser.add_argument(
        "--out", type=Path, default=None, metavar="DIR", help="output folder (default out/<spec>/)"
    )
    parser.add_argument("--no-pdf", action="store_true", help="write .tex and figures only")
    parser.set_defaults(func=cmd_report)


def cmd_report(args: argparse.Namespace) -> int:
    """Build the report, printing progress to stderr and the summary to stdout."""
    from scaleinv.reports.builder import build  # matplotlib and TeX only when asked for

    started = time.monotonic()

    def progress(line: str) -> None:
        print(f"  {time.monotonic() - started:5.1f}s  {line}", file=sys.stderr, flush=True)

    print(f"scaleinv report {args.spec}", file=sys.stderr, flush=True)
    result = build(args.spec, args.out, pdf=not args.no_pdf, progress=progress)
    print(summary(result))
    return 0


def _shown(path: Path) -> str:
    try:
        return str(path.resolve().relative_to(Path.cwd().resolve()))
    except ValueError:
        return str(path)


def summary(result: BuildResult) -> str:
    """The one-screen summary: where the files are, the results and the verdicts."""
    lines = [result.title, ""]
    if result.pdf is not None:
        lines.append(f"  PDF      {_shown(result.pdf)}")
    else:
        lines.append(f"  PDF      not built: {result.note}")
    lines.append(f"  LaTeX    {_shown(result.tex)}")
    names = sorted({f.stem for f in result.figures})
    lines.append(f"  figures  {_shown(result.figures_dir)}/ ({', '.join(names)}; .pdf and .png)")
    if result.inverse_note:
        lines += ["", result.inverse_note]
    lines += ["", "results"]
    rows = [
        [r.rule, format_ends(np.array(r.start), 4) if r.start else "--", r.steps,
         f"{r.final_loss:.4g}", _short(r.status)]
        for r in result.results
    ]  # fmt: skip
    lines.append(format_table(["rule", "start", "steps", "final loss", "status"], rows))
    lines += ["", *_verdict_lines(result)]
    return "\n".join(lines)


def _short(text: str, limit: int = 60) -> str:
    return text if len(text) <= limit else text[: limit - 1] + "…"


def _verdict_lines(result: BuildResult) -> list[str]:
    per_rule = [v for v in result.verdicts if v.check != "ledger"]
    aspects = list(dict.fromkeys((v.check, v.aspect) for v in per_rule))
    out = ["verdicts"]
    if aspects:
        headers = ["rule"] + [_column(check, k, aspects) for k, (check, _) in enumerate(aspects)]
        subjects = list(dict.fromkeys(v.subject for v in per_rule))
        table = {(v.subject, v.check, v.aspect): v.verdict for v in per_rule}
        rows = [[s] + [table.get((s, c, a), "-") for c, a in aspects] for s in subjects]
        out.append(format_table(headers, rows))
        out += [f"  {_column(c, k, aspects)}: {a}" for k, (c, a) in enumerate(aspects) if a]
    ledger = [v for v in result.verdicts if v.check == "ledger"]
    if ledger:
        counts = Counter(v.verdict for v in ledger)
        words = ", ".join(f"{n} {verdict}" for verdict, n in counts.items())
        out.append(f"ledger: {len(ledger)} claims of the chapter apply ({words})")
        flagged = [v.subject for v in ledger if v.verdict not in ("holds",)]
        if flagged:
            out.append(f"  not as written: {', '.join(flagged)} (details in the PDF)")
    return out


def _column(check: str, index: int, aspects: list[tuple[str, str]]) -> str:
    same = [k for k, (c, _) in enumerate(aspects) if c == check]
    return check if len(same) == 1 else f"{check} {same.index(index) + 1}"
