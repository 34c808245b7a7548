"""Time derive + compile (J, H, every kernel, Newton and IG steps) against JAX, SymEngine, CasADi.

Problems: the 12-link planar chain of ``benchmarks/kernels.py`` and one explicit
nonlinear-diffusion step, periodic, ``P_i = x_i + 0.1((x_{i+1} - 2x_i + x_{i-1}) + 0.5 x_i³)``
with loss ``½|P - y*|²``, at n = 64, 256, 1024. What each one does, from expressions to a first
result on 10 points (first calls are where JAX and LLVM compile):

* scaleinv — ``Problem(...)`` is built first (reported apart: it is the user writing down
  ``P``), then ``problem.compile()`` (sparse derivation + every kernel), the compiled Newton and
  IG steps, and one call of the Jacobian, Hessian and both steps;
* JAX — ``jit`` of ``vmap`` of ``jacfwd(P)``, ``hessian(L∘P)`` and the Newton and IG steps
  (``jnp.linalg.solve``), each called once;
* SymEngine — ``diff`` of every Jacobian and Hessian entry (dense, as its API gives them) and
  ``Lambdify(..., backend="llvm", cse=True)`` of J and H, called once;
* CasADi — SX ``jacobian`` and ``hessian``, ``Function`` of J and H, called once.

Every number is the median of ``--repeats`` runs (each run in a fresh subprocess, so no cache
survives). An anchor that took more than ``--budget`` seconds at one size is not run at the
next (marked ``skip``). ``ratio`` is scaleinv's time over the best anchor's, ``vs jax`` over
JAX's (the target: at most 1 at every size). ``build`` (not in scaleinv's total) is the
construction of the SymPy problem from expressions. Anchors
that are not installed are left out (``pip install 'scaleinv[bench]'``).

Usage::

    python benchmarks/derive.py                 # all sizes, median of 3
    python benchmarks/derive.py --quick         # chain and n = 64 only, 1 run
    python benchmarks/derive.py --threshold     # sparse vs dense Newton steps by size
"""

from __future__ import annotations

import argparse
import importlib.util
import json
import subprocess
import sys
import time
from collections.abc import Callable, Sequence
from pathlib import Path

import numpy as np

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))
from problems import diffusion_problem, diffusion_target  # noqa: E402

ANCHORS = ("jax", "symengine", "casadi")
POINTS = 10


# -- problems --------------------------------------------------------------------------------
def chain_problem(n: int):
    sys.path.insert(0, str(HERE))
    from kernels import chain_problem as build

    return build(n)


def _problem(name: str):
    kind, n = _split(name)
    return chain_problem(n) if kind == "chain" else diffusion_problem(n)


def _split(name: str) -> tuple[str, int]:
    kind = "chain" if name.startswith("chain") else "diffusion"
    return kind, int(name.removeprefix(kind))


def _sample(n: int) -> np.ndarray:
    return np.random.default_rng(0).uniform(-0.5, 0.5, (POINTS, n))


# -- one run of each tool (called in a fresh subprocess) -------------------------------------
def run_scaleinv(name: str) -> dict[str, float]:
    from scaleinv import rules

    start = time.perf_counter()
    problem = _problem(name)
    built = time.perf_counter()
    kernels = problem.compile()
    newton = rules.newton(1.0).compile(problem).step
    ig = rules.ig(1.0).compile(problem).step
    x = _sample(problem.n)
    kernels.jacobian_values(x), kernels.hessian_values(x), newton(x, None), ig(x, None)
    done = time.perf_counter()
    return {"build": built - start, "total": done - built}


def _jax_functions(kind: str, n: int) -> tuple[Callable, np.ndarray]:
    import jax.numpy as jnp

    if kind == "chain":
        sys.path.insert(0, str(HERE))
        from kernels import chain_target

        target = chain_target(n)

        def P(theta):  # noqa: N802
            phi = jnp.cumsum(theta)
            xs, ys = jnp.cumsum(jnp.cos(phi)), jnp.cumsum(jnp.sin(phi))
            return jnp.stack([xs, ys], axis=-1).reshape(-1)

        return P, target
    target = diffusion_target(n)

    def P(x):  # noqa: N802
        return x + 0.1 * ((jnp.roll(x, -1) - 2 * x + jnp.roll(x, 1)) + 0.5 * x**3)

    return P, target


def run_jax(name: str) -> dict[str, float]:
    import jax

    jax.config.update("jax_enable_x64", True)
    import jax.numpy as jnp

    start = time.perf_counter()
    kind, n = _split(name)
    P, target = _jax_functions(kind, n)

    def loss(x):
        r = P(x) - target
        return 0.5 * jnp.dot(r, r)

    jac = jax.jit(jax.vmap(jax.jacfwd(P)))
    hess = jax.jit(jax.vmap(jax.hessian(loss)))

    def newton_one(x):
        return -jnp.linalg.solve(jax.hessian(loss)(x), jax.grad(loss)(x))

    def ig_one(x):  # the pseudo-inverse where J is not square (the chain), as scaleinv's IG
        jac = jax.jacfwd(P)(x)
        if jac.shape[0] != jac.shape[1]:
            return jnp.linalg.pinv(jac) @ (target - P(x))
        return jnp.linalg.solve(jac, target - P(x))

    newton, ig = jax.jit(jax.vmap(newton_one)), jax.jit(jax.vmap(ig_one))
    x = jnp.asarray(_sample(n))
    for f in (jac, hess, newton, ig):
        f(x).block_until_ready()
    return {"total": time.perf_counter() - start}


def run_symengine(name: str) -> dict[str, float]:
    import symengine as se

    problem = _problem(name)
    start = time.perf_counter()
    xs = [se.Symbol(str(s)) for s in problem.inputs]
    outputs = [se.sympify(e) for e in problem.outputs]
    target = [float(t) for t in problem.target]
    loss = sum(((o - t) ** 2 for o, t in zip(outputs, target)), se.Integer(0)) / 2
    jac = [[o.diff(x) for x in xs] for o in outputs]
    grad = [loss.diff(x) for x in xs]
    hess = [[g.diff(x) for x in xs] for g in grad]
    f_jac = se.Lambdify(xs, jac, backend="llvm", cse=True)
    f_hess = se.Lambdify(xs, hess, backend="llvm", cse=True)
    x = _sample(problem.n)
    f_jac(x), f_hess(x)
    return {"total": time.perf_counter() - start}


def run_casadi(name: str) -> dict[str, float]:
    import casadi

    start = time.perf_counter()
    kind, n = _split(name)
    x = casadi.SX.sym("x", n)
    if kind == "chain":
        sys.path.insert(0, str(HERE))
        from kernels import chain_target

        target = chain_target(n)
        phi, px, py, outs = 0, 0, 0, []
        for i in range(n):
            phi = phi + x[i]
            px, py = px + casadi.cos(phi), py + casadi.sin(phi)
            outs += [px, py]
    else:
        target = diffusion_target(n)
        outs = [
            x[i] + 0.1 * ((x[(i + 1) % n] - 2 * x[i] + x[i - 1]) + 0.5 * x[i] ** 3)
            for i in range(n)
        ]
    P = casadi.vertcat(*outs)
    r = P - casadi.DM(target)
    loss = 0.5 * casadi.dot(r, r)
    hess, _ = casadi.hessian(loss, x)
    f = casadi.Function("f", [x], [casadi.jacobian(P, x), hess])
    fmap = f.map(POINTS)
    fmap(_sample(n).T)
    return {"total": time.perf_counter() - start}


RUNNERS = {"scaleinv": run_scaleinv, "jax": run_jax, "symengine": run_symengine}
RUNNERS["casadi"] = run_casadi


# -- driver ----------------------------------------------------------------------------------
def _in_subprocess(tool: str, name: str) -> dict[str, float]:
    code = (
        "import json, sys; sys.path.insert(0, sys.argv[1]); import derive; "
        "print(json.dumps(derive.RUNNERS[sys.argv[2]](sys.argv[3])))"
    )
    out = subprocess.run(
        [sys.executable, "-c", code, str(HERE), tool, name],
        capture_output=True,
        text=True,
        check=True,
    )
    return json.loads(out.stdout.strip().splitlines()[-1])


def installed() -> list[str]:
    return [a for a in ANCHORS if importlib.util.find_spec(a) is not None]


def measure(names: Sequence[str], repeats: int, budget: float) -> dict[tuple[str, str], dict]:
    """Median seconds per (problem, tool); ``None`` where an anchor was skipped."""
    results: dict[tuple[str, str], dict] = {}
    over: set[str] = set()
    for name in names:
        for tool in ["scaleinv", *installed()]:
            if tool in over and not name.startswith("chain"):
                results[name, tool] = {}
                continue
            runs = [_in_subprocess(tool, name) for _ in range(repeats)]
            med = {k: float(np.median([r[k] for r in runs])) for k in runs[0]}
            results[name, tool] = med
            if tool != "scaleinv" and med["total"] > budget:
                over.add(tool)
    return results


def table(results: dict[tuple[str, str], dict], names: Sequence[str], repeats: int) -> str:
    tools = ["scaleinv", *installed()]
    head = f"{'problem':<14}{'build s':>9}" + "".join(f"{t + ' s':>13}" for t in tools)
    head += f"{'best anchor':>14}{'ratio':>8}{'vs jax':>8}"
    lines = [f"derive + compile + first call, median of {repeats} fresh runs", head]
    lines.append("-" * len(head))
    for name in names:
        ours = results[name, "scaleinv"]
        cells = [f"{ours['total']:>13.3f}"]
        anchors = {}
        for tool in tools[1:]:
            value = results[name, tool].get("total")
            cells.append(f"{'skip':>13}" if value is None else f"{value:>13.3f}")
            if value is not None:
                anchors[tool] = value
        best = min(anchors, key=anchors.get) if anchors else None
        ratio = f"{ours['total'] / anchors[best]:>7.2f}x" if best else f"{'-':>8}"
        jax = f"{ours['total'] / anchors['jax']:>7.2f}x" if "jax" in anchors else f"{'-':>8}"
        lines.append(
            f"{name:<14}{ours['build']:>9.3f}" + "".join(cells) + f"{best or '-':>14}{ratio}{jax}"
        )
    return "\n".join(lines)


def threshold(sizes: Sequence[int], points: int) -> str:
    """Newton step, dense batched LAPACK vs the SciPy block-diagonal sparse LU, by size."""
    from scaleinv.numeric import runtime
    from scaleinv.numeric.sparse import sparse_solve

    lines = [f"Newton solve on the diffusion step, {points} points (best of 3, seconds)"]
    lines.append(f"{'n':>6}{'density':>9}{'dense':>10}{'sparse':>10}{'sparse/dense':>14}")
    for n in sizes:
        k = diffusion_problem(n).compile()
        pat = k.hessian_pattern
        x = np.random.default_rng(0).uniform(-1, 1, (points, n))
        g = k.gradient(x)
        values = k.hessian_values(x)

        def dense(values=values, g=g, pat=pat, n=n) -> object:
            a = np.zeros((len(values), n, n))
            a[:, pat.rows, pat.cols] = values
            return runtime.solve(a, g)

        def sparse(values=values, g=g, pat=pat) -> object:
            return sparse_solve((pat.rows, pat.cols, pat.shape), values, g)

        best = {}
        for label, fn in (("dense", dense), ("sparse", sparse)):
            times = []
            for _ in range(3):
                t = time.perf_counter()
                fn()
                times.append(time.perf_counter() - t)
            best[label] = min(times)
        density = len(pat.rows) / n / n
        lines.append(
            f"{n:>6}{density:>9.3f}{best['dense']:>10.4f}{best['sparse']:>10.4f}"
            f"{best['sparse'] / best['dense']:>13.2f}x"
        )
    return "\n".join(lines)


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=3, help="fresh runs per entry")
    parser.add_argument("--sizes", type=int, nargs="*", default=[64, 256, 1024])
    parser.add_argument("--budget", type=float, default=60.0, help="skip an anchor after this")
    parser.add_argument("--quick", action="store_true", help="chain and n = 64, one run")
    parser.add_argument("--threshold", action="store_true", help="sparse vs dense solves")
    args = parser.parse_args(argv)
    if args.threshold:
        print(threshold([32, 64, 96, 128, 256], 1000))
        return 0
    sizes, repeats = ([64], 1) if args.quick else (args.sizes, args.repeats)
    names = ["chain12", *(f"diffusion{n}" for n in sizes)]
    print(f"anchors installed: {', '.join(installed()) or 'none'}")
    print(table(measure(names, repeats, args.budget), names, repeats))
    return 0


if __name__ == "__main__":
    sys.exit(main())
