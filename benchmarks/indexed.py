"""Array problems at large n: setup and one Newton step, scaleinv against JAX and CasADi.

Three explicit time steps of PDEs, periodic, each inverted by Newton on ``L = ½|P(x) − y*|²``
(``y* = P(x*)`` for a known smooth ``x*``), one step from 10 points near ``x*``:

* ``diffusion`` — 1-D, ``u[i] + dt*(nu*(u[i+1] - 2*u[i] + u[i-1]) + c*u[i]**3)``,
  n = 10³, 4·10³, 10⁴, 10⁵, 10⁶;
* ``heat`` — 2-D heat with a cubic source (five-point Laplacian), 32×32;
* ``brusselator`` — 2-D Brusselator, fields ``u, v`` (2·N² inputs), 16×16, 32×32, 256×256.

Tools (each run is a fresh subprocess, except with ``--quick``; imports are not timed, everything
after them is):

* ``scaleinv`` — the problem written once over the grid index (an indexed problem, as a spec
  would write it): construction + derivation + compiled kernels and Newton step = *setup*;
* ``jax`` — ``jit(vmap(x ↦ x − hessian(L)(x)⁻¹ grad(L)(x)))``, dense (``jnp.linalg.solve``):
  setup = trace + XLA compile (``lower().compile()``); skipped where the dense Hessians of
  the 10 points would not fit in ``--dense-gb``;
* ``jax-cg`` — JAX's best practice at large n, matrix-free: ``jit(vmap(...))`` of conjugate
  gradients (``jax.scipy.sparse.linalg.cg``, relative tolerance 1e-13) on Hessian-vector
  products (``jvp`` of ``grad``), nothing n×n ever built;
* ``casadi`` — SX built with vectorised slices (no Python loop over points), ``hessian`` of L
  (sparse), the step ``x − H⁻¹∇L`` as an MX ``solve(H, g, "ldl")`` (CasADi's sparse LDLᵀ),
  ``Function.map`` over the 10 points: setup = all of that, step = one call.

*step* is the first call after setup (the number a user waits for); *warm* the median of two
more calls, in wall and in CPU seconds (``time.process_time``: on a loaded machine the wall
clock counts other processes' time too). Every tool's new points are compared at a few fixed
coordinates with JAX's (or the first tool's): a disagreement beyond 1e-8 is printed under the
table. Rounds interleave the tools in shuffled order (cases from small to large), and every
number is the median over ``--rounds``. A tool over ``--budget`` seconds at one size of a
problem is not run at larger ones, nor again at that size (its one run is shown, marked ``¹``);
every anchor that is missing or skipped is listed with the reason. One BLAS/XLA thread
everywhere (set before NumPy is imported, here and in each worker); the load average is printed
with every table.

Anchors need ``pip install 'scaleinv[bench]'`` (JAX, CasADi).

Usage::

    python benchmarks/indexed.py                 # every size, 3 rounds
    python benchmarks/indexed.py --quick         # tiny sizes, 1 round, one process (the test)
    python benchmarks/indexed.py --only brusselator --rounds 5 --tools scaleinv,casadi
    python benchmarks/indexed.py --only diffusion --n 100000,1000000   # the 10⁶ target
"""

from __future__ import annotations

import os

#: One thread for BLAS and XLA, here and in every worker (set before NumPy or JAX load).
THREADS = {
    "OMP_NUM_THREADS": "1",
    "OPENBLAS_NUM_THREADS": "1",
    "MKL_NUM_THREADS": "1",
    "XLA_FLAGS": "--xla_cpu_multi_thread_eigen=false intra_op_parallelism_threads=1",
}
os.environ.update(THREADS)

import argparse  # noqa: E402
import importlib.util  # noqa: E402
import json  # noqa: E402
import random  # noqa: E402
import subprocess  # noqa: E402
import sys  # noqa: E402
import time  # noqa: E402
from collections.abc import Callable, Sequence  # noqa: E402
from dataclasses import dataclass  # noqa: E402
from pathlib import Path  # noqa: E402
from typing import Any  # noqa: E402

import numpy as np  # noqa: E402

HERE = Path(__file__).resolve().parent
#: Points per Newton step.
POINTS = 10
TOOLS = ("scaleinv", "jax", "jax-cg", "casadi")
#: The Python module each tool needs.
NEEDS = {"scaleinv": "scaleinv", "jax": "jax", "jax-cg": "jax", "casadi": "casadi"}
#: Two tools' new points agree when they differ by at most this (relative to 1).
AGREE = 1e-8
PARAMS = {
    "diffusion": {"dt": 0.1, "nu": 1.0, "c": 0.5},
    "heat": {"dt": 0.1, "nu": 1.0, "c": 0.5},
    "brusselator": {"dt": 0.1, "du": 0.2, "dv": 0.02, "a": 1.0, "b": 3.0},
}
FULL = {
    "diffusion": [(1000,), (4000,), (10_000,), (100_000,), (1_000_000,)],
    "heat": [(32, 32)],
    "brusselator": [(16, 16), (32, 32), (256, 256)],
}
QUICK = {"diffusion": [(64,), (200,)], "heat": [(6, 6)], "brusselator": [(4, 4)]}


# -- the problems, once for every array namespace ---------------------------------------------
@dataclass(frozen=True)
class Case:
    problem: str
    shape: tuple[int, ...]

    @property
    def fields(self) -> int:
        return 2 if self.problem == "brusselator" else 1

    @property
    def n(self) -> int:
        return self.fields * int(np.prod(self.shape))

    @property
    def label(self) -> str:
        return f"{self.problem} {'×'.join(map(str, self.shape))}"

    def key(self) -> str:
        return f"{self.problem}:{','.join(map(str, self.shape))}"

    @classmethod
    def parse(cls, key: str) -> Case:
        problem, shape = key.split(":")
        return cls(problem, tuple(int(s) for s in shape.split(",")))


def update(case: Case, fields: Sequence[Any], shift: Callable[[Any, int, int], Any]) -> list:
    """The output fields of one explicit step; ``shift(w, axis, k)`` reads ``w`` at the point
    ``+ k`` along ``axis`` (periodic). Plain arithmetic, so NumPy, JAX and CasADi share it."""
    p = PARAMS[case.problem]

    def lap(w: Any) -> Any:
        total = -2 * len(case.shape) * w
        for axis in range(len(case.shape)):
            total = total + shift(w, axis, 1) + shift(w, axis, -1)
        return total

    if case.problem == "brusselator":
        u, v = fields
        u2v = u * u * v
        return [
            u + p["dt"] * (p["du"] * lap(u) + p["a"] - (p["b"] + 1) * u + u2v),
            v + p["dt"] * (p["dv"] * lap(v) + p["b"] * u - u2v),
        ]
    (u,) = fields
    return [u + p["dt"] * (p["nu"] * lap(u) + p["c"] * u**3)]


def exact(case: Case) -> np.ndarray:
    """``x*``, flat: fields one after the other, each grid in C order."""
    grids = np.meshgrid(*[2 * np.pi * np.arange(s) / s for s in case.shape], indexing="ij")
    if case.problem == "brusselator":
        u = 1 + 0.1 * np.sin(grids[0]) * np.cos(grids[1])
        v = 3 + 0.1 * np.cos(grids[1])
        return np.concatenate([u.ravel(), v.ravel()])
    wave = 0.5 * np.sin(grids[0]) * (np.cos(grids[1]) if len(grids) > 1 else 1)
    return wave.ravel()


def numpy_P(case: Case, x: np.ndarray) -> np.ndarray:  # noqa: N802
    """``P`` of flat points ``x`` (any leading batch axes) in NumPy."""
    grid = x.reshape(x.shape[:-1] + (case.fields, *case.shape))
    fields = [grid[(..., f) + (slice(None),) * len(case.shape)] for f in range(case.fields)]
    d = len(case.shape)
    outs = update(case, fields, lambda w, axis, k: np.roll(w, -k, axis=axis - d))
    return np.stack(outs, axis=-1 - d).reshape(x.shape)


def target(case: Case) -> np.ndarray:
    return numpy_P(case, exact(case))


def starts(case: Case) -> np.ndarray:
    """10 points within 0.05 of ``x*``."""
    rng = np.random.default_rng(0)
    return exact(case) + 0.05 * rng.uniform(-1, 1, (POINTS, case.n))


def probe(case: Case) -> np.ndarray:
    """The coordinates at which tools' results are compared."""
    return np.unique(np.linspace(0, case.n - 1, 12).astype(int))


# -- scaleinv ------------------------------------------------------------------------------------
def scaleinv_spec(case: Case) -> dict[str, Any]:
    """The problem as a user writes it: one formula per output field over the grid index."""
    index = ["i", "j"][: len(case.shape)]

    def at(name: str, axis: int | None = None, k: int = 0) -> str:
        parts = [
            f"{s}{'+' if k > 0 else '-'}{abs(k)}" if a == axis and k else s
            for a, s in enumerate(index)
        ]
        return f"{name}[{', '.join(parts)}]"

    def lap(name: str) -> str:
        terms = [at(name, a, k) for a in range(len(index)) for k in (1, -1)]
        return f"({' + '.join(terms)} - {2 * len(index)}*{at(name)})"

    bounds = ", ".join(f"0:{s}" for s in case.shape)
    phase = [f"2*pi*{s}/{size}" for s, size in zip(index, case.shape)]  # x*, as exact() has it
    if case.problem == "brusselator":
        u, v = at("u"), at("v")
        inputs = [f"u[{bounds}]", f"v[{bounds}]"]
        outputs = [
            f"{u} + dt*(du*{lap('u')} + a - (b + 1)*{u} + {u}**2*{v})",
            f"{v} + dt*(dv*{lap('v')} + b*{u} - {u}**2*{v})",
        ]
        states = [f"1 + 0.1*sin({phase[0]})*cos({phase[1]})", f"3 + 0.1*cos({phase[1]})"]
    else:
        inputs = [f"u[{bounds}]"]
        outputs = [f"{at('u')} + dt*(nu*{lap('u')} + c*{at('u')}**3)"]
        states = [f"0.5*sin({phase[0]})" + (f"*cos({phase[1]})" if len(phase) > 1 else "")]
    params = dict(PARAMS[case.problem])
    return {"inputs": inputs, "outputs": outputs, "params": params, "target_from": states}


def scaleinv_problem(case: Case) -> Any:
    """The case as scaleinv's indexed problem, built from :func:`scaleinv_spec`'s strings."""
    from scaleinv.symbolic.indexed import IndexedProblem

    spec = scaleinv_spec(case)
    return IndexedProblem.from_strings(
        spec["inputs"],
        spec["outputs"],
        boundary="periodic",
        params=spec["params"],
        target_from=spec["target_from"],
    )


def run_scaleinv(case: Case, x: np.ndarray) -> tuple[float, Callable[[], np.ndarray]]:
    from scaleinv import rules
    from scaleinv.numeric.driver import compiled_rule

    start = time.perf_counter()
    problem = scaleinv_problem(case)
    problem.compile()
    step = compiled_rule(problem, rules.newton(1.0)).step
    setup = time.perf_counter() - start

    def call() -> np.ndarray:
        dx, _, _ = step(x, None)
        return x + dx

    return setup, call


# -- JAX -----------------------------------------------------------------------------------------
def _jax_loss(case: Case) -> Callable:
    import jax.numpy as jnp

    y_star = jnp.asarray(target(case))

    def P(x: Any) -> Any:  # noqa: N802
        grid = x.reshape((case.fields, *case.shape))
        outs = update(case, list(grid), lambda w, axis, k: jnp.roll(w, -k, axis=axis))
        return jnp.stack(outs).reshape(-1)

    def loss(x: Any) -> Any:
        r = P(x) - y_star
        return 0.5 * jnp.dot(r, r)

    return loss


def _jax_setup(one: Callable, x: np.ndarray) -> tuple[float, Callable[[], np.ndarray]]:
    import jax
    import jax.numpy as jnp

    points = jnp.asarray(x)
    start = time.perf_counter()
    compiled = jax.jit(jax.vmap(one)).lower(points).compile()
    setup = time.perf_counter() - start
    return setup, lambda: np.asarray(compiled(points).block_until_ready())


def _jax_import() -> None:
    """Import JAX in 64-bit mode and start its CPU backend (before any timing)."""
    import jax

    jax.config.update("jax_enable_x64", True)
    jax.numpy.zeros(1).block_until_ready()


def run_jax(case: Case, x: np.ndarray) -> tuple[float, Callable[[], np.ndarray]]:
    import jax
    import jax.numpy as jnp

    start = time.perf_counter()
    loss = _jax_loss(case)

    def newton(x: Any) -> Any:
        return x - jnp.linalg.solve(jax.hessian(loss)(x), jax.grad(loss)(x))

    built = time.perf_counter() - start
    setup, call = _jax_setup(newton, x)
    return built + setup, call


def run_jax_cg(case: Case, x: np.ndarray) -> tuple[float, Callable[[], np.ndarray]]:
    import jax
    from jax.scipy.sparse.linalg import cg

    start = time.perf_counter()
    loss = _jax_loss(case)
    grad = jax.grad(loss)

    def newton(x: Any) -> Any:
        def hvp(v: Any) -> Any:
            return jax.jvp(grad, (x,), (v,))[1]

        g = grad(x)
        dx, _ = cg(hvp, -g, tol=1e-13, atol=0.0, maxiter=10 * x.shape[0])
        return x + dx

    built = time.perf_counter() - start
    setup, call = _jax_setup(newton, x)
    return built + setup, call


# -- CasADi --------------------------------------------------------------------------------------
def run_casadi(case: Case, x: np.ndarray) -> tuple[float, Callable[[], np.ndarray]]:
    import casadi

    start = time.perf_counter()
    size = int(np.prod(case.shape))
    grid = np.arange(size).reshape(case.shape)
    neighbours = {
        (axis, k): np.roll(grid, -k, axis=axis).ravel().tolist()
        for axis in range(len(case.shape))
        for k in (1, -1)
    }
    xs = casadi.SX.sym("x", case.n)
    fields = [xs[f * size : (f + 1) * size] for f in range(case.fields)]
    outs = update(case, fields, lambda w, axis, k: w[neighbours[axis, k]])
    r = casadi.vertcat(*outs) - casadi.DM(target(case))
    loss = 0.5 * casadi.dot(r, r)
    hessian, gradient = casadi.hessian(loss, xs)
    derivatives = casadi.Function("hg", [xs], [hessian, gradient])
    xm = casadi.MX.sym("x", case.n)
    h, g = derivatives(xm)
    newton = casadi.Function("newton", [xm], [xm - casadi.solve(h, g, "ldl")])
    batch = newton.map(POINTS)
    columns = casadi.DM(x.T)
    setup = time.perf_counter() - start
    return setup, lambda: np.asarray(batch(columns)).T


RUNNERS: dict[str, Callable[[Case, np.ndarray], tuple[float, Callable[[], np.ndarray]]]] = {
    "scaleinv": run_scaleinv,
    "jax": run_jax,
    "jax-cg": run_jax_cg,
    "casadi": run_casadi,
}


def measure_one(tool: str, case: Case) -> dict[str, Any]:
    """One fresh run of ``tool`` on ``case`` (in a worker process): seconds and probed results."""
    if tool.startswith("jax"):
        _jax_import()
    elif tool == "scaleinv":
        import scaleinv.symbolic.indexed  # noqa: F401  (and SymPy)
    else:
        __import__(NEEDS[tool])
    x = starts(case)
    setup, call = RUNNERS[tool](case, x)
    start = time.perf_counter()
    new = call()
    step = time.perf_counter() - start
    warm, cpu = [], []
    for _ in range(2):
        start, start_cpu = time.perf_counter(), time.process_time()
        call()
        warm.append(time.perf_counter() - start)
        cpu.append(time.process_time() - start_cpu)
    result = {
        "setup": setup,
        "step": step,
        "warm": float(np.median(warm)),
        "warm_cpu": float(np.median(cpu)),
        "probe": new[:, probe(case)].tolist(),
    }
    if tool == "scaleinv":  # scaleinv's default (auto) choice, which the step ran
        from scaleinv.numeric.indexed_steps import newton_route

        result["route"] = newton_route(scaleinv_problem(case), POINTS)
    return result


# -- the driver ----------------------------------------------------------------------------------
def installed(tools: Sequence[str]) -> tuple[list[str], list[str]]:
    have = [t for t in tools if importlib.util.find_spec(NEEDS[t]) is not None]
    return have, [t for t in tools if t not in have]


def dense_gb(case: Case) -> float:
    """Memory of the dense Hessians of one JAX step (the 10 points' n×n, and one copy)."""
    return 2 * POINTS * case.n**2 * 8 / 1e9


def _worker(tool: str, case: Case, timeout: float, fresh: bool = True) -> dict[str, Any]:
    """One run in a fresh process (nothing cached from earlier runs), or in this one."""
    if not fresh:
        try:
            return measure_one(tool, case)
        except Exception as err:  # reported in the table's notes, as a worker's error is
            return {"error": f"{type(err).__name__}: {err}"[:160]}
    command = [sys.executable, str(Path(__file__).resolve()), "--worker", tool, case.key()]
    try:
        out = subprocess.run(command, capture_output=True, text=True, timeout=timeout)
    except subprocess.TimeoutExpired:
        return {"error": f"over the {timeout:.0f} s timeout"}
    if out.returncode != 0:
        lines = (out.stderr.strip() or f"exit status {out.returncode}").splitlines()
        return {"error": lines[-1][:160]}
    return json.loads(out.stdout.strip().splitlines()[-1])


def run_rounds(
    cases: Sequence[Case],
    tools: Sequence[str],
    rounds: int,
    budget: float,
    dense_limit: float,
    fresh: bool = True,
) -> tuple[dict[tuple[str, str], list[dict]], dict[tuple[str, str], str]]:
    """Every (tool, case) ``rounds`` times; returns the runs and why some were not run."""
    runs: dict[tuple[str, str], list[dict]] = {}
    skipped: dict[tuple[str, str], str] = {}
    # (tool, problem) -> (the case where it failed or went over budget, why)
    stopped: dict[tuple[str, str], tuple[str, str]] = {}
    shuffle = random.Random(0)
    for _ in range(rounds):
        for case in sorted(cases, key=lambda c: (c.n, c.problem)):
            order = list(tools)
            shuffle.shuffle(order)
            for tool in order:
                key = (tool, case.key())
                if key in skipped:
                    continue
                if tool == "jax" and dense_gb(case) > dense_limit:
                    skipped[key] = f"dense Hessians need {dense_gb(case):.1f} GB > {dense_limit}"
                    continue
                where, why = stopped.get((tool, case.problem), (None, ""))
                if where is not None and case.n > Case.parse(where).n:
                    skipped[key] = f"{why} at {Case.parse(where).label}"
                    continue
                if where == case.key():
                    continue  # its one run (or its failure) stands
                # scaleinv, the subject, is given longer than the anchors before it is cut off
                timeout = max((10 if tool == "scaleinv" else 4) * budget, 60)
                result = _worker(tool, case, timeout, fresh)
                if "error" in result:
                    skipped[key] = result["error"]
                    stopped.setdefault((tool, case.problem), (case.key(), "failed"))
                    continue
                runs.setdefault(key, []).append(result)
                if tool != "scaleinv" and result["setup"] + result["step"] > budget:
                    reason = f"over the {budget:g} s budget"
                    stopped.setdefault((tool, case.problem), (case.key(), reason))
    return runs, skipped


def environment() -> str:
    load = ", ".join(f"{v:.2f}" for v in os.getloadavg())
    threads = ", ".join(f"{k}={v}" for k, v in THREADS.items() if k != "XLA_FLAGS")
    return f"load average {load} (cores: {os.cpu_count()}); BLAS threads: {threads}; XLA: 1 thread"


def _cell(values: list[float], width: int) -> str:
    if not values:
        return f"{'—':>{width}}"
    mark = "¹" if len(values) == 1 else ""
    return f"{np.median(values):>{width - 1}.3g}{mark or ' '}"


def _ratio(ours: list[float], theirs: list[float]) -> str:
    if not ours or not theirs:
        return f"{'—':>9}"
    return f"{f'{np.median(ours) / np.median(theirs):.3g}x':>9}"


def table(
    runs: dict[tuple[str, str], list[dict]], cases: Sequence[Case], tools: Sequence[str], what: str
) -> str:
    """Medians of ``what`` ("setup", "step" or "warm") per case and tool, and scaleinv's ratio
    to each anchor (below 1: scaleinv is faster)."""
    anchors = [t for t in tools if t != "scaleinv"]
    head = f"{'case':<20}{'n':>9}" + "".join(f"{t:>11}" for t in tools)
    head += "".join(f"{'/' + a:>9}" for a in anchors if "scaleinv" in tools)
    lines = [head, "-" * len(head)]
    for case in cases:
        values = {t: [r[what] for r in runs.get((t, case.key()), [])] for t in tools}
        row = f"{case.label:<20}{case.n:>9}" + "".join(_cell(values[t], 11) for t in tools)
        if "scaleinv" in tools:
            row += "".join(_ratio(values["scaleinv"], values[a]) for a in anchors)
        lines.append(row)
    return "\n".join(lines)


def disagreements(runs: dict[tuple[str, str], list[dict]], cases: Sequence[Case]) -> list[str]:
    """Tools whose new points differ from the reference tool's (JAX where it ran)."""
    found = []
    for case in cases:
        results = {t: np.asarray(rs[0]["probe"]) for (t, k), rs in runs.items() if k == case.key()}
        if len(results) < 2:
            continue
        ref = next(t for t in ("jax", "jax-cg", "casadi", "scaleinv") if t in results)
        for tool, got in results.items():
            err = float(np.max(np.abs(got - results[ref]) / np.maximum(1, np.abs(results[ref]))))
            if not err <= AGREE:
                found.append(f"{case.label}: {tool} differs from {ref} by {err:.2g}")
    return found


def report(
    runs: dict[tuple[str, str], list[dict]],
    skipped: dict[tuple[str, str], str],
    cases: Sequence[Case],
    tools: Sequence[str],
    missing: Sequence[str],
    rounds: int,
) -> str:
    parts = [
        f"Newton step of ½|P(x) − P(x*)|² from {POINTS} points; median of {rounds} interleaved"
        " rounds (¹: one run), seconds; '/tool': scaleinv's time over that tool's",
        environment(),
        "",
        "setup (construction + derivation + compilation)",
        table(runs, cases, tools, "setup"),
        "",
        f"one Newton step on {POINTS} points, first call after setup",
        table(runs, cases, tools, "step"),
        "",
        "one Newton step, warm (median of two more calls)",
        table(runs, cases, tools, "warm"),
        "",
        "the same warm step in CPU seconds of its process (the machine's load does not count)",
        table(runs, cases, tools, "warm_cpu"),
        "",
        environment(),
    ]
    for tool in missing:
        parts.append(f"{tool}: not installed (pip install 'scaleinv[bench]'): no column")
    for (tool, key), why in sorted(skipped.items()):
        parts.append(f"{tool} not run at {Case.parse(key).label}: {why}")
    for case in cases:
        routes = {r["route"] for r in runs.get(("scaleinv", case.key()), []) if "route" in r}
        parts += [f"scaleinv at {case.label}: {route}" for route in sorted(routes)]
    wrong = disagreements(runs, cases)
    parts += [f"DISAGREE {w}" for w in wrong] or [f"all tools agree to {AGREE:g}"]
    return "\n".join(parts)


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument(
        "--quick", action="store_true", help="tiny sizes, 1 round, in this process (a smoke test)"
    )
    parser.add_argument("--rounds", type=int, default=None, help="rounds (default 3; quick 1)")
    parser.add_argument("--only", default="", help="problems, comma-separated")
    parser.add_argument("--tools", default=",".join(TOOLS), help="tools, comma-separated")
    parser.add_argument(
        "--n", default="", help="only the cases with these numbers of unknowns, comma-separated"
    )
    parser.add_argument("--budget", type=float, default=60.0, help="seconds per run (anchors)")
    parser.add_argument("--dense-gb", type=float, default=4.0, help="memory cap of dense JAX")
    parser.add_argument("--worker", nargs=2, metavar=("TOOL", "CASE"), help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.worker:
        tool, key = args.worker
        print(json.dumps(measure_one(tool, Case.parse(key))))
        return 0
    asked = [t.strip() for t in args.tools.split(",") if t.strip()]
    unknown = sorted(set(asked) - set(TOOLS))
    problems = [p.strip() for p in args.only.split(",") if p.strip()] or list(FULL)
    if unknown or set(problems) - set(FULL):
        parser.error(f"known tools: {', '.join(TOOLS)}; problems: {', '.join(FULL)}")
    tools, missing = installed(asked)
    sizes = QUICK if args.quick else FULL
    cases = [Case(p, s) for p in problems for s in sizes[p]]
    if args.n:
        wanted = {int(n) for n in args.n.split(",")}
        cases = [c for c in cases if c.n in wanted]
    rounds = args.rounds or (1 if args.quick else 3)
    runs, skipped = run_rounds(cases, tools, rounds, args.budget, args.dense_gb, not args.quick)
    print(report(runs, skipped, cases, tools, missing, rounds))
    return 1 if disagreements(runs, cases) else 0


if __name__ == "__main__":
    sys.exit(main())
