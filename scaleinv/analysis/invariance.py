r"""Scale-invariance of an update rule: proved, refuted with a counterexample, or undecided.

The chapter calls an optimization scale-invariant when it "yields the same result for
different parametrizations (i.e. scalings) of the function". For a transform ``x = g(u)`` (see
:mod:`scaleinv.analysis.transforms`) :func:`scale_invariance` derives the rule's update on the
original problem, ``Δx``, and on the transformed one, ``Δu``, maps ``Δu`` back to x-space and
decides whether the two agree identically:

.. math:: \Delta x\big(g(u)\big) = \frac{\partial g}{\partial u} \Delta u
   \quad\text{(first-order rules)}, \qquad
   \Delta x\big(g(u)\big) = g(u + \Delta u) - g(u) \quad\text{(PG, branch by branch)}.

For linear ``g`` both sides are the same. A question about a linear (or affine) input map or
an output scaling is first matched to a theorem of :mod:`scaleinv.analysis.theorems` (derived
once with generic matrices, so the verdict does not depend on the size of ``P``); only when
none applies are the two concrete updates simplified. ``route`` on the report says which
decided. :func:`trajectory_invariance` is the numeric twin: it runs
:func:`~scaleinv.numeric.minimize` on both problems and compares the mapped trajectories.
"""

from __future__ import annotations

import dataclasses
import warnings
from collections.abc import Mapping
from dataclasses import dataclass
from types import MappingProxyType
from typing import Any, cast

import numpy as np
import sympy as sp

from scaleinv.analysis.theorem_route import decide_by_theorem
from scaleinv.analysis.transforms import (
    InputScaling,
    OutputScaling,
    Reparametrization,
    Transform,
    Transformed,
)
from scaleinv.analysis.verdict import Counterexample, Step, Verdict, decide_equal, sample_values
from scaleinv.errors import BudgetExceeded, NumericInverseWarning, NumericOnlyError, ProblemError
from scaleinv.markup import markdown_math, markdown_text
from scaleinv.numeric import Trajectory, compile_kernel, minimize
from scaleinv.numeric.rules import Rule
from scaleinv.symbolic import Problem
from scaleinv.symbolic.budget import cpu_clock, with_budget

__all__ = ["InvarianceReport", "TrajectoryComparison", "scale_invariance", "trajectory_invariance"]
__all__ += ["InputScaling", "OutputScaling", "Reparametrization"]

_ETA_DOMAIN = (0.05, 0.95)


@dataclass(frozen=True)
class InvarianceReport:
    """Whether ``rule`` is invariant under ``transform`` on a problem.

    Attributes
    ----------
    rule, transform : str
        The rule's name and the transform's description.
    verdict : Verdict
        ``PROVED`` (the difference simplifies to 0), ``REFUTED`` (see ``counterexample``) or
        ``UNDECIDED``.
    derivation : tuple of Step
        ``Δx``, the map ``g``, ``Δu``, both sides in ``u`` and their simplified difference.
    counterexample : Counterexample or None
        The new inputs ``u`` (``point``), every other symbol (``params``), the original update
        at ``x = g(u)`` (``lhs``) and the mapped transformed update (``rhs``).
    note : str
        How the verdict was reached.
    route : str
        What decided: ``"theorem <id>"`` (see :mod:`scaleinv.analysis.theorems`),
        ``"expression"`` (the concrete updates simplified) or ``"numeric"`` (compiled steps
        of a numeric-only rule).
    """

    rule: str
    transform: str
    verdict: Verdict
    derivation: tuple[Step, ...]
    counterexample: Counterexample | None = None
    note: str = ""
    route: str = "expression"

    def _repr_markdown_(self) -> str:
        """The verdict, the transform and the derivation's steps, for notebooks."""
        head = f"**{markdown_text(self.rule)}** under {markdown_text(self.transform)}"
        lines = [f"{head}: **{self.verdict.value}**"]
        if self.note:
            lines[0] += f" ({markdown_text(self.note)})"
        for step in self.derivation:
            shown = (
                markdown_text(step.expr)
                if isinstance(step.expr, str)
                else f"${markdown_math(sp.latex(step.expr))}$"
            )
            lines.append(f"- {markdown_text(step.label)}: {shown}")
        ce = self.counterexample
        if ce is not None:
            at = ", ".join(f"{markdown_text(k)} = {v:.3g}" for k, v in ce.values().items())
            lines.append(
                f"- counterexample at {at}: Δx = {markdown_text(ce.lhs)}, "
                f"mapped {markdown_text(ce.rhs)}"
            )
        return "\n".join(lines)


def _exact(rule: Rule) -> Rule:
    """``rule`` with a float ``eta`` made an exact rational, so that proofs stay exact."""
    eta = getattr(rule, "eta", None)
    if isinstance(eta, float):
        return dataclasses.replace(cast(Any, rule), eta=sp.nsimplify(eta, rational=True))
    return rule


def _eta_domains(rule: Rule) -> dict[sp.Symbol, tuple[float, float]]:
    eta = getattr(rule, "eta", None)
    return {eta: _ETA_DOMAIN} if isinstance(eta, sp.Symbol) else {}


def _mapped(setup: Transformed, du: Any) -> Any:
    """``Δu`` carried to x-space: ``dg/du · Δu``, or ``g(u + Δu) − g(u)`` per PG branch."""
    if isinstance(du, sp.MatrixBase):
        return setup.jacobian * du
    forward, u = setup.forward, setup.inputs
    return tuple(forward.xreplace({s: s + d for s, d in zip(u, b)}) - forward for b in du)


def scale_invariance(
    problem: Problem,
    rule: Rule,
    transform: Transform,
    *,
    budget: float = 10.0,
    rng: np.random.Generator | int | None = None,
    route: str = "auto",
    at: Mapping[sp.Symbol, float] | None = None,
    point: Mapping[sp.Symbol, float] | None = None,
) -> InvarianceReport:
    """Decide whether ``rule`` gives the same update after ``transform`` (mapped back).

    Parameters
    ----------
    problem : Problem
        The original problem in ``x``.
    rule : Rule
        An update rule; ``eta`` may be a SymPy symbol (then the verdict holds for every
        ``eta``). Numeric-only rules (HIG, BFGS) can only be refuted, by comparing compiled
        first steps at random points.
    transform : InputScaling, OutputScaling or Reparametrization
        The reparametrization ``x = g(u)`` (and/or output scaling).
    budget : float
        Seconds for the derivation, the simplification and the counterexample search.
    rng : Generator or int, optional
        Random source of the counterexample search (and of the sample points at which a
        theorem's hypotheses are checked).
    route : {"auto", "theorem", "expression"}
        ``auto``: a theorem when one applies, else the expression route; ``theorem``: only a
        theorem (``UNDECIDED`` when none applies); ``expression``: simplify the updates.
    at : mapping of Symbol to float, optional
        Values the counterexample search keeps fixed (a user's params and step size), so
        that a counterexample is one of *their* problem; the verdict is still for all values.
    point : mapping of Symbol to float, optional
        A point ``x`` of the original problem (a user's start) searched first: a theorem's
        hypotheses are checked there first, and a counterexample is sought first at the
        ``u`` with ``g(u) = x``. Points where ``P`` is not finite are skipped.

    Examples
    --------
    >>> from scaleinv import rules
    >>> p = Problem.from_strings(["x0", "x1"], ["x0", "alpha*x1"], "y0**2 + y1**2",
    ...                          params={"alpha": 3})
    >>> eta = sp.Symbol("eta", positive=True)
    >>> scale_invariance(p, rules.ig(eta), InputScaling({"x1": "1/alpha"})).verdict
    <Verdict.PROVED: 'proved'>
    >>> r = scale_invariance(p, rules.gd(eta), InputScaling({"x1": "1/alpha"}), rng=0)
    >>> r.verdict, r.route, r.derivation[-1].expr
    (<Verdict.REFUTED: 'refuted'>, 'theorem gd-input-linear', (0, 2*eta*u1*(1 - alpha**2)/alpha))
    >>> r = scale_invariance(p, rules.gd(eta), InputScaling({"x1": "1/alpha"}), rng=0,
    ...                      route="expression")
    >>> r.verdict, r.route, r.derivation[-1].expr
    (<Verdict.REFUTED: 'refuted'>, 'expression', (0, 2*eta*u1*(1 - alpha**2)/alpha))
    """
    if route not in ("auto", "theorem", "expression"):
        raise ProblemError(f"route must be 'auto', 'theorem' or 'expression', got {route!r}")
    start = cpu_clock()
    rule = _exact(rule)
    setup = transform.apply(problem)
    describe = transform.describe()
    if route != "expression":
        found = decide_by_theorem(problem, rule, transform, setup, rng, at, point)
        if found is not None:
            name = f"theorem {found.theorem.id}"
            return InvarianceReport(
                rule.name, describe, found.verdict, found.derivation,
                found.counterexample, found.note, name,
            )  # fmt: skip
        if route == "theorem":
            steps = (Step("x = g(u)", setup.forward),)
            note = "no theorem applies (a nonlinear map, or a hypothesis fails)"
            return InvarianceReport(
                rule.name, describe, Verdict.UNDECIDED, steps, None, note, "theorem"
            )

    def left() -> float:
        return max(budget - (cpu_clock() - start), 0.05)

    try:
        dx = with_budget(lambda: rule.delta(problem), left(), f"{rule.name} update")
        du = with_budget(lambda: rule.delta(setup.problem), left(), f"{rule.name} update")
    except NumericOnlyError as err:
        return _numeric_only(problem, rule, setup, describe, rng, str(err), at or {}, point)
    except (BudgetExceeded, ProblemError) as err:
        steps = (Step("x = g(u)", setup.forward),)
        return InvarianceReport(rule.name, describe, Verdict.UNDECIDED, steps, None, str(err))
    forward = dict(zip(problem.inputs, setup.forward))
    if isinstance(dx, sp.MatrixBase):
        original = dx.xreplace(forward)
    else:
        original = tuple(b.xreplace(forward) for b in dx)
    mapped = _mapped(setup, du)
    domains = {**_eta_domains(rule), **{s: (float(v), float(v)) for s, v in (at or {}).items()}}
    rng = np.random.default_rng(0 if rng is None else rng)
    first = _preimage(problem, setup, point, at or {}, rng)
    decision = decide_equal(
        original, mapped, setup.inputs, budget=left(), rng=rng, domains=domains,
        first=[first] if first else [],
    )  # fmt: skip
    how = "dg/du · Δu" if isinstance(du, sp.MatrixBase) else "g(u + Δu) − g(u), per branch"
    derivation = (
        Step("Δx on the original problem", dx),
        Step("the map x = g(u)", setup.forward),
        Step("Δu on the transformed problem", du),
        Step("Δx at x = g(u)", original),
        Step(f"Δu mapped back, {how}", mapped),
        Step("difference, simplified", decision.difference),
    )
    return InvarianceReport(
        rule.name, describe, decision.verdict, derivation, decision.counterexample, decision.note
    )


def _preimage(
    problem: Problem,
    setup: Transformed,
    point: Mapping[sp.Symbol, float] | None,
    fixed: Mapping[sp.Symbol, float],
    rng: np.random.Generator,
) -> dict[sp.Symbol, float] | None:
    """``u = g⁻¹(point)`` with the transform's own symbols sampled (``fixed`` kept), together
    with those values; None without a point or where ``g`` cannot be inverted there."""
    if not point:
        return None
    values = {**sample_values(sorted(setup.new_params, key=str), rng), **fixed}
    params = {s: float(v) for s, v in values.items() if s in setup.problem.params}
    forward, jacobian = _forward_kernels(setup, params)
    x = np.array([float(point[s]) for s in problem.inputs])
    with np.errstate(all="ignore"):
        try:
            u = _pull_back(forward, jacobian, x)
        except np.linalg.LinAlgError:
            return None
        if not np.allclose(forward(u), x, rtol=1e-10, atol=1e-12):
            return None
    return {**values, **dict(zip(setup.inputs, (float(v) for v in u)))}


def _values(setup: Transformed, values: Mapping[str, float]) -> dict[sp.Symbol, float]:
    return {s: float(values[str(s)]) for s in setup.problem.params if str(s) in values}


def _forward_kernels(setup: Transformed, params: Mapping[sp.Symbol, float]) -> tuple[Any, Any]:
    """``g`` and ``dg/du`` compiled, once per transformed problem and param values."""
    store = setup.__dict__.setdefault("_forward_kernels", {})
    key = tuple(sorted((str(s), float(v)) for s, v in params.items()))
    if key not in store:
        args = [("u", setup.inputs)]
        forward = compile_kernel("forward", list(setup.forward), args, params)
        jacobian = compile_kernel("forward_jacobian", setup.jacobian, args, params)
        store[key] = forward, jacobian
    return store[key]


def _pull_back(forward: Any, jacobian: Any, x: np.ndarray) -> np.ndarray:
    """Solve ``g(u) = x`` by Newton's method from ``u = x`` (one step for a linear ``g``)."""
    u = np.array(x, dtype=float)
    for _ in range(60):
        r = forward(u) - x
        if np.all(np.abs(r) <= 1e-15 * (1 + np.abs(x))):
            break
        u = u - np.linalg.solve(jacobian(u), r[..., None])[..., 0]
    return u


def _numeric_only(
    problem: Problem,
    rule: Rule,
    setup: Transformed,
    describe: str,
    rng: Any,
    why: str,
    at: Mapping[sp.Symbol, float],
    point: Mapping[sp.Symbol, float] | None = None,
) -> InvarianceReport:
    """Compare compiled first steps at random points: a refutation or ``UNDECIDED``.

    Symbols in ``at`` (params, the step size) keep their values there; the first batch
    starts with the ``u`` that ``g`` sends to ``point``."""
    rng = np.random.default_rng(0 if rng is None else rng)
    exact_map = rule.name == "pg"
    symbols = list(setup.problem.param_symbols)
    best: Counterexample | None = None
    eta = getattr(rule, "eta", None)
    fixed = {s: (float(v), float(v)) for s, v in at.items()}
    for attempt in range(4):
        values = sample_values(symbols, rng, fixed)
        extra = {}
        if isinstance(eta, sp.Symbol):
            extra = {str(eta): float(at.get(eta, rng.uniform(*_ETA_DOMAIN)))}
            rule = dataclasses.replace(cast(Any, rule), eta=extra[str(eta)])
        u = rng.uniform(-2.0, 2.0, size=(6, problem.n))
        first = _preimage(problem, setup, point, values, rng) if attempt == 0 else None
        if first is not None:
            u[0] = [first[s] for s in setup.inputs]
        forward, jacobian = _forward_kernels(setup, values)
        x = forward(u)
        named = {str(s): v for s, v in values.items()}
        dx = _quiet_minimize(problem.with_params(**_own(problem, named)), rule, x, 1).x[-1] - x
        du = _quiet_minimize(setup.problem.with_params(**named), rule, u, 1).x[-1] - u
        back = forward(u + du) - x if exact_map else np.einsum("...ij,...j", jacobian(u), du)
        scale = np.maximum(1.0, np.maximum(np.abs(dx), np.abs(back)).max(axis=-1))
        gap = np.abs(dx - back).max(axis=-1) / scale
        gap[~np.isfinite(gap)] = 0.0
        k = int(np.argmax(gap))
        if gap[k] > 1e-6 and (best is None or gap[k] > best.difference):
            point = {str(s): float(v) for s, v in zip(setup.inputs, u[k])}
            params = MappingProxyType({**named, **extra})
            best = Counterexample(MappingProxyType(point), params, tuple(dx[k]), tuple(back[k]))
    steps = (Step("the map x = g(u)", setup.forward), Step("symbolic update", why))
    if best is not None:
        note = "compiled first steps differ clearly (numeric-only rule)"
        return InvarianceReport(rule.name, describe, Verdict.REFUTED, steps, best, note, "numeric")
    note = f"{why}; compiled first steps agree at 24 random points"
    return InvarianceReport(rule.name, describe, Verdict.UNDECIDED, steps, None, note, "numeric")


def _with_values(problem: Problem, named: Mapping[str, float]) -> Problem:
    """``problem.with_params(**named)``, once per problem and values: the twins of several
    rules then share one compiled problem."""
    if not named:
        return problem
    store = problem.__dict__.setdefault("_with_values", {})
    key = tuple(sorted(named.items()))
    if key not in store:
        store[key] = problem.with_params(**named)
    return store[key]


def _own(problem: Problem, named: Mapping[str, float]) -> dict[str, float]:
    names = {str(s) for s in problem.params}
    return {k: v for k, v in named.items() if k in names}


@dataclass(frozen=True)
class TrajectoryComparison:
    """Two trajectories of one rule: on the original problem and mapped back from ``u``.

    Attributes
    ----------
    x, mapped : ndarray
        ``(steps+1, *batch, n)``: the original iterates and ``g(u_k)``.
    max_abs, max_rel : float
        ``max |x − mapped|`` and that divided by ``max |x|``.
    status, status_mapped : ndarray
        The per-sample statuses of the two runs.
    """

    rule: str
    transform: str
    x: np.ndarray
    mapped: np.ndarray
    max_abs: float
    max_rel: float
    status: np.ndarray
    status_mapped: np.ndarray


def trajectory_invariance(
    problem: Problem,
    rule: Rule,
    transform: Transform,
    x0: Any,
    steps: int,
    values: Mapping[str, float] | None = None,
) -> TrajectoryComparison:
    """Run ``rule`` on the original and the transformed problem; compare in x-space.

    ``values`` gives numbers for the problem's params (else their defaults) and must give one
    for every symbol the transform introduces. The transformed run starts at ``u0 = g⁻¹(x0)``.

    Examples
    --------
    >>> from scaleinv import rules
    >>> p = Problem.from_strings(["x0", "x1"], ["x0", "x1**2"], "y0**2 + y1**2")
    >>> c = trajectory_invariance(p, rules.newton(1 / 3), InputScaling(["s0", "s1"]),
    ...                           [3.0, 3.0], 10, {"s0": 0.1, "s1": 7.0})
    >>> c.max_rel < 1e-12
    True
    """
    values = dict(values or {})
    setup = transform.apply(problem)
    missing = sorted(str(s) for s in setup.new_params if str(s) not in values)
    if missing:
        raise ProblemError(f"trajectory_invariance needs values for {missing}")
    params = _values(setup, values)
    named = {str(s): v for s, v in params.items()}
    forward, jacobian = _forward_kernels(setup, params)
    x0 = np.asarray(x0, dtype=float)
    u0 = _pull_back(forward, jacobian, x0)
    original = _quiet_minimize(
        _with_values(problem, _own(problem, named)), rule, x0, steps, record="all"
    )
    transformed = _quiet_minimize(_with_values(setup.problem, named), rule, u0, steps, record="all")
    mapped = forward(transformed.x)
    deviation = float(np.max(np.abs(original.x - mapped)))
    scale = float(np.max(np.abs(original.x)))
    return TrajectoryComparison(
        rule.name,
        transform.describe(),
        original.x,
        mapped,
        deviation,
        deviation / scale if scale > 0 else deviation,
        original.status,
        transformed.status,
    )


def _quiet_minimize(
    problem: Problem, rule: Rule, x0: np.ndarray, steps: int, record: str = "ends"
) -> Trajectory:
    """:func:`minimize` without its numeric-inverse warning (the callers' reports say so)."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", NumericInverseWarning)
        return minimize(problem, rule, x0, steps, record=record)
