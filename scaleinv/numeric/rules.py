"""The update rules: each a small frozen object with a symbolic ``delta`` and a compiled step.

``rule.delta(problem)`` returns the exact ``Δx`` (SymPy, from :mod:`scaleinv.symbolic.updates`);
``rule.compile(problem)`` returns a :class:`CompiledRule` whose ``step`` maps a batch of points
``x`` of shape ``(..., n)`` to ``Δx`` and a per-sample :class:`~scaleinv.numeric.status.Status`.

Examples
--------
>>> import numpy as np
>>> from scaleinv.symbolic import Problem
>>> p = Problem.from_strings(["x0", "x1"], ["x0", "x1**2"], loss="y0**2 + y1**2")
>>> dx, _, _ = newton(1 / 3).compile(p).step(np.array([3.0, 3.0]), None)
>>> dx
array([-1.        , -0.33333333])
"""

from __future__ import annotations

import math
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

import numpy as np
import sympy as sp

from scaleinv.errors import RuleError
from scaleinv.numeric import linalg
from scaleinv.numeric.bfgs import compile_bfgs
from scaleinv.numeric.compiled import CompiledRule, stateless
from scaleinv.numeric.status import Status
from scaleinv.symbolic import Problem, RuleSpec
from scaleinv.symbolic import updates as formulas

__all__ = ["Rule", "GD", "Newton", "IG", "PG", "HIG", "BFGS", "CompiledRule"]
__all__ += ["gd", "newton", "ig", "pg", "hig", "bfgs", "REGISTRY", "make_rule"]


def _eta_number(rule: str, eta: Any) -> float:
    try:
        value = float(eta)
    except (TypeError, ValueError):
        raise RuleError(f"{rule}: compiling needs a numeric eta, got {eta!r}") from None
    return value


def _check_eta(rule: str, eta: Any) -> None:
    if isinstance(eta, sp.Basic) and not eta.is_number:
        return  # a symbol, for symbolic analysis
    value = _eta_number(rule, eta)
    if not (math.isfinite(value) and value > 0):
        raise RuleError(f"{rule}: eta must be a positive finite number, got {eta!r}")


@dataclass(frozen=True)
class Rule:
    """Base of the update rules: ``name``, ``label``, ``symbolic``, ``delta`` and ``compile``."""

    name = "rule"
    label = "rule"
    symbolic = True

    def delta(self, problem: Problem) -> Any:  # pragma: no cover - overridden
        raise NotImplementedError

    def compile(self, problem: Problem) -> CompiledRule:  # pragma: no cover - overridden
        raise NotImplementedError


@dataclass(frozen=True)
class GD(Rule):
    r"""Gradient descent. :math:`\Delta x = -\eta \, \partial L/\partial x`."""

    eta: Any = 0.01
    name = "gd"
    label = "GD"

    def __post_init__(self) -> None:
        _check_eta(self.name, self.eta)

    def delta(self, problem: Problem) -> sp.Matrix:
        return formulas.gd_delta(problem, self.eta)

    def compile(self, problem: Problem) -> CompiledRule:
        eta, kernels = _eta_number(self.name, self.eta), problem.compile()
        return stateless(lambda x: (-eta * kernels.gradient(x), None))


@dataclass(frozen=True)
class Newton(Rule):
    r"""Newton's method. :math:`\Delta x = -\eta \, H^{-1} \partial L/\partial x`."""

    eta: Any = 1.0
    name = "newton"
    label = "Newton"

    def __post_init__(self) -> None:
        _check_eta(self.name, self.eta)

    def delta(self, problem: Problem) -> sp.Matrix:
        return formulas.newton_delta(problem, self.eta)

    def compile(self, problem: Problem) -> CompiledRule:
        eta, kernels = _eta_number(self.name, self.eta), problem.compile()

        def step(x: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
            dx, singular = linalg.solve(kernels.hessian(x), kernels.gradient(x))
            return -eta * dx, singular

        return stateless(step)


@dataclass(frozen=True)
class IG(Rule):
    r"""Inverse gradients. :math:`\Delta x = J^{-1} \Delta y` (pseudo-inverse if not square)."""

    eta: Any = 1.0
    name = "ig"
    label = "IG"

    def __post_init__(self) -> None:
        _check_eta(self.name, self.eta)

    def delta(self, problem: Problem) -> sp.Matrix:
        return formulas.ig_delta(problem, self.eta)

    def compile(self, problem: Problem) -> CompiledRule:
        eta, kernels = _eta_number(self.name, self.eta), problem.compile()
        newton_dy = linalg.require_newton_dy(kernels, self.name)

        def step(x: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
            dy = eta * newton_dy(kernels.P(x))
            return linalg.inverse_jacobian_times(kernels.jacobian(x), dy)

        return stateless(step)


_PG_FALLBACKS = ("stop", "ig")


@dataclass(frozen=True)
class PG(Rule):
    r"""Inverse-simulator (physical) gradients.

    :math:`\Delta x = \mathcal P^{-1}(y_0 + \Delta y; x_0) - x_0`, the branch nearest ``x0``.
    ``fallback`` says what a sample with no real solution does: ``"stop"`` (status
    ``no_inverse``) or ``"ig"`` (take the first-order IG step instead).
    """

    eta: Any = 1.0
    fallback: str = "stop"
    name = "pg"
    label = "PG"

    def __post_init__(self) -> None:
        _check_eta(self.name, self.eta)
        if self.fallback not in _PG_FALLBACKS:
            raise RuleError(f"pg: fallback must be one of {_PG_FALLBACKS}, got {self.fallback!r}")

    def delta(self, problem: Problem) -> tuple[sp.Matrix, ...]:
        return formulas.pg_deltas(problem, self.eta)

    def compile(self, problem: Problem) -> CompiledRule:
        eta, kernels = _eta_number(self.name, self.eta), problem.compile()
        newton_dy = linalg.require_newton_dy(kernels, self.name)
        inverse = problem.local_inverse().compile()
        ig_step = IG(self.eta).compile(problem).step if self.fallback == "ig" else None

        def step(x: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
            y = kernels.P(x)
            x_new, ok, _ = inverse.solve(y + eta * newton_dy(y), x)
            dx = np.where(ok[..., None], x_new - x, 0.0)
            status = np.where(ok, Status.RUNNING, Status.NO_INVERSE).astype(np.int8)
            if ig_step is not None and not ok.all():
                dx_ig, st_ig, _ = ig_step(x, None)
                dx = np.where(ok[..., None], dx, dx_ig)
                status = np.where(ok, status, st_ig).astype(np.int8)
            return dx, status

        return stateless(step)


@dataclass(frozen=True)
class HIG(Rule):
    r"""Half-inverse gradients (numeric only).

    :math:`\Delta x = -\eta \, V \Sigma^{-\beta} U^T \, \partial L/\partial y` from the SVD
    ``J = U Σ Vᵀ``; singular values below ``rcond · σ_max`` are dropped, where ``σ_max`` is the
    largest singular value of the batch-stacked (block-diagonal) Jacobian, i.e. of the whole
    batch. ``beta = 1`` is Gauss–Newton, ``beta = -1`` is gradient descent.
    """

    eta: Any = 1.0
    beta: float = 0.5
    rcond: float | None = None
    name = "hig"
    label = "HIG"
    symbolic = False

    def __post_init__(self) -> None:
        _check_eta(self.name, self.eta)
        if not math.isfinite(float(self.beta)):
            raise RuleError(f"hig: beta must be finite, got {self.beta!r}")
        if self.rcond is not None and not (0 <= float(self.rcond) < 1):
            raise RuleError(f"hig: rcond must be in [0, 1), got {self.rcond!r}")

    def delta(self, problem: Problem) -> sp.Matrix:
        from scaleinv.errors import NumericOnlyError

        raise NumericOnlyError("hig", "its SVD cut-off depends on the whole batch")

    def compile(self, problem: Problem) -> CompiledRule:
        eta, kernels = _eta_number(self.name, self.eta), problem.compile()
        beta, rcond = float(self.beta), self.rcond

        def step(x: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
            g = kernels.loss_y(kernels.P(x))
            return -eta * linalg.half_inverse(kernels.jacobian(x), g, beta, rcond), None

        return stateless(step)


@dataclass(frozen=True)
class BFGS(Rule):
    """BFGS through :func:`scipy.optimize.minimize`, recording its iterates (numeric only)."""

    name = "bfgs"
    label = "BFGS"
    symbolic = False

    def delta(self, problem: Problem) -> sp.Matrix:
        from scaleinv.errors import NumericOnlyError

        raise NumericOnlyError("bfgs", "its Hessian estimate is built from the iterates")

    def compile(self, problem: Problem) -> CompiledRule:
        return compile_bfgs(problem.compile())


def gd(eta: Any = 0.01) -> GD:
    r"""Gradient descent, :math:`\Delta x = -\eta \, \partial L/\partial x`."""
    return GD(eta)


def newton(eta: Any = 1.0) -> Newton:
    r"""Newton, :math:`\Delta x = -\eta (\partial^2 L/\partial x^2)^{-1} \partial L/\partial x`."""
    return Newton(eta)


def ig(eta: Any = 1.0) -> IG:
    r"""Inverse gradients, :math:`\Delta x = (\partial y/\partial x)^{-1} \Delta y`."""
    return IG(eta)


def pg(eta: Any = 1.0, fallback: str = "stop") -> PG:
    r"""Physical gradients, :math:`\Delta x = \mathcal P^{-1}(y_0 + \Delta y; x_0) - x_0`."""
    return PG(eta, fallback)


def hig(eta: Any = 1.0, beta: float = 0.5, rcond: float | None = None) -> HIG:
    r"""Half-inverse gradients, :math:`\Delta x = -\eta V \Sigma^{-\beta} U^T g`."""
    return HIG(eta, beta, rcond)


def bfgs() -> BFGS:
    """BFGS via SciPy (its own line search; no step size)."""
    return BFGS()


#: Rule factories by name, as spec files and the CLI name them.
REGISTRY: Mapping[str, Callable[..., Rule]] = {
    "gd": gd,
    "newton": newton,
    "ig": ig,
    "pg": pg,
    "hig": hig,
    "bfgs": bfgs,
}


def make_rule(spec: RuleSpec) -> Rule:
    """Build the rule a spec file names, e.g. ``RuleSpec("newton", {"eta": 0.3})``."""
    if spec.name not in REGISTRY:
        raise RuleError(f"unknown rule {spec.name!r}; known: {', '.join(REGISTRY)}")
    settings = {k: v for k, v in spec.settings.items() if k != "label"}
    try:
        return REGISTRY[spec.name](**settings)
    except TypeError as err:
        raise RuleError(f"rule {spec.name!r}: {err}") from None
