"""Time scaleinv's compiled kernels against hand-written NumPy, SymPy ``lambdify`` (no cse),
SymEngine's LLVM ``Lambdify`` and JAX.

Two problems, 10**6 points each by default:

* ``comparison`` — the chapter's comparison problem ``P = (x0, x1**2)``, ``L = y0**2 + y1**2``;
* ``chain12`` — a 12-link planar chain: joint ``k`` sits at
  ``sum_{i<=k} l_i (cos phi_i, sin phi_i)`` with ``phi_i = theta_0 + ... + theta_i``; the 24
  outputs are the joints' coordinates (``x_1, y_1, x_2, y_2, ...``) and the loss is
  ``½|y - y*|²`` for a fixed reachable target ``y*``.

For each problem the script times the Jacobian, the Hessian and one Newton step:

* ``scaleinv`` — the generated NumPy kernels (``problem.compile(backend="numpy")``, what
  ``scaleinv.export`` writes) and the Newton step over them;
* ``auto`` — what a user gets by default: ``problem.compile()`` (``backend="auto"``) and
  ``scaleinv.rules.newton(1.0).compile(problem)``, after one call on
  ``scaleinv.numeric.backends.HOT_POINTS`` points has let every kernel choose its backend
  (the one-off cost of that call, LLVM compile and measurement included, is printed);
* ``numpy`` — NumPy written by hand (analytic, vectorised; the comparison problem's Newton
  step in closed form, its Hessian being diagonal; the chain's by ``np.linalg.solve``);
* ``lambdify`` — SymPy ``lambdify`` without common-subexpression elimination, entry by entry;
* anchors where installed (``pip install 'scaleinv[bench]'``): ``symengine`` —
  ``Lambdify(backend="llvm", cse=True)`` of the dense J, H and ∇L — and ``jax`` — ``jit`` of
  ``vmap`` of ``jacfwd``/``hessian`` and of a Newton step by ``jnp.linalg.solve`` (float64).

All are first checked to agree with the NumPy kernels on a small sample (relative to each
sample's largest entry: 1e-12 for the ``auto`` J and H, 1e-9 for the others); the script exits
1 if they do not. Timings are medians of ``--repeats`` runs taken round-robin (every
implementation once per round, in a shuffled order, so load drift on a shared machine and
the cache state one leaves for the next hit all alike) after a
warm-up call on 10,000 points (JAX: on the timed batch, as ``jit`` compiles per shape). An
entry stops repeating once its runs add up to ``--budget`` seconds (lambdify without cse
needs minutes per call on the chain's Hessian); the table marks it with ``*``.

Usage::

    python benchmarks/kernels.py               # 10**6 points, median of 5
    python benchmarks/kernels.py --quick       # smoke run
    python benchmarks/kernels.py --points 100000 --repeats 5
    python benchmarks/kernels.py --points 100000 --repeats 11 --no-lambdify  # the anchors
    python benchmarks/kernels.py --compile-times   # LLVM compile time per kernel and size

``--compile-times`` prints, for the chain and the diffusion step of ``benchmarks/derive.py``
(n = 64, 256, 1024), each kernel's program size (``scaleinv.numeric.backends.program_size``),
whether ``backend="auto"`` would compile it, and how long SymEngine's LLVM takes to.
"""

from __future__ import annotations

import argparse
import ast
import importlib.util
import sys
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
import _harness  # noqa: E402  (before numpy: one BLAS thread)
import numpy as np  # noqa: E402
import sympy as sp

import scaleinv
from scaleinv import Problem

Array = np.ndarray
Impl = dict[str, Callable[[Array], Array]]
QUANTITIES = ("jacobian", "hessian", "newton")
ANCHORS = ("symengine", "jax")
RTOL = 1e-9
#: How closely the ``auto`` kernels (LLVM where chosen) must agree with the NumPy kernels
#: (J and H; the Newton step, a solve with H, is held to RTOL).
RTOL_BACKEND = 1e-12


# -- problems -------------------------------------------------------------------------------
def comparison_problem() -> Problem:
    """The comparison problem ``P = (x0, x1**2)``, ``L = y0**2 + y1**2``."""
    return Problem.from_strings(["x0", "x1"], ["x0", "x1**2"], loss="y0**2 + y1**2")


def chain_forward(theta: Array, lengths: Array) -> Array:
    """Joint coordinates ``(..., 2n)`` of a planar chain, ordered ``x_1, y_1, x_2, y_2, ...``."""
    phi = np.cumsum(theta, axis=-1)
    xs = np.cumsum(lengths * np.cos(phi), axis=-1)
    ys = np.cumsum(lengths * np.sin(phi), axis=-1)
    return np.stack([xs, ys], axis=-1).reshape(theta.shape[:-1] + (2 * theta.shape[-1],))


def chain_target(n: int, lengths: Sequence[float] | None = None) -> Array:
    """A fixed reachable target: the joints at angles ``theta*_i = 0.6 sin(i + 1)``."""
    angles = 0.6 * np.sin(np.arange(1, n + 1))
    return chain_forward(angles, _lengths(n, lengths))


def chain_problem(n: int = 12, lengths: Sequence[float] | None = None) -> Problem:
    """The ``n``-link planar chain with loss ``½|y - y*|²``, ``y* =`` :func:`chain_target`."""
    theta = sp.symbols(f"theta0:{n}", real=True)
    ls = [sp.Integer(1)] * n if lengths is None else [sp.sympify(v) for v in lengths]
    outputs: list[sp.Expr] = []
    joint_x, joint_y, phi = sp.Integer(0), sp.Integer(0), sp.Integer(0)
    for length, angle in zip(ls, theta):
        phi += angle
        joint_x += length * sp.cos(phi)
        joint_y += length * sp.sin(phi)
        outputs += [joint_x, joint_y]
    target = [float(v) for v in chain_target(n, lengths)]
    return Problem(theta, outputs, target=target)


def _lengths(n: int, lengths: Sequence[float] | None) -> Array:
    return np.ones(n) if lengths is None else np.asarray(lengths, dtype=np.float64)


# -- hand-written NumPy ----------------------------------------------------------------------
def comparison_numpy() -> Impl:
    """Hand-written Jacobian, Hessian and Newton step of the comparison problem."""

    def jacobian(x: Array) -> Array:
        jac = np.zeros(x.shape[:-1] + (2, 2))
        jac[..., 0, 0] = 1.0
        jac[..., 1, 1] = 2.0 * x[..., 1]
        return jac

    def hessian(x: Array) -> Array:
        hess = np.zeros(x.shape[:-1] + (2, 2))
        hess[..., 0, 0] = 2.0
        hess[..., 1, 1] = 12.0 * x[..., 1] ** 2
        return hess

    def newton(x: Array) -> Array:  # H = diag(2, 12 x1²), ∇L = (2 x0, 4 x1³): -(x0, x1 / 3)
        step = np.empty_like(x)
        np.negative(x[..., 0], out=step[..., 0])
        np.multiply(x[..., 1], -1.0 / 3.0, out=step[..., 1])
        return step

    return {"jacobian": jacobian, "hessian": hessian, "newton": newton}


@dataclass(frozen=True)
class ChainNumpy:
    """Hand-written derivatives of the planar chain with loss ``½|y - y*|²``.

    With ``c_i = l_i cos phi_i``, ``s_i = l_i sin phi_i`` and their running sums ``C_k``,
    ``S_k`` (the joint coordinates), ``∂x_k/∂θ_j = -(S_k - S_{j-1})`` and
    ``∂y_k/∂θ_j = C_k - C_{j-1}`` for ``j <= k``; the second derivatives depend on
    ``p = max(a, b)`` only: ``∂²x_k/∂θ_a∂θ_b = -(C_k - C_{p-1})``, ``∂²y_k = -(S_k - S_{p-1})``.
    The Hessian is ``JᵀJ + Σ_k r_k ∇²y_k`` with residual ``r = y - y*``.
    """

    lengths: Array
    target: Array
    _lower: Array = field(init=False, repr=False)
    _pmax: Array = field(init=False, repr=False)

    def __post_init__(self) -> None:
        n = len(self.lengths)
        object.__setattr__(self, "_lower", np.tri(n)[:, None, :])  # [k, ., j] = (j <= k)
        object.__setattr__(self, "_pmax", np.maximum.outer(np.arange(n), np.arange(n)))

    def _sums(self, theta: Array) -> tuple[Array, Array, Array, Array]:
        phi = np.cumsum(theta, axis=-1)
        c, s = self.lengths * np.cos(phi), self.lengths * np.sin(phi)
        return c, s, np.cumsum(c, axis=-1), np.cumsum(s, axis=-1)

    def _jacobian(self, c: Array, s: Array, C: Array, S: Array) -> Array:
        n = c.shape[-1]
        jac = np.empty(c.shape[:-1] + (n, 2, n))
        np.subtract((S - s)[..., None, :], S[..., :, None], out=jac[..., 0, :])
        np.subtract(C[..., :, None], (C - c)[..., None, :], out=jac[..., 1, :])
        jac *= self._lower
        return jac.reshape(c.shape[:-1] + (2 * n, n))

    def _residual(self, C: Array, S: Array) -> Array:
        return np.stack([C, S], axis=-1).reshape(C.shape[:-1] + (-1,)) - self.target

    def _hessian(self, jac: Array, r: Array, c: Array, s: Array, C: Array, S: Array) -> Array:
        rx, ry = r[..., 0::2], r[..., 1::2]

        def tail(a: Array) -> Array:  # sum over k >= p
            return np.cumsum(a[..., ::-1], axis=-1)[..., ::-1]

        # g_p = Σ_{k>=p} r_k ∇²y_k = -Σ_{k>=p} rx_k (C_k - C_{p-1}) + ry_k (S_k - S_{p-1})
        g = (C - c) * tail(rx) + (S - s) * tail(ry) - tail(rx * C + ry * S)
        hess = jac.mT @ jac
        hess += np.take(g, self._pmax, axis=-1)  # g[..., pmax], without fancy indexing
        return hess

    def jacobian(self, theta: Array) -> Array:
        """``∂y/∂θ``, shape ``(..., 2n, n)``."""
        return self._jacobian(*self._sums(theta))

    def hessian(self, theta: Array) -> Array:
        """``∂²L/∂θ²``, shape ``(..., n, n)``."""
        c, s, C, S = self._sums(theta)
        return self._hessian(self._jacobian(c, s, C, S), self._residual(C, S), c, s, C, S)

    def newton(self, theta: Array) -> Array:
        """The unit Newton step ``-H⁻¹ ∇L``, shape ``(..., n)``."""
        c, s, C, S = self._sums(theta)
        jac, r = self._jacobian(c, s, C, S), self._residual(C, S)
        grad = jac.mT @ r[..., None]
        return -np.linalg.solve(self._hessian(jac, r, c, s, C, S), grad)[..., 0]

    def impl(self) -> Impl:
        return {"jacobian": self.jacobian, "hessian": self.hessian, "newton": self.newton}


# -- SymPy lambdify without cse, and scaleinv ------------------------------------------------
def lambdify_entrywise(problem: Problem) -> Impl:
    """``lambdify(modules="numpy", cse=False)`` of each entry list, stacked to ``(..., m, n)``."""

    def entrywise(matrix: sp.Matrix) -> Callable[[Array], Array]:
        shape = (matrix.rows,) if matrix.cols == 1 else (matrix.rows, matrix.cols)
        f = sp.lambdify(problem.inputs, list(matrix), modules="numpy", cse=False)

        def run(x: Array) -> Array:
            batch = x.shape[:-1]
            entries = f(*np.moveaxis(x, -1, 0))
            stacked = np.stack([np.broadcast_to(e, batch) for e in entries], axis=-1)
            return stacked.reshape(batch + shape)

        return run

    hessian, gradient = entrywise(problem.hessian), entrywise(problem.gradient)

    def newton(x: Array) -> Array:
        return -np.linalg.solve(hessian(x), gradient(x)[..., None])[..., 0]

    return {"jacobian": entrywise(problem.jacobian), "hessian": hessian, "newton": newton}


def symengine_llvm(problem: Problem) -> Impl | None:
    """SymEngine ``Lambdify(backend="llvm", cse=True)`` of J, H and ∇L (None if not installed)."""
    if importlib.util.find_spec("symengine") is None:
        return None
    import symengine as se

    xs = [se.Symbol(str(s)) for s in problem.inputs]

    def compiled(matrix: sp.Matrix) -> Callable[[Array], Array]:
        rows = [[se.sympify(e) for e in matrix.row(i)] for i in range(matrix.rows)]
        f = se.Lambdify(xs, rows, backend="llvm", cse=True)
        shape = (matrix.rows, matrix.cols)
        return lambda x: np.asarray(f(x)).reshape(x.shape[:-1] + shape)

    jacobian, hessian, gradient = (
        compiled(m) for m in (problem.jacobian, problem.hessian, problem.gradient)
    )

    def newton(x: Array) -> Array:
        return -np.linalg.solve(hessian(x), gradient(x))[..., 0]

    return {"jacobian": jacobian, "hessian": hessian, "newton": newton}


def jax_impl(name: str, problem: Problem) -> Impl | None:
    """JAX ``jit(vmap(...))`` of J, H and the Newton step, float64 (None if not installed)."""
    if importlib.util.find_spec("jax") is None:
        return None
    import jax

    jax.config.update("jax_enable_x64", True)
    import jax.numpy as jnp

    if name == "comparison":

        def P(x):  # noqa: N802
            return jnp.stack([x[0], x[1] ** 2])

        def loss(x):
            return jnp.sum(P(x) ** 2)

    else:
        target = jnp.asarray([float(t) for t in problem.target])

        def P(theta):  # noqa: N802
            phi = jnp.cumsum(theta)
            return jnp.stack([jnp.cumsum(jnp.cos(phi)), jnp.cumsum(jnp.sin(phi))], -1).ravel()

        def loss(x):
            r = P(x) - target
            return 0.5 * jnp.dot(r, r)

    def newton_one(x):
        return -jnp.linalg.solve(jax.hessian(loss)(x), jax.grad(loss)(x))

    def run(f: Callable) -> Callable[[Array], Array]:
        jitted = jax.jit(jax.vmap(f))
        return lambda x: np.asarray(jitted(x).block_until_ready())

    return {
        "jacobian": run(jax.jacfwd(P)),
        "hessian": run(jax.hessian(loss)),
        "newton": run(newton_one),
    }


def scaleinv_impl(problem: Problem, backend: str = "numpy") -> Impl:
    """scaleinv's compiled Jacobian and Hessian kernels and its Newton step over them.

    ``backend="auto"`` is the default path of a user (``problem.compile()`` and the rule's
    compiled step); ``"numpy"`` the generated NumPy kernels with the same step source.
    """
    kernels = problem.compile(backend)
    rule = scaleinv.rules.newton(1.0)
    if backend == "auto":
        step = rule.compile(problem).step
    else:  # the rule's step source over this backend's kernels
        namespace = scaleinv.rules.step_namespace(problem)
        namespace.update({k.name: k.func for k in kernels.all()})
        exec(rule.step_source(), namespace)  # noqa: S102 - scaleinv's own step template
        newton = namespace[rule.step_name]
        step = lambda x, state: (*newton(x), state)  # noqa: E731
    return {
        "jacobian": kernels.jacobian.func,
        "hessian": kernels.hessian.func,
        "newton": lambda x: step(x, None)[0],
    }


# -- program sizes ---------------------------------------------------------------------------
def operations(source: str) -> tuple[int, int]:
    """(temporaries, NumPy operations) of a kernel's block loop: assignments to ``_t*`` names,
    and binary operators, unary operators and calls (each one NumPy call per block)."""
    loop = next(n for n in ast.walk(ast.parse(source)) if isinstance(n, ast.For))
    temps = sum(
        isinstance(s, ast.Assign) and getattr(s.targets[0], "id", "").startswith("_t")
        for s in loop.body
    )
    nodes = [node for statement in loop.body for node in ast.walk(statement)]
    return temps, sum(isinstance(node, (ast.BinOp, ast.UnaryOp, ast.Call)) for node in nodes)


def program_sizes(problem: Problem) -> str:
    """Temporaries and operations of the P, J, gradient and H kernels, and the route (where
    this scaleinv has one: derivatives on the graph or cse of the expanded formulas)."""
    kernels = problem.compile()
    route = getattr(problem.sparse, "route", "expanded")
    cells = []
    for name in ("P", "jacobian", "gradient", "hessian"):
        temps, ops = operations(getattr(kernels, name).source)
        cells.append(f"{name} {temps} temps / {ops} ops")
    return f"route {route}: " + ", ".join(cells)


# -- the benchmark ---------------------------------------------------------------------------
@dataclass
class Case:
    """One problem: its implementations, sample points and one-off costs (seconds)."""

    name: str
    impls: dict[str, Impl]
    sample: Callable[[np.random.Generator, int], Array]
    costs: dict[str, float]
    problem: Problem


def _timed(fn: Callable[[], object]) -> tuple[object, float]:
    start = time.perf_counter()
    value = fn()
    return value, time.perf_counter() - start


def build_case(
    name: str,
    problem: Problem,
    hand: Impl,
    sample: Callable,
    anchors: Sequence[str] = ANCHORS,
    lambdify: bool = True,
) -> Case:
    """Derive, compile and lambdify ``problem``, recording how long each one-off step takes
    (``anchors``: which of SymEngine and JAX to add where installed)."""
    from scaleinv.numeric.backends import HOT_POINTS

    costs = {}
    for what in ("jacobian", "gradient", "hessian"):
        costs[f"derive {what}"] = _timed(lambda what=what: getattr(problem, what))[1]
    ours, costs["scaleinv compile"] = _timed(lambda: scaleinv_impl(problem))
    auto = scaleinv_impl(problem, "auto")
    hot = sample(np.random.default_rng(2), HOT_POINTS)
    first = _timed(lambda: [f(hot) for f in auto.values()])[1]
    costs["auto: first hot call (J, H, Newton)"] = first
    impls = {"scaleinv": ours, "auto": auto, "numpy": hand}
    if lambdify:
        impls["lambdify"], costs["lambdify (no cse)"] = _timed(lambda: lambdify_entrywise(problem))
    if "symengine" in anchors:  # optional anchors: pip install 'scaleinv[bench]'
        llvm, cost = _timed(lambda: symengine_llvm(problem))
        if llvm is not None:
            impls["symengine"], costs["symengine llvm"] = llvm, cost
    if "jax" in anchors:
        jax_fns = jax_impl(name, problem)
        if jax_fns is not None:  # jit compiles at the first call of each shape (not timed)
            impls["jax"] = jax_fns
    why = {a: _harness.installed(a) or "no implementation" for a in anchors if a not in impls}
    _harness.missing(anchors, why)
    return Case(name, impls, sample, costs, problem)


def backends_chosen(problem: Problem) -> str:
    """Which backend each of the problem's ``auto`` kernels runs on, and why."""
    kernels = problem.compile()
    return "; ".join(f"{k.name}: {k.backend_reason}" for k in kernels.all())


def cases(links: int, anchors: Sequence[str] = ANCHORS, lambdify: bool = True) -> list[Case]:
    """The comparison problem and the ``links``-link chain."""
    chain = chain_problem(links)
    chain_hand = ChainNumpy(_lengths(links, None), chain_target(links))

    def comparison_points(rng: np.random.Generator, size: int) -> Array:
        return rng.uniform(0.5, 2.0, (size, 2)) * rng.choice([-1.0, 1.0], (size, 2))

    def chain_points(rng: np.random.Generator, size: int) -> Array:
        return rng.uniform(-np.pi, np.pi, (size, links))

    return [
        build_case(
            "comparison",
            comparison_problem(),
            comparison_numpy(),
            comparison_points,
            anchors,
            lambdify,
        ),
        build_case(f"chain{links}", chain, chain_hand.impl(), chain_points, anchors, lambdify),
    ]


def check(case: Case, size: int = 64) -> list[str]:
    """Disagreements (relative to each sample's largest entry) between the implementations."""
    x = case.sample(np.random.default_rng(1), size)
    hess = case.impls["numpy"]["hessian"](x)
    x = x[np.linalg.cond(hess) < 1e6]  # Newton steps compared where H is well conditioned
    problems = []
    for quantity in QUANTITIES:
        ref = case.impls["scaleinv"][quantity](x)
        scale = np.abs(ref).reshape(len(x), -1).max(axis=1)
        for other in [k for k in case.impls if k != "scaleinv"]:
            got = case.impls[other][quantity](x)
            err = np.abs(got - ref).reshape(len(x), -1).max(axis=1) / scale
            # the Newton step solves with H (condition numbers up to 1e6 here): RTOL for it
            rtol = RTOL_BACKEND if other == "auto" and quantity != "newton" else RTOL
            if got.shape != ref.shape or not np.all(err <= rtol):
                worst = f"{err.max():.1e}" if got.shape == ref.shape else f"shape {got.shape}"
                problems.append(f"{case.name} {quantity}: {other} differs from scaleinv ({worst})")
    return problems


Runs = dict[tuple[str, str], list[float]]


def measure(case: Case, points: int, repeats: int, budget: float) -> Runs:
    """Seconds of each run per (quantity, implementation), taken round-robin in a shuffled
    order per round (so no implementation always runs in the cache state another leaves)."""
    x = case.sample(np.random.default_rng(0), points)
    runs: Runs = {}
    for seed, quantity in enumerate(QUANTITIES):
        for name, impl in case.impls.items():
            impl[quantity](x if name == "jax" else x[:10_000])  # warm-up (jit: per shape)
        tools = {name: (lambda fn=impl[quantity]: fn(x)) for name, impl in case.impls.items()}
        for name, seconds in _harness.interleave(tools, repeats, seed=seed, budget=budget).items():
            runs[quantity, name] = seconds
    return runs


def medians(runs: Runs) -> dict[tuple[str, str], float]:
    return {key: float(np.median(seconds)) for key, seconds in runs.items()}


def table(results: dict[str, Runs], points: int, repeats: int) -> str:
    """The side-by-side table of medians and ratios (SymEngine LLVM and JAX where installed)."""
    optional = ("lambdify", *ANCHORS)
    names = ["scaleinv", "auto", "numpy"]
    names += [a for a in optional if any((QUANTITIES[0], a) in r for r in results.values())]
    ratios = [("scaleinv/numpy", "scaleinv", "numpy")]
    ratios += [("lambdify/scaleinv", "lambdify", "scaleinv")] if "lambdify" in names else []
    ratios += [("scaleinv/auto", "scaleinv", "auto")]
    ratios += [(f"auto/{a}", "auto", a) for a in ANCHORS if a in names]
    ratios += [(f"scaleinv/{a}", "scaleinv", a) for a in ANCHORS if a in names]
    head = f"{'problem':<12}{'quantity':<10}" + "".join(f"{n + ' s':>12}" for n in names)
    head += "".join(f"{label:>{max(len(label) + 2, 10)}}" for label, _, _ in ratios)
    title = f"{points:,} points, median of {repeats} interleaved rounds (seconds)"
    lines = [title, _harness.machine(), head, "-" * len(head)]
    short = []
    for case, runs in results.items():
        m = medians(runs)
        for q in QUANTITIES:
            cells = []
            for impl in names:
                mark = "*" if len(runs[q, impl]) < repeats else " "
                cells.append(f"{m[q, impl]:.4g}{mark}")
                if mark == "*":
                    short.append(f"{case} {q} {impl}: {len(runs[q, impl])} run(s)")
            line = f"{case:<12}{q:<10}" + "".join(f"{c:>12}" for c in cells)
            for label, a, b in ratios:
                line += f"{m[q, a] / m[q, b]:>{max(len(label) + 2, 10) - 1}.2f}x"
            lines.append(line)
    if short:
        lines.append("* fewer runs (budget reached): " + "; ".join(short))
    return "\n".join(lines)


def compile_times(sizes: Sequence[int] = (64, 256, 1024)) -> str:
    """LLVM compile seconds per kernel against its program size (what MAX_SIZE bounds)."""
    from pathlib import Path

    from scaleinv.numeric import backends

    sys.path.insert(0, str(Path(__file__).resolve().parent))
    from _problems import diffusion_problem

    problems = [("chain12", chain_problem(12))]
    problems += [(f"diffusion{n}", diffusion_problem(n)) for n in sizes]
    lines = [f"{'problem':<14}{'kernel':<17}{'size':>9}{'auto compiles':>15}{'llvm s':>9}"]
    for name, problem in problems:
        for kernel in problem.compile("numpy").all():
            if kernel.program is None:
                continue
            size = backends.program_size(kernel.program)
            _, seconds = _timed(lambda k=kernel: backends.LLVMKernel(k.name, k.program))
            allowed = "yes" if size <= backends.MAX_SIZE else "no"
            lines.append(f"{name:<14}{kernel.name:<17}{size:>9,}{allowed:>15}{seconds:>9.3f}")
    return "\n".join(lines)


def arguments(argv: Sequence[str] | None = None) -> argparse.Namespace:
    """The command line: ``--anchors`` names at least one anchor; ``--no-anchors`` none."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--points", type=int, default=10**6, help="points per batch")
    parser.add_argument("--repeats", type=int, default=5, help="timed runs per entry")
    parser.add_argument("--links", type=int, default=12, help="links of the chain")
    parser.add_argument(
        "--budget", type=float, default=120.0, help="seconds after which an entry stops repeating"
    )
    parser.add_argument("--quick", action="store_true", help="smoke run: 20,000 points, 2 runs")
    parser.add_argument(
        "--compile-times", action="store_true", help="LLVM compile time per kernel, then exit"
    )
    anchors = parser.add_mutually_exclusive_group()
    anchors.add_argument(
        "--anchors", nargs="+", choices=ANCHORS, default=list(ANCHORS),
        help="the anchors to time (default: all; one not installed prints MISSING)",
    )  # fmt: skip
    anchors.add_argument("--no-anchors", dest="anchors", action="store_const", const=[])
    parser.add_argument(
        "--no-lambdify", action="store_true", help="leave out lambdify (minutes on the chain)"
    )
    return parser.parse_args(argv)


def main(argv: Sequence[str] | None = None) -> int:
    args = arguments(argv)
    if args.compile_times:
        print(compile_times())
        return 0
    points, repeats = (20_000, 2) if args.quick else (args.points, args.repeats)

    all_cases = cases(args.links, args.anchors, not args.no_lambdify)
    problems = [p for case in all_cases for p in check(case)]
    if problems:
        print("implementations disagree:", *problems, sep="\n  ", file=sys.stderr)
        return 1
    print(
        f"correctness: all implementations agree with the NumPy kernels to {RTOL:g} "
        f"(auto J and H: {RTOL_BACKEND:g}) relative, on 64 sample points"
    )
    print("one-off costs (s):")
    for case in all_cases:
        print(f"  {case.name:<12}" + ", ".join(f"{k} {v:.2f}" for k, v in case.costs.items()))
    print(f"kernel programs of chain{args.links}:", program_sizes(chain_problem(args.links)))
    print("auto backends chosen:")
    for case in all_cases:
        print(f"  {case.name:<12}{backends_chosen(case.problem)}")
    results = {case.name: measure(case, points, repeats, args.budget) for case in all_cases}
    print(table(results, points, repeats))
    ratios = [
        (m[q, "scaleinv"] / m[q, "numpy"], f"{name} {q}")
        for name, m in ((name, medians(runs)) for name, runs in results.items())
        for q in QUANTITIES
    ]
    worst, where = max(ratios)
    chain = medians(results[all_cases[-1].name])
    verdict = "met" if worst <= 1.5 else "missed"
    print(f"target scaleinv/numpy <= 1.5: {verdict} (worst {worst:.2f}x, {where})")
    if ("hessian", "lambdify") in chain:
        speedup = chain["hessian", "lambdify"] / chain["hessian", "scaleinv"]
        print(
            f"target chain Hessian lambdify/scaleinv >= 10: "
            f"{'met' if speedup >= 10 else 'missed'} ({speedup:.1f}x)"
        )
    if ("jacobian", "symengine") in chain:
        worst, where = max((chain[q, "auto"] / chain[q, "symengine"], q) for q in QUANTITIES)
        verdict = "met" if worst <= 1.0 else "missed"
        print(f"target chain auto/symengine-llvm <= 1.0: {verdict} (worst {worst:.2f}x, {where})")
    return 0


if __name__ == "__main__":
    sys.exit(main())
