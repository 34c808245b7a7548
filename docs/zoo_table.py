"""Write ``docs/zoo.md``: what scaleinv finds on every problem of the zoo (``reports/zoo/``).

Per problem, from actual runs: whether the local inverse has a closed form and how many branch
families it has (each repeating with its period where it has one), which rules converge to the
target from the study's starts (the fraction of its ``[study]`` region), and ``scaleinv
verify``'s verdicts on units and scale invariance. The rows are kept in ``docs/zoo.json``, so
that rerunning a few problems keeps the others::

    python docs/zoo_table.py                  # every problem (about a minute per core and 10)
    python docs/zoo_table.py --jobs 4         # in 4 processes
    python docs/zoo_table.py reports/zoo/polar.toml reports/zoo/snell.toml   # these rows only
    python docs/zoo_table.py --markdown-only  # rewrite zoo.md from zoo.json

A problem that fails keeps a row that says where and why.
"""

from __future__ import annotations

import argparse
import json
import resource
import warnings
from concurrent.futures import ProcessPoolExecutor, as_completed
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
ZOO = ROOT / "reports" / "zoo"
JSON = ROOT / "docs" / "zoo.json"
MARKDOWN = ROOT / "docs" / "zoo.md"
#: A run whose loss ends at most this has reached the target (every zoo target is reachable).
AT_TARGET = 1e-12
RULES = ("GD", "Newton", "IG", "PG")


def problem_row(path: Path) -> dict[str, Any]:
    """Derive, study and verify one spec; the row of the table as plain data."""
    import numpy as np

    from scaleinv import load_spec
    from scaleinv.errors import NumericInverseWarning
    from scaleinv.reports.spec_verdicts import spec_verdicts
    from scaleinv.reports.study import run_study

    began = _cpu_seconds()
    row: dict[str, Any] = {"stem": path.stem}
    stage = "load"
    try:
        spec = load_spec(path)
        p = spec.problem
        row.update(title=spec.title, n=p.n, m=p.m, units=bool(spec.units))
        stage = "derive"
        inverse = p.local_inverse()
        row["closed_form"] = not inverse.numeric
        row["families"] = len(inverse.branches)
        row["periodic"] = any(t is not None for b in inverse.branches for t in b.period)
        row["inverse_note"] = "" if not inverse.numeric else inverse.reason
        stage = "study"
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", NumericInverseWarning)
            study = run_study(spec)
        target = [k for k, m in enumerate(study.minima) if m.loss <= AT_TARGET]
        row["starts"] = len(study.starts)
        row["converged"] = {
            r.label: {
                "target": float(np.isin(r.outcome, target).mean()),
                "elsewhere": float(((r.outcome >= 0) & ~np.isin(r.outcome, target)).mean()),
            }
            for r in study.rules
        }
        stage = "verify"
        checks = spec_verdicts(spec)
        row["checks"] = [
            {
                "rule": c.label.split(" (")[0],
                "check": c.check,
                "verdict": c.verdict,
                "failed": c.failed,
            }
            for c in checks.rows
        ]
    except Exception as err:  # noqa: BLE001 - the table says which problem broke, and how
        row["error"] = f"{stage}: {type(err).__name__}: {' '.join(str(err).split())[:300]}"
    row["seconds"] = round(_cpu_seconds() - began, 1)
    return row


def _cpu_seconds() -> float:
    """CPU time of this process, its finished children and the symbolic budgets' workers
    (children of a fork server): what a row costs on an idle machine, whatever the load."""
    from scaleinv.symbolic.budget import worker_cpu_seconds

    return worker_cpu_seconds() + sum(
        u.ru_utime + u.ru_stime
        for u in (
            resource.getrusage(resource.RUSAGE_SELF),
            resource.getrusage(resource.RUSAGE_CHILDREN),
        )
    )


_MARK = {
    "consistent": "✓",
    "proved": "✓",
    "inconsistent": "✗",
    "refuted": "✗",
    "not checked": "–",
    "undecided": "?",
}


def _verdicts(row: dict[str, Any], check: str) -> str:
    found = [c for c in row.get("checks", []) if c["check"] == check]
    if not found:
        return "–"
    return " ".join(
        f"{c['rule']} {_MARK.get(c['verdict'], c['verdict'])}{' (!)' if c['failed'] else ''}"
        for c in found
    )


def _converged(row: dict[str, Any]) -> str:
    parts = []
    for rule, share in row.get("converged", {}).items():
        text = f"{rule} {share['target']:.0%}"
        if share["elsewhere"] >= 0.005:
            text += f" (+{share['elsewhere']:.0%} elsewhere)"
        parts.append(text)
    return ", ".join(parts) or "–"


def _inverse(row: dict[str, Any]) -> str:
    if "closed_form" not in row:
        return "–"
    if not row["closed_form"]:
        return "numeric"
    return f"yes, {row['families']}" + (" (periodic)" if row["periodic"] else "")


def markdown(rows: list[dict[str, Any]]) -> str:
    """The table and its legend."""
    lines = [
        "# The problem zoo",
        "",
        "Textbook problems of physics and engineering, each a spec in "
        "`reports/zoo/` and run end to end by `tests/test_zoo.py`. "
        "Generated by `python docs/zoo_table.py` from actual runs; do not edit.",
        "",
        "- **inverse**: the local inverse P⁻¹ in closed form and its number of branch "
        "families (*periodic*: each repeats with a period, e.g. 2π in an angle), or *numeric* "
        "(PG solves P(x) = y by path-following at every step).",
        "- **converged to the target**: the fraction of the study's starts (its `[study]` "
        "region; a grid in 2-D) from which each rule reached the target's loss; *elsewhere*: "
        "ended at another minimum of the study.",
        "- **units**, **scale invariance**: `scaleinv verify`'s verdicts per rule "
        "(✓ consistent / proved, ✗ inconsistent / refuted, ? undecided, – not checked; "
        "(!) marks a check the chapter says holds that failed).",
        "",
        "| problem | n×m | inverse | converged to the target | units | scale invariance | CPU s |",
        "| --- | --- | --- | --- | --- | --- | --- |",
    ]
    for row in sorted(rows, key=lambda r: r["stem"]):
        link = f"[{row['stem']}](../reports/zoo/{row['stem']}.toml)"
        if "error" in row:
            cells = [link, _size(row), _inverse(row), f"**{_cell(row['error'])}**", "", ""]
        else:
            units = _verdicts(row, "units") if row["units"] else "no units given"
            cells = [link, _size(row), _inverse(row), _converged(row), units,
                     _verdicts(row, "scale invariance")]  # fmt: skip
        lines.append("| " + " | ".join(cells + [f"{row['seconds']:g}"]) + " |")
    numeric = [r["stem"] for r in rows if r.get("closed_form") is False]
    broken = [r["stem"] for r in rows if "error" in r]
    missing = sorted({p.stem for p in ZOO.glob("*.toml")} - {r["stem"] for r in rows})
    lines += [
        "",
        f"{len(rows)} problems; {sum(bool(r.get('closed_form')) for r in rows)} with a "
        f"closed-form inverse, {len(numeric)} numeric, {len(broken)} failing"
        + (f" ({', '.join(broken)})" if broken else "")
        + ".",
        "",
    ]
    if missing:
        lines[-1:-1] = [
            f"Not run yet: {', '.join(missing)} (`python docs/zoo_table.py SPEC...`).",
            "",
        ]
    return "\n".join(lines)


def _size(row: dict[str, Any]) -> str:
    return f"{row['n']}×{row['m']}" if "n" in row else "–"


def _cell(text: str) -> str:
    """Table-cell text: no pipes or newlines."""
    return " ".join(text.replace("|", "/").split())


def _save(rows: dict[str, dict[str, Any]]) -> None:
    ordered = [rows[k] for k in sorted(rows)]
    JSON.write_text(json.dumps(ordered, indent=1, ensure_ascii=False) + "\n", "utf-8")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("specs", nargs="*", type=Path, help="rerun these (default: all)")
    parser.add_argument("--jobs", type=int, default=1, help="processes (default 1)")
    parser.add_argument("--markdown-only", action="store_true", help="rewrite zoo.md only")
    args = parser.parse_args()
    rows = {r["stem"]: r for r in json.loads(JSON.read_text())} if JSON.exists() else {}
    if not args.markdown_only:
        paths = [p.resolve() for p in args.specs] or sorted(ZOO.glob("*.toml"))
        if not args.specs:  # a full run forgets problems that are gone
            rows = {k: v for k, v in rows.items() if (ZOO / f"{k}.toml").exists()}
        with ProcessPoolExecutor(max_workers=max(1, args.jobs)) as pool:
            for done in as_completed([pool.submit(problem_row, p) for p in paths]):
                row = done.result()
                rows[row["stem"]] = row
                _save(rows)  # an interrupted run keeps the rows it finished
                print(f"{row['stem']}: {row.get('error', 'ok')} ({row['seconds']} s)", flush=True)
    MARKDOWN.write_text(markdown(list(rows.values())), encoding="utf-8")
    print(f"wrote {MARKDOWN.relative_to(ROOT)}")


if __name__ == "__main__":
    main()
