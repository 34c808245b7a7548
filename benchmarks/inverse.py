"""Time PG with the numeric local inverse against IG, and the closed form against the numeric one.

Problems without a closed-form inverse (SymPy gives up or runs out of its budget):

* ``coupled``  — ``P = (x0 + a sin x1, x1 + a sin x0)``, ``a = 0.5`` (a near-identity map);
* ``expcube``  — ``P = (exp(x0) + x1³ + x2, x0 + exp(x1) x2, x0³ + x1 − exp(x2))``;
* ``ode20``    — one implicit Euler step of a reaction–diffusion equation on 20 points,
  ``P_i = x_i − 0.1 (x_{i+1} − 2 x_i + x_{i−1}) − 0.1 (x_i − x_i³)`` (zero boundaries):
  PG's local inverse *is* the implicit step.

Each runs ``--starts`` random starts (default 10⁴) × ``--steps`` steps (default 50) of IG and
PG (``η = 0.5``, loss ``½|y|²``) through :func:`scaleinv.minimize`; the table gives medians of
``--repeats`` interleaved rounds (each once per round, in a shuffled order), the ratio
PG / IG, and PG's per-sample outcome: the fraction whose every step found its inverse, and
for up to 20 samples that ended ``not_found``, whether a solution of their last requested
``P(x) = y`` exists at all (``scipy.optimize.least_squares`` from 40 starts — the check only).

The second table times PG on the comparison problem ``P = (x0, x1²)``, ``L = y0² + y1²``,
``η = 0.3`` with its closed-form inverse, with the numeric inverse (``pg(inverse="numeric")``)
and IG, and gives the largest difference between the closed-form and numeric iterates.

Usage::

    python benchmarks/inverse.py            # 10**4 starts x 50 steps, median of 3
    python benchmarks/inverse.py --quick    # 1000 starts x 10 steps, one run

The last table times one closed-form PG step of the comparison problem on ``--points`` points
(default 10⁵): scaleinv's step, the previous template (every branch candidate polished by a
batched ``numpy.linalg.pinv``, reproduced here as the baseline) and the step written by hand
(per coordinate, in place into one output array).
"""

from __future__ import annotations

import argparse
import sys
import time
import warnings
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
import _harness  # noqa: E402  (before numpy: one BLAS thread)
import numpy as np  # noqa: E402
from scipy.optimize import least_squares  # noqa: E402

import scaleinv
import scaleinv.numeric.driver
from scaleinv import Problem, rules
from scaleinv.errors import NumericInverseWarning
from scaleinv.numeric.status import Status

ETA = 0.5


def problems() -> dict[str, tuple[Problem, float]]:
    """Name -> (problem, half-width of the box the starts are drawn from)."""
    n = 20
    xs = [f"x{i}" for i in range(n)]
    at = ["0", *xs, "0"]
    ode = [
        f"{at[i + 1]} - 0.1*({at[i + 2]} - 2*{at[i + 1]} + {at[i]}) "
        f"- 0.1*({at[i + 1]} - {at[i + 1]}**3)"
        for i in range(n)
    ]
    return {
        "coupled": (
            Problem.from_strings(
                ["x0", "x1"], ["x0 + a*sin(x1)", "x1 + a*sin(x0)"], params={"a": 0.5}
            ),
            2.0,
        ),
        "expcube": (
            Problem.from_strings(
                ["x0", "x1", "x2"],
                ["exp(x0) + x1**3 + x2", "x0 + exp(x1)*x2", "x0**3 + x1 - exp(x2)"],
            ),
            2.0,
        ),
        "ode20": (Problem.from_strings(xs, ode), 1.0),
    }


def rounds(problem: Problem, runs: dict[str, rules.Rule], x0: np.ndarray, steps: int,
           repeats: int) -> tuple[dict[str, float], dict[str, scaleinv.Trajectory]]:
    """Median seconds of ``minimize`` per rule in interleaved rounds, and each last trajectory."""
    trajs: dict[str, scaleinv.Trajectory] = {}

    def run(label: str) -> None:
        trajs[label] = scaleinv.minimize(problem, runs[label], x0, steps)

    tools = {label: (lambda label=label: run(label)) for label in runs}
    return _harness.medians(_harness.interleave(tools, repeats)), trajs


def solvable(problem: Problem, y: np.ndarray, x: np.ndarray, rng: np.random.Generator) -> bool:
    """Whether ``P(z) = y`` has a real solution, by least squares from 40 starts near ``x``."""
    kernels = problem.compile()
    for k in range(40):
        z0 = x + rng.standard_normal(problem.n) * (0.3, 1.0, 3.0, 10.0)[k % 4] * (1 + abs(x))
        fit = least_squares(lambda z: kernels.P(z) - y, z0, jac=lambda z: kernels.jacobian(z))
        if np.all(np.abs(fit.fun) <= 1e-8 * (1 + np.abs(y))):
            return True
    return False


def outcome(problem: Problem, traj: scaleinv.Trajectory) -> str:
    status = traj.status.ravel()
    missed = np.flatnonzero(status == Status.NOT_FOUND)
    none = int(np.sum(status == Status.NO_INVERSE))
    text = f"{1 - missed.size / status.size:.4f} found"
    if none:
        text += f", {none} no real solution (certified)"
    if missed.size:
        kernels, rng = problem.compile(), np.random.default_rng(0)
        checked = missed[:20]
        x_last = traj.x[-1].reshape(-1, problem.n)[checked]
        y = kernels.P(x_last)
        target = y + ETA * kernels.newton_dy(y)
        exist = sum(solvable(problem, t, x, rng) for t, x in zip(target, x_last))
        text += (
            f"; not_found {missed.size}: a solution exists for {exist} of {checked.size} checked"
        )
    return text


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--starts", type=int, default=10_000)
    parser.add_argument("--steps", type=int, default=50)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--points", type=int, default=100_000, help="points of the PG step")
    parser.add_argument("--quick", action="store_true", help="1000 starts x 10 steps, one run")
    args = parser.parse_args()
    if args.quick:
        args.starts, args.steps, args.repeats = 1000, 10, 1
    warnings.simplefilter("ignore", NumericInverseWarning)
    rows = []
    for name, (problem, width) in problems().items():
        start = time.perf_counter()
        inverse = problem.local_inverse()
        derive = time.perf_counter() - start
        assert inverse.numeric, f"{name} has a closed form: {inverse.reason}"
        x0 = np.random.default_rng(1).uniform(-width, width, (args.starts, problem.n))
        runs = {"ig": rules.ig(ETA), "pg": rules.pg(ETA)}
        for rule in runs.values():  # compile and warm up
            scaleinv.minimize(problem, rule, x0[:10], 1)
        med, trajs = rounds(problem, runs, x0, args.steps, args.repeats)
        rows.append([name, derive, med["ig"], med["pg"], _harness.ratio(med["pg"], med["ig"]),
                     outcome(problem, trajs["pg"])])  # fmt: skip
    title = f"{args.starts} starts x {args.steps} steps, eta = {ETA}, median of {args.repeats}"
    columns = ["problem", "derive s", "IG s", "PG s", "PG/IG", "PG outcome"]
    print(_harness.table(title, columns, rows))
    comparison(args)
    pg_step(args)


def pg_step(args: argparse.Namespace) -> None:
    """One closed-form PG step at many points: now, the previous template, and by hand."""
    problem = Problem.from_strings(["x0", "x1"], ["x0", "x1**2"], loss="y0**2 + y1**2")
    kernels, eta = problem.compile(), 0.3
    step = scaleinv.numeric.driver.compiled_rule(problem, rules.pg(eta)).step
    x = np.random.default_rng(3).uniform(-3, 3, (args.points, 2))

    def previous(x: np.ndarray) -> np.ndarray:
        """The template before: stack both branches, polish each by pinv, pick the nearest."""
        y = kernels.P(x)
        t = y + eta * kernels.newton_dy(y)
        with np.errstate(all="ignore"):
            root = np.sqrt(t[:, 1])
            cands = np.stack([np.stack([t[:, 0], s * root], axis=-1) for s in (-1, 1)])
            r = t - kernels.P(cands)
            jac = kernels.jacobian(cands).reshape(cands.shape[:-1] + (2, 2))
            good = np.isfinite(jac).all(axis=(-2, -1)) & np.isfinite(r).all(axis=-1)
            jac = np.where(good[..., None, None], jac, 0.0)
            polished = (
                cands + (np.linalg.pinv(jac) @ np.where(good[..., None], r, 0.0)[..., None])[..., 0]
            )
            r_pol = t - kernels.P(polished)
            lower = np.linalg.norm(r_pol, axis=-1) < np.linalg.norm(r, axis=-1)
            cands = np.where(lower[..., None], polished, cands)
            err = np.abs(np.where(lower[..., None], r_pol, r))
            valid = np.isfinite(cands).all(axis=-1) & (err <= 1e-8 * (1 + np.abs(t))).all(axis=-1)
            dist = np.where(valid, np.sum((cands - x) ** 2, axis=-1), np.inf)
        pick = np.argmin(dist, axis=0)
        return np.take_along_axis(cands, pick[None, ..., None], axis=0)[0] - x

    def by_hand(x: np.ndarray) -> np.ndarray:  # Δy = -η y for this loss
        dx = np.empty_like(x)
        x0, x1, d0, d1 = x[:, 0], x[:, 1], dx[:, 0], dx[:, 1]
        np.multiply(x0, -eta, out=d0)  # (1 - η) x0 - x0
        np.multiply(x1, x1, out=d1)
        d1 *= 1 - eta
        np.sqrt(d1, out=d1)
        np.copysign(d1, x1, out=d1)
        d1 -= x1
        return dx

    impls = {"scaleinv": lambda x: step(x, None)[0], "previous": previous, "by hand": by_hand}
    want = by_hand(x)
    for name, fn in impls.items():
        np.testing.assert_allclose(fn(x), want, atol=1e-12, err_msg=name)
    tools = {name: (lambda fn=fn: fn(x)) for name, fn in impls.items()}
    med = _harness.medians(_harness.interleave(tools, max(args.repeats, 5)))
    rows = [[name, 1e3 * t, _harness.ratio(t, med["scaleinv"])] for name, t in med.items()]
    title = f"one closed-form PG step of the comparison problem at {args.points} points"
    print("\n" + _harness.table(title, ["step", "ms", "x scaleinv"], rows))


def comparison(args: argparse.Namespace) -> None:
    """Closed form vs numeric inverse on a problem that has both."""
    problem = Problem.from_strings(["x0", "x1"], ["x0", "x1**2"], loss="y0**2 + y1**2")
    x0 = np.random.default_rng(2).uniform(-3, 3, (args.starts, 2))
    runs = {
        "IG": rules.ig(0.3),
        "PG closed": rules.pg(0.3),
        "PG numeric": rules.pg(0.3, "stop", "numeric"),
    }
    for rule in runs.values():
        scaleinv.minimize(problem, rule, x0[:10], 1)
    med, trajs = rounds(problem, runs, x0, args.steps, args.repeats)
    rows = [[label, t, _harness.ratio(t, med["PG closed"])] for label, t in med.items()]
    title = f"comparison problem P = (x0, x1^2), eta = 0.3: {args.starts} starts x {args.steps}"
    title += " steps"
    print("\n" + _harness.table(title, ["rule", "s", "x PG closed"], rows))
    gap = np.max(np.abs(trajs["PG closed"].x - trajs["PG numeric"].x))
    print(f"  largest |x_closed - x_numeric| over all iterates: {gap:.2e}")


if __name__ == "__main__":
    main()
