"""Reference problems shared by the tests (a catalogue crossed with the rule registry)."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from scaleinv import Problem

#: name -> (problem, a sampler of points where every rule is defined)
CATALOGUE: dict[str, Problem] = {
    "comparison": Problem.from_strings(["x0", "x1"], ["x0", "x1**2"], loss="y0**2 + y1**2"),
    "scaling_toy": Problem.from_strings(
        ["x1", "x2"], ["x1", "alpha*x2"], loss="y0**2 + y1**2", params={"alpha": 10}
    ),
    "coupled": Problem.from_strings(["a", "b"], ["a + b", "a*b"], target=[3, 2]),
    "trig": Problem.from_strings(["x"], ["sin(x)"], target=[0.5]),
    "cubic_exp": Problem.from_strings(["u", "v"], ["u**3", "exp(v)"], target=[8, 2]),
    "overdetermined": Problem.from_strings(["x0", "x1"], ["x0", "x1", "x0*x1"], target=[1, 2, 2]),
}


def sample_points(name: str, rng: np.random.Generator, size: int) -> np.ndarray:
    """Random points where the problem's derivatives are regular."""
    problem = CATALOGUE[name]
    x = rng.uniform(0.5, 2.0, size=(size, problem.n)) * rng.choice([-1.0, 1.0], (size, problem.n))
    if name == "coupled":  # keep a != b so the Jacobian [[1, 1], [b, a]] is regular
        x[:, 1] = x[:, 0] + rng.uniform(0.5, 1.5, size)
    if name == "trig":  # keep cos(x) away from 0
        x = rng.uniform(-1.2, 1.2, size=(size, 1))
    return x


def evaluate(expr, problem: Problem, point: np.ndarray) -> np.ndarray:
    """Evaluate a SymPy expression or matrix at one point by substitution (no kernels)."""
    values = dict(zip(problem.inputs, map(float, point)))
    values.update(problem.params)
    return np.array(np.array(expr.subs(values).evalf(), dtype=float), dtype=float)


def finite_difference(fn, x: np.ndarray, h: float | np.ndarray = 1e-6) -> np.ndarray:
    """Central differences of ``fn`` (array -> array of shape s) at ``x``: shape ``s + (n,)``;
    ``h`` is one step for every input or one per input (inputs of very different sizes)."""
    steps = np.broadcast_to(np.asarray(h, dtype=float), x.shape[-1:])
    cols = []
    for j, step in enumerate(steps):
        e = np.zeros_like(x)
        e[j] = step
        cols.append((np.asarray(fn(x + e)) - np.asarray(fn(x - e))) / (2 * step))
    return np.stack(cols, axis=-1)


#: A mid-size problem that is not shipped: a projectile's range and flight time, with units.
PROJECTILE = """\
title = "Projectile: launch speed and angle for a range and a flight time"
description = "A user's problem, not one of the chapter's."

[problem]
inputs = ["v0", "theta"]
outputs = ["v0**2*sin(2*theta)/g", "2*v0*sin(theta)/g"]
loss = "((y0 - R_star)/R_star)**2/2 + ((y1 - T_star)/T_star)**2/2"

[params]
g = 9.81
R_star = 40
T_star = 2.5

[units]
v0 = "velocity"
theta = "1"
g = "acceleration"
R_star = "length"
T_star = "time"

[run]
starts = [[15, 0.5]]
steps = 20

[[rules]]
name = "gd"
eta = 0.001

[[rules]]
name = "newton"
eta = 0.5

[[rules]]
name = "pg"
eta = "1/2"

[analysis]
budget = 600_000
claims = []
"""


#: A user's 2-link planar arm (unequal links): the hand (outputs) reaches a point from two
#: poses, elbow up and elbow down, repeated every 2π in both joint angles.
ARM = """\
title = "Two-link planar arm"

[problem]
inputs = ["q0", "q1"]
outputs = ["l1*cos(q0) + l2*cos(q0 + q1)", "l1*sin(q0) + l2*sin(q0 + q1)"]
target = [1.2, 0.5]

[params]
l1 = 1
l2 = 0.6

[[rules]]
name = "gd"
eta = 0.3

[[rules]]
name = "newton"
eta = 1

[[rules]]
name = "ig"
eta = 0.5

[[rules]]
name = "pg"
eta = 0.5

[[rules]]
name = "hig"
eta = 0.5

[study]
region = [[-3.2, 3.2], [-3.2, 3.2]]
starts = 225
steps = 200
"""

#: A user's coupled map of three inputs without a closed-form inverse.
COUPLED_MAP = """\
title = "Coupled nonlinear map"

[problem]
inputs = ["x0", "x1", "x2"]
outputs = ["x0 + x1**3 + sin(x2)", "x1*x2 + exp(x0)/3", "x2**3 + x0*x1"]
target = [1.5, 1.0, 2.0]

[[rules]]
name = "gd"
eta = 0.02

[[rules]]
name = "newton"
eta = 1

[[rules]]
name = "ig"
eta = 0.5

[[rules]]
name = "pg"
eta = 0.5

[[rules]]
name = "hig"
eta = 0.5

[study]
region = [[-2, 2], [-2, 2], [-2, 2]]
starts = 300
steps = 150
"""


#: The shipped report specs.
SHIPPED = Path(__file__).resolve().parents[1] / "reports"


def shipped_specs(indexed: bool = False) -> list[Path]:
    """The shipped specs written expression by expression (or, ``indexed``, over an index:
    ``inputs = "u[0:n]"``; reports, figures and export flavours of those are issue 18's
    wiring, tested with it)."""
    import tomllib

    from scaleinv.symbolic.indexed_parsing import is_indexed

    found = []
    for path in sorted(SHIPPED.glob("*.toml")):
        inputs = tomllib.loads(path.read_text(encoding="utf-8"))["problem"]["inputs"]
        if is_indexed(inputs) == indexed:
            found.append(path)
    return found


def per_expression_diffusion(n: int = 256) -> str:
    """The nonlinear-diffusion step of ``reports/diffusion.toml`` written out output by output
    (``x0 .. x{n-1}``; what that spec was before it was written over an index), for the tests
    of large per-expression problems."""
    names = [f"x{i}" for i in range(n)]
    outputs = [
        f"x{i} + ({names[(i + 1) % n]} - 2*x{i} + {names[i - 1]})/10 + c*x{i}**3" for i in range(n)
    ]
    star = 0.5 * np.sin(2 * np.pi * np.arange(n) / n)
    target = star + 0.1 * (np.roll(star, -1) - 2 * star + np.roll(star, 1)) + 0.05 * star**3

    def array(items: list[str]) -> str:
        return "[\n" + "".join(f"  {item},\n" for item in items) + "]"

    quoted = [f'"{o}"' for o in outputs]
    return "\n".join(
        [
            f'title = "Inverting one nonlinear-diffusion step ({n} points, periodic)"',
            'description = """One explicit step of Pᵢ = xᵢ + 0.1 (xᵢ₊₁ − 2xᵢ + xᵢ₋₁) + c xᵢ³, '
            'written out output by output."""',
            "[problem]",
            f"inputs = {array([f'{chr(34)}{s}{chr(34)}' for s in names])}",
            f"outputs = {array(quoted)}",
            f"target = {array([repr(float(t)) for t in target])}",
            "[params]",
            "c = 0.05",
            "[units]",
            *[f'x{i} = "temperature"' for i in range(n)],
            'c = "1/temperature**2"',
            'target = "temperature"',
            "[run]",
            f"starts = [{array(['0.0'] * n)}]",
            "steps = 8",
            "tol = 1e-9",
            *[
                f'[[rules]]\nname = "{r}"\neta = {e}'
                for r, e in (("gd", 0.5), ("newton", 1), ("ig", 1))
            ],
            "",
        ]
    )
