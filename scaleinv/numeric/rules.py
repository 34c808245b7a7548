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

from scaleinv.errors import NumericOnlyError, RuleError, SpecError, did_you_mean
from scaleinv.numeric import pysource, runtime, sparse
from scaleinv.numeric.bfgs import compile_bfgs
from scaleinv.numeric.compiled import CompiledRule, stateless
from scaleinv.numeric.compiler import compile_problem
from scaleinv.numeric.inverse import NUMERIC_NAME, compile_inverse
from scaleinv.numeric.kernels import Kernel, ProblemKernels
from scaleinv.symbolic import Problem, RuleSpec
from scaleinv.symbolic import updates as formulas

__all__ = ["Rule", "GD", "Newton", "IG", "PG", "HIG", "BFGS", "CompiledRule"]
__all__ += ["gd", "newton", "ig", "pg", "hig", "bfgs", "REGISTRY", "make_rule", "step_namespace"]


def _require_newton_dy(kernels: ProblemKernels, rule: str) -> Kernel:
    if kernels.newton_dy is None:
        raise RuleError(
            f"{rule} needs the Newton step of L in y-space, but the loss has a singular "
            "Hessian in y (for example a loss linear in y)"
        )
    return kernels.newton_dy


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
    """Base of the update rules: ``name``, ``label``, ``symbolic``, ``delta`` and ``compile``.

    A rule with a batched step defines it as Python source (:meth:`step_source`) over the
    problem's kernels and :mod:`scaleinv.numeric.runtime`; :meth:`compile` executes that source
    and :func:`scaleinv.export` writes it, so both run the same code.
    """

    name = "rule"
    label = "rule"
    symbolic = True
    _step_body = ""
    _numeric_only_why = ""
    uses_newton_dy = False  # the step takes the Newton step of L in y-space (IG, PG)
    uses_inverse = False  # the step calls the local inverse (PG)
    per_sample = True  # each sample's step depends on its own point only: it runs in chunks

    @property
    def uses_numeric_inverse(self) -> bool:
        """The step calls the numeric local inverse even where a closed form exists (PG)."""
        return False

    def __post_init__(self) -> None:
        if hasattr(self, "eta"):
            _check_eta(self.name, self.eta)

    def delta(self, problem: Problem) -> Any:
        """The exact ``Δx`` at a generic point (SymPy, in the input symbols); a symbolic rule
        gives its formula of :mod:`scaleinv.symbolic.updates`, a numeric-only one raises
        :class:`~scaleinv.errors.NumericOnlyError`."""
        raise NumericOnlyError(self.name, self._numeric_only_why)

    def settings(self) -> dict[str, Any]:
        """The numeric settings the step source takes as keyword defaults."""
        return {"eta": _eta_number(self.name, getattr(self, "eta", 1.0))}

    @property
    def step_name(self) -> str:
        """The name of the step function in :meth:`step_source` (and in exported modules)."""
        return f"{self.name}_step"

    def step_source(self) -> str:
        """Source of ``{step_name}(x, **params) -> (dx, status)``."""
        defaults = ", ".join(f"{k}={v!r}" for k, v in self.settings().items())
        doc = (type(self).__doc__ or "").strip().splitlines()[0]
        doc = pysource.docstring(f"{doc} Returns (dx, status), batched over leading axes.")
        return (
            f"def {self.step_name}(x, *, {defaults}, **params):\n"
            f"    {doc}\n"
            f"    x = numpy.asarray(x, dtype=numpy.float64)\n{self._step_body}"
        )

    def compile(self, problem: Problem) -> CompiledRule:
        """The batched step of this rule for ``problem`` (see :class:`CompiledRule`)."""
        namespace = step_namespace(
            problem, needs_inverse=self.uses_inverse, numeric=self.uses_numeric_inverse
        )
        if self.uses_newton_dy:
            _require_newton_dy(compile_problem(problem), self.name)
        # The source is scaleinv's own template filled with numbers (never user text).
        exec(self.step_source(), namespace)  # noqa: S102
        compiled = stateless(namespace[self.step_name])
        return _in_chunks(compiled) if self.per_sample else compiled


def _in_chunks(plain: CompiledRule) -> CompiledRule:
    """Run a stateless per-sample step on chunks of :data:`~scaleinv.numeric.runtime.CHUNK`
    samples: the same result, with the temporaries of a chunk in cache."""

    def step(x: np.ndarray, state: Any) -> tuple[np.ndarray, Any, np.ndarray]:
        x = np.asarray(x, dtype=np.float64)
        size = int(np.prod(x.shape[:-1]))
        if size <= runtime.CHUNK:
            return plain.step(x, state)
        flat = x.reshape(size, x.shape[-1])
        dx, status = np.empty_like(flat), np.empty(size, dtype=np.int8)
        for start in range(0, size, runtime.CHUNK):
            rows = slice(start, start + runtime.CHUNK)
            dx[rows], _, status[rows] = plain.step(flat[rows], state)
        return dx.reshape(x.shape), state, status.reshape(x.shape[:-1])

    return CompiledRule(init=plain.init, step=step)


def step_namespace(
    problem: Problem, needs_inverse: bool = False, numeric: bool = False
) -> dict[str, Any]:
    """What step sources may call: NumPy, :mod:`runtime` and the problem's kernels (and the
    local inverse: ``numeric_local_inverse`` when ``numeric``, else ``local_inverse``)."""
    kernels = compile_problem(problem)
    namespace: dict[str, Any] = {"numpy": np}
    namespace.update({k: v for k, v in vars(runtime).items() if not k.startswith("__")})
    namespace.update({k.name: k.func for k in kernels.all()})
    namespace.update(kernels.constants())
    namespace["sparse_solve"] = sparse.sparse_solve  # SciPy in process; NumPy when exported
    if needs_inverse:
        evaluator = compile_inverse(problem.local_inverse(), numeric=numeric)
        namespace[NUMERIC_NAME if numeric else "local_inverse"] = evaluator.local_inverse
    return namespace


@dataclass(frozen=True)
class GD(Rule):
    r"""Gradient descent. :math:`\Delta x = -\eta \, \partial L/\partial x`."""

    eta: Any = 0.01
    name = "gd"
    label = "GD"
    _step_body = "    return -eta * gradient(x, **params), numpy.zeros(x.shape[:-1], numpy.int8)\n"

    def delta(self, problem: Problem) -> Any:
        return formulas.gd_delta(problem, self.eta)


@dataclass(frozen=True)
class Newton(Rule):
    r"""Newton's method. :math:`\Delta x = -\eta \, H^{-1} \partial L/\partial x`."""

    eta: Any = 1.0
    name = "newton"
    label = "Newton"
    _step_body = (
        "    g = gradient(x, **params)\n"
        "    if hessian_sparse:  # solve with the static pattern, no dense (batch, n, n)\n"
        "        dx, status = sparse_solve(hessian_pattern, hessian_values(x, **params), g)\n"
        "    else:\n"
        "        dx, status = solve(hessian(x, **params), g)\n"
        "    return -eta * dx, status\n"
    )

    def delta(self, problem: Problem) -> Any:
        return formulas.newton_delta(problem, self.eta)


@dataclass(frozen=True)
class IG(Rule):
    r"""Inverse gradients. :math:`\Delta x = J^{-1} \Delta y` (pseudo-inverse if not square)."""

    eta: Any = 1.0
    name = "ig"
    label = "IG"
    uses_newton_dy = True
    _step_body = (
        "    dy = eta * newton_dy(P(x, **params), **params)\n"
        "    if jacobian_sparse:  # square and sparse: solve with the static pattern\n"
        "        return sparse_solve(jacobian_pattern, jacobian_values(x, **params), dy)\n"
        "    return inverse_jacobian_times(jacobian(x, **params), dy)\n"
    )

    def delta(self, problem: Problem) -> Any:
        return formulas.ig_delta(problem, self.eta)


_PG_FALLBACKS = ("stop", "ig")
_PG_INVERSES = ("auto", "numeric")


@dataclass(frozen=True)
class PG(Rule):
    r"""Inverse-simulator (physical) gradients.

    :math:`\Delta x = \mathcal P^{-1}(y_0 + \Delta y; x_0) - x_0`. With a closed-form
    inverse, the branch nearest ``x0``; without one, the numeric local inverse
    (:func:`~scaleinv.numeric.pathsolve.path_inverse`): the solution connected to ``x0``
    along ``y0 → y0 + Δy`` (:func:`scaleinv.minimize` then warns with
    :class:`~scaleinv.errors.NumericInverseWarning`). A sample whose inverse fails ends with
    status ``no_inverse`` (no real solution exists) or ``not_found`` (the numeric solver found
    none); ``fallback`` says what such a sample does: ``"stop"`` (it stops with that status)
    or ``"ig"`` (it takes the first-order IG step instead).

    ``inverse="numeric"`` uses the numeric (path-connected) local inverse even where a closed
    form exists; the two agree for small steps and can differ for large ones, where the
    closed form takes the branch nearest ``x0`` and the numeric one the solution connected
    to ``x0`` along the path.
    """

    eta: Any = 1.0
    fallback: str = "stop"
    inverse: str = "auto"
    name = "pg"
    label = "PG"
    uses_newton_dy = True
    uses_inverse = True
    _step_body = (
        "    y = P(x, **params)\n"
        "    dy = eta * newton_dy(y, **params)\n"
        "    x_new, status = local_inverse(y + dy, x, **params)[:2]\n"
        "    dx = x_new - x  # 0 where the inverse failed (it returns x there)\n"
        "    if fallback_ig:  # a setting, never a value: the step traces under jax.jit\n"
        "        ok = status == RUNNING\n"
        "        if jacobian_sparse:\n"
        "            values = jacobian_values(x, **params)\n"
        "            dx_ig, status_ig = sparse_solve(jacobian_pattern, values, dy)\n"
        "        else:\n"
        "            dx_ig, status_ig = inverse_jacobian_times(jacobian(x, **params), dy)\n"
        "        dx = numpy.where(ok[..., None], dx, dx_ig)\n"
        "        status = numpy.asarray(numpy.where(ok, status, status_ig), dtype=numpy.int8)\n"
        "    return dx, status\n"
    )

    def delta(self, problem: Problem) -> Any:
        return formulas.pg_deltas(problem, self.eta)

    def __post_init__(self) -> None:
        super().__post_init__()
        if self.fallback not in _PG_FALLBACKS:
            raise RuleError(f"pg: fallback must be one of {_PG_FALLBACKS}, got {self.fallback!r}")
        if self.inverse not in _PG_INVERSES:
            raise RuleError(f"pg: inverse must be one of {_PG_INVERSES}, got {self.inverse!r}")

    @property
    def uses_numeric_inverse(self) -> bool:
        return self.inverse == "numeric"

    @property
    def step_name(self) -> str:  # both PG steps may sit in one exported module
        return "pg_numeric_step" if self.uses_numeric_inverse else "pg_step"

    def step_source(self) -> str:
        source = super().step_source()
        if not self.uses_numeric_inverse:
            return source
        return source.replace(" local_inverse(", f" {NUMERIC_NAME}(")

    def settings(self) -> dict[str, Any]:
        return {**super().settings(), "fallback_ig": self.fallback == "ig"}

    def compile(self, problem: Problem) -> CompiledRule:
        """The batched PG step; its state remembers the samples whose step failed.

        A sample whose step ended ``no_inverse``/``not_found`` (fallback ``"stop"``) is not
        solved again on later calls: it keeps its status (the driver has stopped it, so
        solving the same point again would give the same answer at the solver's full cost).
        """
        return _skip_failed(super().compile(problem))


def _skip_failed(plain: CompiledRule) -> CompiledRule:
    """Wrap a stateless step so that samples whose step failed once are not stepped again."""

    def step(x: np.ndarray, state: Any) -> tuple[np.ndarray, Any, np.ndarray]:
        x = np.asarray(x, dtype=np.float64)
        if state is None or state.shape != x.shape[:-1] or not (state != runtime.RUNNING).any():
            dx, _, status = plain.step(x, None)
        else:
            flat, codes = x.reshape(-1, x.shape[-1]), state.reshape(-1)
            live = codes == runtime.RUNNING
            dx, status = np.zeros_like(flat), codes.copy()
            dx[live], _, status[live] = plain.step(flat[live], None)
            dx, status = dx.reshape(x.shape), status.reshape(state.shape)
        return dx, status, status

    return CompiledRule(init=lambda x0, steps: None, step=step)


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
    per_sample = False
    _numeric_only_why = "its SVD cut-off depends on the whole batch"
    _step_body = (
        "    g = loss_y(P(x, **params), **params)\n"
        "    dx = -eta * half_inverse(jacobian(x, **params), g, beta, rcond)\n"
        "    return dx, numpy.zeros(x.shape[:-1], numpy.int8)\n"
    )

    def __post_init__(self) -> None:
        super().__post_init__()
        if not math.isfinite(float(self.beta)):
            raise RuleError(f"hig: beta must be finite, got {self.beta!r}")
        if self.rcond is not None and not (0 <= float(self.rcond) < 1):
            raise RuleError(f"hig: rcond must be in [0, 1), got {self.rcond!r}")

    def settings(self) -> dict[str, Any]:
        rcond = None if self.rcond is None else float(self.rcond)
        return {**super().settings(), "beta": float(self.beta), "rcond": rcond}


@dataclass(frozen=True)
class BFGS(Rule):
    """BFGS through :func:`scipy.optimize.minimize`, recording its iterates (numeric only)."""

    name = "bfgs"
    label = "BFGS"
    symbolic = False
    _numeric_only_why = "its Hessian estimate is built from the iterates"

    def step_source(self) -> str:
        raise NumericOnlyError("bfgs", "it runs through SciPy and has no standalone step")

    def compile(self, problem: Problem) -> CompiledRule:
        return compile_bfgs(compile_problem(problem))


def gd(eta: Any = 0.01) -> GD:
    r"""Gradient descent, :math:`\Delta x = -\eta \, \partial L/\partial x`."""
    return GD(eta)


def newton(eta: Any = 1.0) -> Newton:
    r"""Newton, :math:`\Delta x = -\eta (\partial^2 L/\partial x^2)^{-1} \partial L/\partial x`."""
    return Newton(eta)


def ig(eta: Any = 1.0) -> IG:
    r"""Inverse gradients, :math:`\Delta x = (\partial y/\partial x)^{-1} \Delta y`."""
    return IG(eta)


def pg(eta: Any = 1.0, fallback: str = "stop", inverse: str = "auto") -> PG:
    r"""Physical gradients, :math:`\Delta x = \mathcal P^{-1}(y_0 + \Delta y; x_0) - x_0`.

    ``inverse``: ``"auto"`` (closed form where there is one, else numeric) or ``"numeric"``.
    """
    return PG(eta, fallback, inverse)


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
        why = f"unknown rule {spec.name!r}{did_you_mean(spec.name, REGISTRY)}"
        why += f"; known: {', '.join(REGISTRY)}"
        if spec.key:  # read from a spec file: name the file and the key
            raise SpecError(spec.source, f"{spec.key}.name", why)
        raise RuleError(why)
    settings = {k: v for k, v in spec.settings.items() if k != "label"}
    try:
        return REGISTRY[spec.name](**settings)
    except TypeError as err:
        raise RuleError(f"rule {spec.name!r}: {err}") from None
