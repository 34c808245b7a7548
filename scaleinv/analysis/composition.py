r"""Consistency in function compositions: does a rule's change of an intermediate space depend on
the maps before it?

For a chain ``x → y → z → L`` (an *inner* map ``y(x)`` and an *outer* problem ``z(y)``, ``L(z)``)
:func:`composition_report` applies a rule to the whole chain and compares the change it induces
in ``y`` with the update the same rule computes directly in ``y`` (the outer problem alone):

.. math:: \frac{\partial y}{\partial x} \Delta x \overset{?}{=} \Delta y_{\text{direct}}
   \ \text{(first order)}, \qquad
   y(x + \Delta x) - y(x) \overset{?}{=} \Delta y_{\text{direct}} \ \text{(exactly)}.

The chapter: IG is consistent to first order, PG exactly, Newton is not (its Hessian picks up
``L_y ∂²y/∂x²``, see :func:`composite_hessian_check`) and neither is GD. PG's exact step is
decided first on the defining equations of its branches
(:func:`~scaleinv.analysis.implicit_branches.implicit_y_step`), so an inner map whose inverse
is a Cardano root, or has no radical form at all, is still proved.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from typing import Any, cast

import numpy as np
import sympy as sp

from scaleinv.analysis.implicit_branches import implicit_y_step
from scaleinv.analysis.verdict import Counterexample, Step, Verdict, decide_equal
from scaleinv.errors import ProblemError
from scaleinv.numeric.rules import Rule
from scaleinv.symbolic import Problem, parse_expr
from scaleinv.symbolic.budget import steps_spent

__all__ = ["CompositionReport", "HessianReport", "compose", "composition_report"]
__all__ += ["composite_hessian_check"]

_ETA_DOMAIN = (0.05, 0.95)


def compose(inner: Problem, outer: Problem) -> Problem:
    """The chain ``L(z(y(x)))``: the outer problem with its inputs replaced by ``y(x)``.

    ``inner`` supplies ``y(x)`` (its outputs; its loss is ignored); ``outer`` has one input per
    output of ``inner`` and supplies ``z(y)``, the loss and the target.

    Examples
    --------
    >>> inner = Problem.from_strings(["x"], ["x**3"])
    >>> outer = Problem.from_strings(["y"], ["2*y"], target=[3])
    >>> compose(inner, outer).outputs
    (2*x**3,)
    """
    if outer.n != inner.m:
        raise ProblemError(
            f"the outer problem takes {outer.n} inputs; the inner map gives {inner.m}"
        )
    clash = {str(s) for s in inner.params} & {str(s) for s in outer.params}
    for name in clash:
        a = next(s for s in inner.params if str(s) == name)
        b = next(s for s in outer.params if str(s) == name)
        if a != b or inner.params[a] != outer.params[b]:
            raise ProblemError(f"param {name!r} differs between the inner and the outer problem")
    at = dict(zip(outer.inputs, inner.outputs))
    outputs = tuple(e.xreplace(at) for e in outer.outputs)
    params = {**inner.params, **outer.params}
    return Problem(inner.inputs, outputs, outer.loss, outer.target, params)


@dataclass(frozen=True)
class CompositionReport:
    """Whether a rule's change of the intermediate space ``y`` is independent of ``y(x)``.

    Attributes
    ----------
    rule : str
        The rule's name.
    verdict : Verdict
        The rule's own claim: ``exact`` for PG, ``first_order`` for the others.
    first_order, exact : Verdict
        ``(∂y/∂x) Δx`` and ``y(x + Δx) − y(x)``, each against the direct ``Δy``.
    derivation : tuple of Step
        The chain, ``Δx``, both induced changes, the direct ``Δy`` and the differences.
    counterexample : Counterexample or None
        For a refuted ``verdict``: ``point`` (x), ``params``, induced (``lhs``) and direct
        (``rhs``) changes of ``y``.
    route : str
        ``"implicit"`` (PG decided on the defining equations) or ``"expression"``.
    """

    rule: str
    verdict: Verdict
    first_order: Verdict
    exact: Verdict
    derivation: tuple[Step, ...]
    counterexample: Counterexample | None = None
    note: str = ""
    route: str = "expression"


def _shift(matrix: sp.Matrix, xs: tuple[sp.Symbol, ...], dx: sp.Matrix) -> sp.Matrix:
    return matrix.xreplace({x: x + d for x, d in zip(xs, dx)})


def composition_report(
    inner: Problem,
    outer: Problem,
    rule: Rule,
    *,
    budget: float = 2_000_000,
    rng: np.random.Generator | int | None = None,
) -> CompositionReport:
    """Compare the change of ``y`` a rule makes on the chain with its update in ``y`` alone.

    Parameters
    ----------
    inner : Problem
        ``y(x)`` as its outputs (loss ignored).
    outer : Problem
        ``z(y)``, the loss and the target, with ``y`` as its inputs.
    rule : Rule
        A symbolic rule (GD, Newton, IG, PG); ``eta`` may be a SymPy symbol.
    budget : float
        Work limit in counted steps (see :mod:`scaleinv.symbolic.budget`), shared by the two
        comparisons.
    rng : Generator or int, optional
        Random source of the counterexample search.

    Examples
    --------
    >>> from scaleinv import rules
    >>> inner = Problem.from_strings(["x"], ["exp(x)"])
    >>> outer = Problem.from_strings(["y"], ["2*y"], target=[3])
    >>> r = composition_report(inner, outer, rules.ig(sp.Symbol("eta", positive=True)))
    >>> r.verdict, r.first_order, r.exact
    (<Verdict.PROVED: 'proved'>, <Verdict.PROVED: 'proved'>, <Verdict.REFUTED: 'refuted'>)
    >>> cubic = Problem.from_strings(["x"], ["x**3 + x"])
    >>> r = composition_report(cubic, Problem.from_strings(["y"], ["y"], target=[2]), rules.pg(0.5))
    >>> r.verdict, r.route
    (<Verdict.PROVED: 'proved'>, 'implicit')
    """
    start = steps_spent()
    eta = getattr(rule, "eta", None)
    if isinstance(eta, float):  # exact, so that proofs stay exact
        rule = dataclasses.replace(cast(Any, rule), eta=sp.nsimplify(eta, rational=True))
        eta = cast(Any, rule).eta
    chain = compose(inner, outer)
    if rule.name == "pg":
        implicit = implicit_y_step(inner, outer, chain, eta)
        if implicit is not None and implicit.exact is Verdict.PROVED:
            return CompositionReport(
                rule.name, implicit.exact, implicit.first_order, implicit.exact,
                implicit.derivation, None, f"exact: {implicit.note}", "implicit",
            )  # fmt: skip
    dx, direct = rule.delta(chain), rule.delta(outer)
    xs, y = inner.inputs, inner.P
    branches = isinstance(dx, tuple)
    dxs = dx if branches else (dx,)
    at = dict(zip(outer.inputs, y))
    directs = tuple(d.xreplace(at) for d in (direct if branches else (direct,)))
    first = tuple(inner.jacobian * d for d in dxs)
    exact = tuple(_shift(y, xs, d) - y for d in dxs)
    domains = {eta: _ETA_DOMAIN} if isinstance(eta, sp.Symbol) else {}

    def decide(induced: tuple[sp.Matrix, ...], share: float) -> Any:
        left = max(budget - (steps_spent() - start), 1)
        return decide_equal(induced, directs, xs, budget=left * share, rng=rng, domains=domains)

    main, other = (exact, first) if branches else (first, exact)
    d_main = decide(main, 0.6)
    d_other = decide(other, 1.0)
    d_first, d_exact = (d_other, d_main) if branches else (d_main, d_other)
    derivation = (
        Step("the chain L(z(y(x))): z(y(x))", chain.P),
        Step("Δx on the chain", dx),
        Step("first-order change of y, (∂y/∂x) Δx", first),
        Step("exact change of y, y(x + Δx) − y(x)", exact),
        Step("Δy of the rule applied to y directly (at y = y(x))", directs),
        Step("first-order change − direct Δy, simplified", d_first.difference),
        Step("exact change − direct Δy, simplified", d_exact.difference),
    )
    order = "exact" if branches else "first-order"
    return CompositionReport(
        rule.name,
        d_main.verdict,
        d_first.verdict,
        d_exact.verdict,
        derivation,
        d_main.counterexample,
        f"{order}: {d_main.note}",
    )


@dataclass(frozen=True)
class HessianReport:
    """The chain rule of second derivatives, checked symbolically.

    ``d²L/dx² = Jᵀ (∂²L/∂y²) J + Σ_k (∂L/∂y_k) ∇²y_k`` — in 1-D the chapter's
    ``L_yy (∂y/∂x)² + L_y ∂²y/∂x²``.
    """

    verdict: Verdict
    derivation: tuple[Step, ...]
    counterexample: Counterexample | None = None
    note: str = ""


def composite_hessian_check(
    inner: Problem, loss: str | sp.Expr | None = None, *, budget: float = 2_000_000
) -> HessianReport:
    """Verify ``d²L/dx² = Jᵀ L_yy J + Σ_k L_{y_k} ∇²y_k`` for ``L(y(x))``.

    Parameters
    ----------
    inner : Problem
        ``y(x)`` as its outputs; its loss is ``L(y)`` unless ``loss`` is given.
    loss : str or Expr, optional
        ``L`` in the output symbols ``y0, y1, ...`` (and params).

    Examples
    --------
    >>> r = composite_hessian_check(Problem.from_strings(["x"], ["x**3"]), "sin(y0)")
    >>> r.verdict, r.derivation[0].expr
    (<Verdict.PROVED: 'proved'>, Matrix([[-9*x**4*sin(x**3) + 6*x*cos(x**3)]]))
    """
    if loss is not None:
        if isinstance(loss, str):
            names = {str(s): s for s in (*inner.output_symbols, *inner.params)}
            loss = parse_expr(loss, names)
        inner = Problem(inner.inputs, inner.outputs, loss, inner.target, inner.params)
    xs, ys = inner.inputs, inner.output_symbols
    direct = sp.hessian(inner.loss_x, xs)
    jac = sp.Matrix(inner.outputs).jacobian(xs)
    at = inner.at_P
    l_y = [sp.diff(inner.loss, y).xreplace(at) for y in ys]
    l_yy = sp.hessian(inner.loss, ys).xreplace(at)
    gauss_newton = jac.T * l_yy * jac
    curvature = sp.zeros(len(xs), len(xs))
    for g, y_k in zip(l_y, inner.outputs):
        curvature += g * sp.hessian(y_k, xs)
    decision = decide_equal(
        sp.Matrix(list(direct)), sp.Matrix(list(gauss_newton + curvature)), xs, budget=budget
    )
    derivation = (
        Step("d²L/dx², differentiating L(y(x)) twice", direct),
        Step("Jᵀ (∂²L/∂y²) J", gauss_newton),
        Step("Σ_k (∂L/∂y_k) ∇²y_k", curvature),
        Step("difference, simplified", decision.difference),
    )
    return HessianReport(decision.verdict, derivation, decision.counterexample, decision.note)
