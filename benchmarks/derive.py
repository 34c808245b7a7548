"""Time derive + compile (J, H, every kernel, Newton and IG steps) against JAX, SymEngine, CasADi.

Problems: the 12-link planar chain of ``benchmarks/kernels.py`` and one explicit
nonlinear-diffusion step, periodic, ``P_i = x_i + 0.1((x_{i+1} - 2x_i + x_{i-1}) + 0.5 x_i³)``
with loss ``½|P - y*|²``, at n = 64, 256, 1024. What each one does, from expressions to a first
result on 10 points (first calls are where JAX and LLVM compile):

* scaleinv — ``Problem(...)`` built from SymPy expressions (in the total, as every anchor's
  construction of its own expressions is in its total; ``build`` shows that part), then
  ``problem.compile()`` (sparse derivation + every kernel), the compiled Newton and IG steps,
  and one call of the Jacobian, Hessian and both steps;
* JAX — ``jit`` of ``vmap`` of ``jacfwd(P)``, ``hessian(L∘P)`` and the Newton and IG steps
  (``jnp.linalg.solve``), each called once;
* SymEngine — its own expressions (not converted from SymPy), the sparse chain rule (each
  output differentiated only by the inputs it contains; a Hessian entry ``(j, k)`` only where
  ``x_j`` and ``x_k`` share an output) and ``Lambdify(..., backend="llvm", cse=True)`` of the
  nonzero entries of J and H, called once;
* CasADi — SX ``jacobian`` and ``hessian``, and over them the Newton step
  ``solve(H, ∇L, "ldl")`` and the IG step ``solve(JᵀJ, Jᵀ(y* - P), "ldl")`` (sparse LDLᵀ;
  IG's normal equations equal scaleinv's pseudo-inverse where J has full column rank), one
  ``Function`` mapped over the points, called once.

Every number is the median of ``--repeats`` rounds; each round runs every tool once, in a
shuffled order, each run in a fresh subprocess (no cache survives). An anchor that took more
than ``--budget`` seconds at one size is not run at the next (marked ``skip``). ``ratio`` is
scaleinv's time over the best anchor's, ``vs jax`` over JAX's (the target: at most 1 at every
size). An anchor that is not installed prints a ``MISSING`` line
(``pip install 'scaleinv[bench]'``).

Usage::

    python benchmarks/derive.py                 # all sizes, median of 3
    python benchmarks/derive.py --quick         # the diffusion step at n = 8 only, 1 round
    python benchmarks/derive.py --threshold     # sparse vs dense Newton steps by size
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import time
from collections.abc import Callable, Sequence
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
import _harness  # noqa: E402  (before numpy: one BLAS thread)
import numpy as np  # noqa: E402

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))
from _problems import diffusion_problem, diffusion_target  # noqa: E402

ANCHORS = ("jax", "symengine", "casadi")
POINTS = 10


# -- problems --------------------------------------------------------------------------------
def chain_problem(n: int):
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
    return {"build": built - start, "total": done - start}


def _jax_functions(kind: str, n: int) -> tuple[Callable, np.ndarray]:
    import jax.numpy as jnp

    if kind == "chain":
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


def _symengine_outputs(kind: str, n: int, se) -> tuple[list, list, np.ndarray]:
    """The inputs and outputs of a problem written directly in SymEngine, and its target."""
    xs = [se.Symbol(f"x{i}") for i in range(n)]
    if kind == "chain":
        from kernels import chain_target

        phi, px, py, outs = se.Integer(0), se.Integer(0), se.Integer(0), []
        for x in xs:
            phi = phi + x
            px, py = px + se.cos(phi), py + se.sin(phi)
            outs += [px, py]
        return xs, outs, chain_target(n)
    tenth, half = se.Rational(1, 10), se.Rational(1, 2)
    outs = [
        xs[i] + tenth * ((xs[(i + 1) % n] - 2 * xs[i] + xs[i - 1]) + half * xs[i] ** 3)
        for i in range(n)
    ]
    return xs, outs, diffusion_target(n)


def run_symengine(name: str) -> dict[str, float]:
    """The sparse chain rule: only structurally nonzero entries are differentiated."""
    import symengine as se

    start = time.perf_counter()
    xs, outputs, target = _symengine_outputs(*_split(name), se)
    index = {x: j for j, x in enumerate(xs)}
    uses = [sorted(index[v] for v in o.free_symbols) for o in outputs]  # inputs of each output
    jac = [o.diff(xs[j]) for o, js in zip(outputs, uses) for j in js]
    residual = [o - float(t) for o, t in zip(outputs, target)]
    grad: dict[int, object] = {}  # ∂L/∂x_j = Σ_i r_i ∂P_i/∂x_j over the outputs with x_j
    for r, js, entries in zip(residual, uses, _split_entries(jac, uses)):
        for j, d in zip(js, entries):
            grad[j] = grad.get(j, se.Integer(0)) + r * d
    near: dict[int, set[int]] = {}  # x_k that share an output with x_j
    for js in uses:
        for j in js:
            near.setdefault(j, set()).update(js)
    hess = [grad[j].diff(xs[k]) for j in sorted(grad) for k in sorted(near[j]) if k <= j]
    f_jac = se.Lambdify(xs, jac, backend="llvm", cse=True)
    f_hess = se.Lambdify(xs, hess, backend="llvm", cse=True)
    x = _sample(len(xs))
    f_jac(x), f_hess(x)
    return {"total": time.perf_counter() - start}


def _split_entries(flat: list, uses: list[list[int]]) -> list[list]:
    """``flat`` (the Jacobian's nonzeros, output by output) cut into one list per output."""
    out, at = [], 0
    for js in uses:
        out.append(flat[at : at + len(js)])
        at += len(js)
    return out


def run_casadi(name: str) -> dict[str, float]:
    import casadi

    start = time.perf_counter()
    kind, n = _split(name)
    x = casadi.SX.sym("x", n)
    if kind == "chain":
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
    hess, grad = casadi.hessian(loss, x)
    parts = casadi.Function("parts", [x], [casadi.jacobian(P, x), hess, grad, r])
    X = casadi.MX.sym("x", n)  # noqa: N806
    jac, h, g, res = parts(X)
    newton = -casadi.solve(h, g, "ldl")  # sparse LDLᵀ
    ig = casadi.solve(jac.T @ jac, -(jac.T @ res), "ldl")
    f = casadi.Function("f", [X], [jac, h, newton, ig])
    f.map(POINTS)(_sample(n).T)
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
    """The anchors that import; a ``MISSING`` line for each of the others."""
    why = {a: w for a in ANCHORS if (w := _harness.installed(a)) is not None}
    _harness.missing(ANCHORS, why)
    return [a for a in ANCHORS if a not in why]


def measure(names: Sequence[str], repeats: int, budget: float) -> dict[tuple[str, str], dict]:
    """Median seconds per (problem, tool), tools interleaved round by round in a shuffled order;
    ``{}`` where an anchor was skipped (over ``budget`` at a smaller size)."""
    results: dict[tuple[str, str], dict] = {}
    over: set[str] = set()
    tools = ["scaleinv", *installed()]
    for seed, name in enumerate(names):
        runnable = [t for t in tools if t not in over or name.startswith("chain")]
        runs: dict[str, list[dict[str, float]]] = {t: [] for t in runnable}
        for tool in _harness.rounds_of(runnable, repeats, seed):
            runs[tool].append(_in_subprocess(tool, name))
        for tool in tools:
            done = runs.get(tool)
            med = {k: float(np.median([r[k] for r in done])) for k in done[0]} if done else {}
            results[name, tool] = med
            if tool != "scaleinv" and med and med["total"] > budget:
                over.add(tool)
    return results


def table(results: dict[tuple[str, str], dict], names: Sequence[str], repeats: int) -> str:
    tools = ["scaleinv", *(a for a in ANCHORS if (names[0], a) in results)]
    head = f"{'problem':<14}{'build s':>9}" + "".join(f"{t + ' s':>13}" for t in tools)
    head += f"{'best anchor':>14}{'ratio':>8}{'vs jax':>8}"
    title = f"derive + compile + first call, median of {repeats} interleaved fresh runs"
    lines = [title, _harness.machine(), head]
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
    parser.add_argument("--quick", action="store_true", help="diffusion n = 8 only, one round")
    parser.add_argument("--threshold", action="store_true", help="sparse vs dense solves")
    args = parser.parse_args(argv)
    if args.threshold:
        print(threshold([32, 64, 96, 128, 256], 1000))
        return 0
    sizes, repeats = ([8], 1) if args.quick else (args.sizes, args.repeats)
    names = [*([] if args.quick else ["chain12"]), *(f"diffusion{n}" for n in sizes)]
    print(table(measure(names, repeats, args.budget), names, repeats))
    return 0


if __name__ == "__main__":
    sys.exit(main())
