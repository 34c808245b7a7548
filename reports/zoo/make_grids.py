"""Write the zoo's three explicit time steps on small grids: heat, Burgers, Fisher-KPP.

A spec lists every output, so the stencils are generated here rather than typed. The heat step
(linear, n = 8) takes the per-expression route of every command; the two nonlinear steps
(n = 12, above ``scaleinv.reports.content.FEW``) the large-problem route (summaries, units by
the rules' structure). Each target is
one step of a known state ``x*``, so the inverse problem — which state gives this one after a
step? — has a known answer. Run ``python reports/zoo/make_grids.py`` after changing this file;
``tests/test_zoo.py`` checks the committed specs are what it writes.

Usage::

    python reports/zoo/make_grids.py [--to reports/zoo]
"""

from __future__ import annotations

import argparse
import math
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

HERE = Path(__file__).resolve().parent


@dataclass(frozen=True)
class Grid:
    """One explicit step ``P_i`` on ``n`` points: its spec text pieces and a float twin."""

    stem: str
    n: int
    title: str
    description: str
    periodic: bool
    params: dict[str, float]
    units: dict[str, str]
    unit: str  # of every grid value
    formula: str  # of point i in terms of {l} {c} {r} (left, centre, right neighbour)
    state: Callable[[int, int], float]  # x*_i on n points
    region: tuple[float, float]
    gd_eta: float


GRIDS = (
    Grid(
        "heat_step",
        8,
        "Heat equation: the temperatures one explicit step earlier",
        "One explicit (FTCS) step of the heat equation on a rod of {n} points with ends held at "
        "0 K above ambient: P_i = x_i + r (x_(i+1) − 2 x_i + x_(i−1)), r = kappa dt/dx² = 0.25. "
        "Which temperatures x (K above ambient) give, one step later, the profile that "
        "x*_i = sin(π (i + 1)/(n + 1)) gives? The step is linear: one exact solution.",
        False,
        {"r": 0.25},
        {"r": "dimensionless"},
        "temperature",
        "{c} + r*({r} - 2*{c} + {l})",
        lambda i, n: math.sin(math.pi * (i + 1) / (n + 1)),
        (-1.0, 2.0),
        1.0,
    ),
    Grid(
        "burgers_step",
        12,
        "Burgers' equation: the velocities one explicit step earlier",
        "One explicit step of the viscous Burgers equation u_t + u u_x = nu u_xx on a periodic "
        "grid of {n} points (central differences): P_i = x_i − c x_i (x_(i+1) − x_(i−1)) "
        "+ s (x_(i+1) − 2 x_i + x_(i−1)), with c = dt/(2 dx) = 0.1 s/m and s = nu dt/dx² = 0.05. "
        "Which velocities give, one step later, the field that x*_i = 0.5 + 0.3 sin(2π i/n) m/s "
        "gives?",
        True,
        {"c": 0.1, "s": 0.05},
        {"c": "time/length", "s": "dimensionless"},
        "velocity",
        "{c} - c*{c}*({r} - {l}) + s*({r} - 2*{c} + {l})",
        lambda i, n: 0.5 + 0.3 * math.sin(2 * math.pi * i / n),
        (0.0, 1.0),
        1.0,
    ),
    Grid(
        "fisher_kpp_step",
        12,
        "Fisher-KPP reaction-diffusion: the concentrations one explicit step earlier",
        "One explicit step of the reaction-diffusion equation u_t = D u_xx + k u (1 − u/u_max) "
        "on a periodic grid of {n} points: P_i = x_i + d (x_(i+1) − 2 x_i + x_(i−1)) "
        "+ k x_i (1 − x_i/u_max), with d = D dt/dx² = 0.2, k dt = 0.1 and u_max = 1 mol/m³. "
        "Which concentrations give, one step later, the field that "
        "x*_i = 0.5 + 0.4 cos(2π i/n) mol/m³ gives?",
        True,
        {"d": 0.2, "k": 0.1, "u_max": 1.0},
        {"d": "dimensionless", "k": "dimensionless", "u_max": "amount_of_substance/volume"},
        "amount_of_substance/volume",
        "{c} + d*({r} - 2*{c} + {l}) + k*{c}*(1 - {c}/u_max)",
        lambda i, n: 0.5 + 0.4 * math.cos(2 * math.pi * i / n),
        (0.0, 1.2),
        1.0,
    ),
)


def outputs(grid: Grid, n: int) -> list[str]:
    """``P_i`` as strings; a missing neighbour of a non-periodic grid is 0."""

    def name(j: int) -> str:
        if 0 <= j < n:
            return f"x{j}"
        return f"x{j % n}" if grid.periodic else "0"

    return [grid.formula.format(l=name(i - 1), c=f"x{i}", r=name(i + 1)) for i in range(n)]


def step(grid: Grid, x: list[float]) -> list[float]:
    """The step of ``x`` in floating point: each output string's value (numbers and params)."""
    values = {**grid.params, **{f"x{i}": v for i, v in enumerate(x)}}
    return [_evaluate(text, values) for text in outputs(grid, len(x))]


def _evaluate(text: str, values: dict[str, float]) -> float:
    """Evaluate a generated stencil (this module's own text: names, numbers, + - * / ( ))."""
    import ast

    def walk(node: ast.AST) -> float:
        if isinstance(node, ast.Expression):
            return walk(node.body)
        if isinstance(node, ast.Constant):
            return float(node.value)
        if isinstance(node, ast.Name):
            return values[node.id]
        if isinstance(node, ast.UnaryOp) and isinstance(node.op, ast.USub):
            return -walk(node.operand)
        if isinstance(node, ast.BinOp):
            a, b = walk(node.left), walk(node.right)
            ops = {ast.Add: a + b, ast.Sub: a - b, ast.Mult: a * b}
            return ops[type(node.op)] if type(node.op) in ops else a / b
        raise ValueError(f"unexpected {ast.dump(node)}")

    return walk(ast.parse(text, mode="eval"))


def _quoted(text: str) -> str:
    return '"' + text + '"'


def spec_text(grid: Grid) -> str:
    n = grid.n
    names = [f"x{i}" for i in range(n)]
    target = step(grid, [grid.state(i, n) for i in range(n)])
    lo, hi = grid.region

    def array(items: list[str]) -> str:
        return "[\n" + "".join(f"  {item},\n" for item in items) + "]"

    lines = [
        f"# Generated by reports/zoo/make_grids.py (n = {n}); edit that script, not this file.",
        f'title = "{grid.title} ({n} points)"',
        f'description = """{grid.description.format(n=n)}"""',
        "",
        "[problem]",
        f"inputs = {array([_quoted(x) for x in names])}",
        f"outputs = {array([_quoted(p) for p in outputs(grid, n)])}",
        f"target = {array([repr(v) for v in target])}",
        "",
        "[params]",
        *(f"{k} = {v!r}" for k, v in grid.params.items()),
        "",
        "[units]",
        *(f'{x} = "{grid.unit}"' for x in names),
        *(f'{k} = "{v}"' for k, v in grid.units.items()),
        f'target = "{grid.unit}"',
        "",
        "[run]",
        f"starts = [[{', '.join('0.5' for _ in names)}]]",
        "steps = 20",
        "",
        *(
            f'[[rules]]\nname = "{rule}"\neta = {eta!r}\n'
            for rule, eta in (("gd", grid.gd_eta), ("newton", 0.5), ("ig", 0.5), ("pg", 0.5))
        ),
        "[analysis]",
        "claims = []  # the chapter's ledger is checked on its own examples; here: units and "
        "invariance",
        "",
        "[study]",
        f"region = [{', '.join(f'[{lo!r}, {hi!r}]' for _ in names)}]",
        "starts = 24",
        "steps = 40",
        "tol = 1e-10",
        "",
    ]
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--to", type=Path, default=HERE)
    args = parser.parse_args()
    for grid in GRIDS:
        path = args.to / f"{grid.stem}.toml"
        path.write_text(spec_text(grid), encoding="utf-8")
        print(f"wrote {path}")


if __name__ == "__main__":
    main()
