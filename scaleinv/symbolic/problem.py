"""The :class:`Problem`: a physical function ``P(x)``, a loss ``L(y)``, exact derivatives."""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from functools import cached_property
from types import MappingProxyType
from typing import TYPE_CHECKING, Any

import sympy as sp

from scaleinv.errors import ParseError, ProblemError
from scaleinv.symbolic.parsing import MAX_CONSTANT, check_name, make_symbol, parse_expr
from scaleinv.symbolic.sparse import (
    SparseDerivatives,
    Sparsity,
    derive_sparse,
    to_matrix,
)

if TYPE_CHECKING:
    from scaleinv.symbolic.inverse import LocalInverse

__all__ = ["Problem", "output_symbols", "squared_distance", "RESERVED_NAMES", "check_user_names"]

#: Names scaleinv gives its own symbols, which a user's input or param must not take: the
#: derivations would read the user's symbol as scaleinv's (``eta*x0`` with a param ``eta``
#: printed ``Δx0 = -eta**3*x0``). The outputs ``y0 .. y{m-1}`` are reserved as well.
RESERVED_NAMES: Mapping[str, str] = MappingProxyType(
    {"eta": "the step size η of every rule", "Delta_y": "the output step Δy of PG's identities"}
)


def output_symbols(m: int) -> tuple[sp.Symbol, ...]:
    """The symbols ``y0 .. y{m-1}`` that stand for the outputs of ``P`` in a loss."""
    return tuple(sp.Symbol(f"y{i}", real=True) for i in range(m))


def check_user_names(names: Iterable[str], m: int, what: str = "input or param") -> None:
    """Raise :class:`ProblemError` for a name scaleinv uses for its own symbols.

    Reserved are :data:`RESERVED_NAMES` and the output symbols ``y0 .. y{m-1}``.

    Examples
    --------
    >>> check_user_names(["x0", "alpha"], 2)
    >>> check_user_names(["x0", "eta"], 1)
    Traceback (most recent call last):
    ...
    scaleinv.errors.ProblemError: the input or param name 'eta' is reserved: ... step size η ...
    """
    outputs = {str(y) for y in output_symbols(m)}
    for name in names:
        meaning = RESERVED_NAMES.get(name) or (f"output {name[1:]} of P" if name in outputs else "")
        if meaning:
            raise ProblemError(
                f"the {what} name {name!r} is reserved: scaleinv's derivations use it for "
                f"{meaning}; rename it"
            )


def squared_distance(ys: Sequence[sp.Expr], target: Sequence[sp.Expr]) -> sp.Expr:
    """The default loss ``½|y − y*|²``."""
    return sp.Rational(1, 2) * sp.Add(*((y - t) ** 2 for y, t in zip(ys, target)))


@dataclass(frozen=True, eq=False)
class Problem:
    """Minimize ``L(P(x))``: a physical function, a loss on its outputs, and defaults.

    Parameters
    ----------
    inputs : sequence of Symbol
        The parameters ``x`` (n of them).
    outputs : sequence of Expr
        ``P(x)`` (m expressions in ``inputs`` and ``params``).
    loss : Expr, optional
        ``L`` in terms of the output symbols ``y0..y{m-1}`` (see :func:`output_symbols`) and
        params; default ``½ |y − y*|²``.
    target : sequence, optional
        ``y*`` (default 0).
    params : mapping of Symbol to number, optional
        Extra symbols such as ``alpha`` with their default values.

    Examples
    --------
    >>> p = Problem.from_strings(["x0", "x1"], ["x0", "alpha*x1"], params={"alpha": 10})
    >>> p.jacobian
    Matrix([
    [1,     0],
    [0, alpha]])
    >>> p.gradient.T
    Matrix([[x0, alpha**2*x1]])
    """

    inputs: tuple[sp.Symbol, ...]
    outputs: tuple[sp.Expr, ...]
    # None asks for the defaults; __post_init__ stores the loss and y* as a tuple of Expr
    loss: sp.Expr = None
    target: Any = None
    params: Mapping[sp.Symbol, float] = field(default_factory=dict)

    def __post_init__(self) -> None:
        inputs = tuple(self.inputs)
        outputs = tuple(sp.sympify(e) for e in _as_sequence(self.outputs))
        if not inputs or not outputs:
            raise ProblemError("a problem needs at least one input and one output")
        if not all(isinstance(s, sp.Symbol) for s in inputs) or len(set(inputs)) != len(inputs):
            raise ProblemError(f"inputs must be distinct symbols, got {inputs}")
        params = MappingProxyType(dict(self.params or {}))
        names = [str(s) for s in (*inputs, *params)]
        if len(set(names)) != len(names):  # e.g. an input x0 and a positive param x0
            repeated = sorted({n for n in names if names.count(n) > 1})
            raise ProblemError(f"names {repeated} name both an input and a param (or repeat)")
        taken = sorted(set(names) & {str(y) for y in output_symbols(len(outputs))})
        if taken:  # the loss would read the param as the output
            check_user_names(taken, len(outputs))
        for symbol, value in params.items():
            _check_sign(symbol, value)
        ys = output_symbols(len(outputs))
        target = (
            tuple(sp.Integer(0) for _ in outputs)
            if self.target is None
            else tuple(sp.sympify(t) for t in _as_sequence(self.target))
        )
        if len(target) != len(outputs):
            raise ProblemError(f"target has {len(target)} entries, P has {len(outputs)} outputs")
        loss = squared_distance(ys, target) if self.loss is None else sp.sympify(self.loss)
        allowed_x = set(inputs) | set(params)
        for i, expr in enumerate(outputs):
            _check_free(expr, allowed_x, f"output {i}")
            _check_at_defaults(expr, params, f"output {i}")
        _check_free(loss, set(ys) | set(params), "loss")
        _check_at_defaults(loss, params, "loss")
        for i, t in enumerate(target):
            _check_free(t, set(params), f"target {i}")
            _check_at_defaults(t, params, f"target {i}")
        object.__setattr__(self, "inputs", inputs)
        object.__setattr__(self, "outputs", outputs)
        object.__setattr__(self, "target", target)
        object.__setattr__(self, "loss", loss)
        object.__setattr__(self, "params", params)

    # -- construction ---------------------------------------------------------------------
    @classmethod
    def from_strings(
        cls,
        inputs: str | Sequence[str],
        outputs: str | Sequence[str],
        loss: str | None = None,
        target: Sequence[str | float] | None = None,
        params: Mapping[str, float] | None = None,
    ) -> Problem:
        """Build a problem from untrusted strings (parsed by an allow-list, never evaluated).

        ``inputs`` may be a list of names or one string of names separated by commas or
        spaces. Params with a positive default become positive symbols (so derivations
        simplify ``sqrt(alpha**2)`` to ``alpha``); :meth:`with_params` then refuses a
        non-positive value rather than give results that assumed ``alpha > 0``.
        """
        names = inputs.replace(",", " ").split() if isinstance(inputs, str) else list(inputs)
        params = dict(params or {})
        outs = _as_sequence(outputs)
        for name in [*names, *params]:
            check_name(str(name))
        if len(set(names) | set(params)) != len(names) + len(params):
            raise ProblemError(f"names repeat among inputs and params: {names} {list(params)}")
        check_user_names(map(str, [*names, *params]), len(outs))
        xs = {n: make_symbol(n) for n in names}
        ps = {}
        for name, value in params.items():
            value = _param_value(name, value)
            ps[make_symbol(name, positive=value > 0)] = value
        by_name = {**xs, **{str(s): s for s in ps}}
        exprs = [parse_expr(o, by_name) for o in outs]
        if names and not any(e.free_symbols & set(xs.values()) for e in exprs):
            raise ProblemError(
                f"no output depends on an input ({', '.join(names)}): P is constant, there is "
                "nothing to optimize"
            )
        ys = {str(y): y for y in output_symbols(len(exprs))}
        lexpr = None if loss is None else parse_expr(loss, {**ys, **{str(s): s for s in ps}})
        tgt = None
        if target is not None:
            tgt = [parse_expr(t, {str(s): s for s in ps}) for t in _as_sequence(target)]
        return cls(tuple(xs.values()), tuple(exprs), lexpr, tgt, ps)

    # -- sizes and symbols ----------------------------------------------------------------
    @property
    def n(self) -> int:
        """Number of inputs."""
        return len(self.inputs)

    @property
    def m(self) -> int:
        """Number of outputs."""
        return len(self.outputs)

    @property
    def output_symbols(self) -> tuple[sp.Symbol, ...]:
        """``y0 .. y{m-1}``."""
        return output_symbols(self.m)

    @cached_property
    def has_default_loss(self) -> bool:
        """Is the loss ``½|y − y*|²`` (written any way)?"""
        default = squared_distance(self.output_symbols, self.target)
        return self.loss == default or sp.expand(self.loss - default) == 0

    @property
    def param_symbols(self) -> tuple[sp.Symbol, ...]:
        """The params in a fixed (sorted by name) order."""
        return tuple(sorted(self.params, key=str))

    def with_params(self, **values: float) -> Problem:
        """The same problem with other default values for some params.

        A param declared positive (a positive default in :meth:`from_strings`) only takes
        positive values: the derivations assumed it.

        Examples
        --------
        >>> p = Problem.from_strings("x0", "sqrt(alpha**2)*x0", params={"alpha": 2})
        >>> p.outputs
        (alpha*x0,)
        >>> p.with_params(alpha=-2)
        Traceback (most recent call last):
        ...
        scaleinv.errors.ProblemError: param alpha is declared positive ... cannot be -2; ...
        """
        by_name = {str(s): s for s in self.params}
        unknown = set(values) - set(by_name)
        if unknown:
            raise ProblemError(f"unknown params {sorted(unknown)}; known: {sorted(by_name)}")
        new = dict(self.params)
        for name, value in values.items():
            new[by_name[name]] = _param_value(name, value)
        return Problem(self.inputs, self.outputs, self.loss, self.target, new)

    # -- exact derivatives ----------------------------------------------------------------
    @cached_property
    def P(self) -> sp.Matrix:
        """``P(x)`` as an m×1 column."""
        return sp.Matrix(self.outputs)

    def derivatives(self, engine: str = "auto") -> SparseDerivatives:
        """The structurally nonzero entries of J, ∂L/∂y, ∂²L/∂y², ∇L and H (cached per engine).

        ``engine`` is ``"sympy"``, ``"symengine"`` or ``"auto"`` (SymEngine where installed);
        every engine gives the same SymPy results (see :mod:`scaleinv.symbolic.sparse`).
        """
        cache = self.__dict__.setdefault("_derivatives", {})
        if engine not in cache:
            cache[engine] = derive_sparse(
                self.inputs, self.outputs, self.loss, self.output_symbols, engine=engine
            )
        return cache[engine]

    @cached_property
    def sparse(self) -> SparseDerivatives:
        """:meth:`derivatives` with the default engine: what kernels and properties use."""
        return self.derivatives()

    @cached_property
    def sparsity(self) -> Sparsity:
        """The static nonzero patterns of the Jacobian and the Hessian.

        Examples
        --------
        >>> p = Problem.from_strings(["x0", "x1", "x2"], ["x0 + x1", "x1*x2", "x2"])
        >>> p.sparsity.jacobian
        ((0, 0), (0, 1), (1, 1), (1, 2), (2, 2))
        >>> p.sparsity.hessian_shape, p.sparsity.hessian_nnz
        ((3, 3), 7)
        """
        return self.sparse.sparsity

    @cached_property
    def jacobian(self) -> sp.Matrix:
        """``∂P/∂x`` (m×n), built from the sparse entries."""
        return to_matrix(self.sparse.jacobian, (self.m, self.n))

    @cached_property
    def loss_y(self) -> sp.Matrix:
        """``∂L/∂y`` (m×1), in the output symbols."""
        return to_matrix(self.sparse.loss_y, (self.m, 1))

    @cached_property
    def loss_yy(self) -> sp.Matrix:
        """``∂²L/∂y²`` (m×m), in the output symbols."""
        return to_matrix(self.sparse.loss_yy, (self.m, self.m))

    @cached_property
    def at_P(self) -> dict[sp.Symbol, sp.Expr]:
        """The substitution ``y -> P(x)``."""
        return dict(zip(self.output_symbols, self.outputs))

    @cached_property
    def loss_x(self) -> sp.Expr:
        """``L(P(x))``."""
        return self.loss.xreplace(self.at_P)

    @cached_property
    def gradient(self) -> sp.Matrix:
        """``∂L/∂x`` as an n×1 column (chain rule ``Jᵀ ∂L/∂y`` on the pattern)."""
        return to_matrix(self.sparse.gradient, (self.n, 1))

    @cached_property
    def hessian(self) -> sp.Matrix:
        """``∂²L/∂x²`` (n×n), built by the chain rule ``Jᵀ L_yy J + Σ_k L_{y_k} ∇²P_k``.

        Summed over the nonzero pattern only, each Jacobian entry differentiated by the inputs
        it contains (see :mod:`scaleinv.symbolic.sparse`).
        """
        return to_matrix(self.sparse.hessian, (self.n, self.n))

    @cached_property
    def newton_dy_entries(self) -> dict[int, sp.Expr]:
        """The nonzero entries of :attr:`newton_dy`, solved block by block on ``L_yy``."""
        try:
            return dict(self.sparse.newton_dy)
        except ProblemError as err:
            raise ProblemError(
                "the loss has a singular Hessian in y, so the Newton step in y-space that IG "
                f"and PG use does not exist (loss = {self.loss}; {err})"
            ) from None

    @cached_property
    def newton_dy(self) -> sp.Matrix:
        """The unit-rate Newton step of ``L`` in y-space, ``−(∂²L/∂y²)⁻¹ ∂L/∂y`` (m×1).

        IG and PG scale it by their ``eta``. For the default loss it is ``y* − y``.
        """
        return to_matrix(self.newton_dy_entries, (self.m, 1))

    # -- inverses and kernels -------------------------------------------------------------
    def local_inverse(self, *, budget: int | None = None) -> LocalInverse:
        """Closed-form branches of ``P(x) = y`` and the nearest-branch local inverse.

        Derived once per budget (default :data:`~scaleinv.symbolic.inverse.INVERSE_BUDGET`
        steps) and cached, so PG's formulas, its compiled step and exports all see the same
        branches.
        """
        from scaleinv.symbolic.inverse import INVERSE_BUDGET, local_inverse

        budget = INVERSE_BUDGET if budget is None else budget
        cache = self.__dict__.setdefault("_local_inverses", {})
        if budget not in cache:
            cache[budget] = local_inverse(self, budget=budget)
        return cache[budget]

    def compile(self, backend: str = "auto") -> Any:
        """Batched NumPy kernels of ``P``, the Jacobian, gradient, Hessian and loss.

        A convenience for :func:`scaleinv.compile` (:func:`scaleinv.numeric.compile_problem`,
        the entry the package's own code uses; compiled once per problem and backend, and
        cached). The numeric layer is imported here, inside the method, so that the symbolic
        layer imports nothing above it (``tests/test_layers.py`` allows this one import).
        ``backend`` ``"auto"`` evaluates a kernel with SymEngine's LLVM where that is installed
        and measured faster, ``"numpy"`` always with the generated NumPy source, ``"llvm"``
        always with LLVM (see :mod:`scaleinv.numeric.backends`); ``kernel.backend`` says which
        one runs.
        """
        from scaleinv.numeric.compiler import compile_problem

        return compile_problem(self, backend=backend)

    def _repr_latex_(self) -> str:
        """The problem as a notebook shows it: outputs, loss, target and params."""
        rows = [
            rf"{sp.latex(y)} &= {sp.latex(e)}" for y, e in zip(self.output_symbols, self.outputs)
        ]
        rows.append(rf"L(y) &= {sp.latex(self.loss)}")
        if any(t != 0 for t in self.target):
            rows.append(rf"y^* &= {sp.latex(sp.Tuple(*self.target))}")
        if self.params:
            shown = ",\\ ".join(f"{sp.latex(k)} = {v:g}" for k, v in self.params.items())
            rows.append(rf"&\text{{with }} {shown}")
        return "$$\\begin{aligned}" + r" \\ ".join(rows) + r"\end{aligned}$$"

    def __repr__(self) -> str:
        params = ", ".join(f"{k}={v:g}" for k, v in self.params.items())
        return (
            f"Problem(inputs={list(self.inputs)}, outputs={list(self.outputs)}, "
            f"loss={self.loss}, target={list(self.target)}" + (f", {params})" if params else ")")
        )


def _as_sequence(value: Any) -> list[Any]:
    if isinstance(value, (str, int, float, sp.Basic)) and not isinstance(value, sp.MatrixBase):
        return [value]
    return list(value)


def _param_value(name: str, value: Any) -> float:
    if isinstance(value, str):
        value = parse_expr(value, {})
    try:
        number = float(value)
    except (TypeError, ValueError):
        raise ParseError(str(value), str(value), f"param {name!r} needs a number") from None
    if number != number or number in (float("inf"), float("-inf")):
        raise ParseError(str(value), str(value), f"param {name!r} needs a finite number")
    return number


def _check_sign(symbol: sp.Symbol, value: float) -> None:
    """Refuse a value that contradicts what ``symbol`` was declared (derivations assumed it)."""
    facts = {
        "positive": lambda v: v > 0,
        "negative": lambda v: v < 0,
        "nonnegative": lambda v: v >= 0,
        "nonpositive": lambda v: v <= 0,
        "nonzero": lambda v: v != 0,
    }
    for fact, holds in facts.items():
        if symbol.assumptions0.get(fact) and not holds(float(value)):
            raise ProblemError(
                f"param {symbol} is declared {fact} (its default was {fact}) and the derivations "
                f"assume it, so it cannot be {float(value):g}; build the problem with that value "
                f"as the default (e.g. params={{'{symbol}': {float(value):g}}}) to study it"
            )


def _check_at_defaults(expr: sp.Expr, params: Mapping[sp.Symbol, float], what: str) -> None:
    """Refuse ``expr`` if a subexpression in params alone is not a real float at the params'
    defaults (``sqrt(a)`` with ``a = -4``, ``log(a)`` with ``a = -1``, ``exp(a)`` with
    ``a = 1000``): the kernels evaluate each such subexpression, and every run would end in NaN.
    """
    if not params:
        return  # constants without params were checked by the parser
    values = {p: sp.Float(v, 30) for p, v in params.items()}
    constant: dict[sp.Basic, bool] = {}
    for node in sp.postorder_traversal(expr):
        if node in constant:
            continue
        if not node.args:
            constant[node] = node in values or bool(node.is_number)
            continue
        constant[node] = all(constant[a] for a in node.args)
        if not constant[node] or not (node.free_symbols & set(values)):
            continue
        at = ", ".join(f"{p} = {float(values[p]):g}" for p in sorted(node.free_symbols, key=str))
        try:
            value = complex(sp.N(node.xreplace(values), 15))
        except (TypeError, ValueError, OverflowError):
            value = complex(float("nan"))
        if not abs(value.real) <= MAX_CONSTANT:
            reason = "not a finite float"
        elif abs(value.imag) > 1e-12 * (1 + abs(value.real)):
            reason = f"complex ({value.real:g} + {value.imag:g}i)"
        else:
            continue
        raise ProblemError(
            f"{what} ({expr}) is {reason} at the params' defaults: {node} with {at}; give the "
            "params values where it is real and finite"
        )


def _check_free(expr: sp.Expr, allowed: Iterable[sp.Symbol], what: str) -> None:
    unknown = expr.free_symbols - set(allowed)
    if unknown:
        names = ", ".join(sorted(map(str, unknown)))
        raise ProblemError(f"{what} ({expr}) uses unknown symbols: {names}")
