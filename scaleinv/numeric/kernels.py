"""Compile SymPy expressions into batched NumPy kernels — the only place SymPy becomes NumPy.

A kernel is Python source printed by :mod:`scaleinv.numeric.source` from a straight-line
program, executed here. A problem's kernels (:func:`flavor_kernels`) are printed from its
sparse derivatives: one program per kernel, from the cse of the expanded entries or, for deep
compositions, from derivatives on the expression graph
(:meth:`~scaleinv.symbolic.sparse.SparseDerivatives.program`). The same source is what
:func:`scaleinv.export` writes to disk, so exported and in-process kernels are one code path.
"""

from __future__ import annotations

import functools
import weakref
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, NamedTuple

import numpy as np
import sympy as sp

from scaleinv.errors import ProblemError
from scaleinv.numeric.flavors import namespace_of
from scaleinv.numeric.source import (
    BLOCK,
    RESERVED,
    kernel_source,
    param_keywords,
    program_source,
)
from scaleinv.symbolic import Problem

__all__ = ["Kernel", "ProblemKernels", "Pattern", "compile_kernel", "compile_program"]
__all__ += ["kernel_source"]
__all__ += ["program_source", "flavor_kernels", "use_sparse", "param_keywords", "RESERVED"]
__all__ += ["real_array", "batch_shape", "StraightLine", "BLOCK"]

#: A matrix with at least this many entries and at most this fraction nonzero is held
#: sparsely and solved with its pattern (see :func:`use_sparse`). Measured on the diffusion
#: step (5 nonzeros per row), Newton step at 1000 points: the SciPy block-diagonal LU is
#: 1.2-1.4x slower than batched dense LAPACK at n = 64, 14x faster at n = 128.
SPARSE_MIN_SIZE = 96 * 96
SPARSE_DENSITY = 0.1


class StraightLine(NamedTuple):
    """The straight-line program a kernel evaluates (what :func:`program_source` prints and a
    compiled backend, :mod:`scaleinv.numeric.backends`, compiles)."""

    temps: Sequence[tuple[sp.Symbol, sp.Expr]]
    outputs: Sequence[tuple[tuple[int, ...], sp.Expr]]
    shape: tuple[int, ...]
    args: Sequence[tuple[str, Sequence[sp.Symbol]]]
    params: Mapping[sp.Symbol, float]


@dataclass(frozen=True)
class Kernel:
    """A compiled batched function: ``kernel(*arrays, **params) -> ndarray``.

    Attributes
    ----------
    name : str
        The function's name in :attr:`source`.
    source : str
        Standalone Python source (needs only ``import numpy``).
    shape : tuple of int
        Shape of one sample's output; the result has shape ``batch + shape``.
    func : callable
        The function evaluating it: the compiled :attr:`source`, or the backend chosen by
        :func:`~scaleinv.numeric.compiler.compile_problem` (see :mod:`scaleinv.numeric.backends`).
    program : StraightLine or None
        The straight-line program :attr:`source` was printed from (None for a kernel that
        calls other kernels).
    """

    name: str
    source: str
    shape: tuple[int, ...]
    func: Callable[..., np.ndarray]
    sizes: tuple[int, ...] = ()
    positive: frozenset[str] = frozenset()
    program: StraightLine | None = field(default=None, compare=False, repr=False)

    @property
    def backend(self) -> str:
        """What evaluates the kernel now: ``"numpy"`` (:attr:`source`) or ``"llvm"``."""
        return str(getattr(self.func, "backend", "numpy"))

    @property
    def backend_reason(self) -> str:
        """Why :attr:`backend` evaluates it (how ``backend="auto"`` chose, or that it was asked)."""
        return str(getattr(self.func, "reason", "numpy: the generated NumPy source"))

    def __call__(self, *args: Any, **params: Any) -> np.ndarray:
        """Evaluate; arrays must be real, end in the argument's size, and params declared
        positive must be positive (the formulas assumed it)."""
        if self.sizes:
            if len(args) != len(self.sizes):
                raise ProblemError(f"kernel {self.name} takes {len(self.sizes)} arrays")
            args = tuple(
                real_array(a, f"{self.name} argument", n) for a, n in zip(args, self.sizes)
            )
        for key, value in params.items():
            value = params[key] = real_array(value, f"{self.name} param {key}")
            if key in self.positive and not np.all(value > 0):
                raise ProblemError(f"param {key} is declared positive: the formulas assume it")
        shapes = {f"argument {i} of batch shape": a.shape[:-1] for i, a in enumerate(args, 1)}
        shapes.update((f"param {key} of shape", np.shape(v)) for key, v in params.items())
        batch_shape(f"kernel {self.name}", shapes)
        return self.func(*args, **params)


def real_array(value: Any, what: str, size: int | None = None) -> np.ndarray:
    """``value`` as a float64 array, or a :class:`ProblemError` for complex, text or object
    values (never a silently dropped imaginary part) or a last axis that is not ``size``.

    Examples
    --------
    >>> real_array([[1, 2]], "x0", 2)
    array([[1., 2.]])
    >>> real_array([1 + 2j], "x0")
    Traceback (most recent call last):
    ...
    scaleinv.errors.ProblemError: x0 must be real numbers, got complex128
    """
    array = np.asarray(value)
    if array.dtype.kind == "O":
        try:
            array = array.astype(np.float64)
        except (TypeError, ValueError):
            raise ProblemError(f"{what} must be real numbers, got objects") from None
    if array.dtype.kind not in "biuf":
        raise ProblemError(f"{what} must be real numbers, got {array.dtype}")
    if size is not None and (array.ndim == 0 or array.shape[-1] != size):
        raise ProblemError(f"{what} must have shape (..., {size}), got {array.shape}")
    return array.astype(np.float64, copy=False)


def batch_shape(what: str, shapes: Mapping[str, tuple[int, ...]]) -> tuple[int, ...]:
    """The broadcast of the named batch shapes, or a :class:`ProblemError` naming the first
    one that does not fit the others (and the shapes it could have).

    Examples
    --------
    >>> batch_shape("kernel P", {"x of batch shape": (5,), "param alpha of shape": (3,)})
    Traceback (most recent call last):
    ...
    scaleinv.errors.ProblemError: kernel P: param alpha of shape (3,) does not broadcast against ...
    """
    batch: tuple[int, ...] = ()
    for name, shape in shapes.items():
        try:
            batch = np.broadcast_shapes(batch, shape)
        except ValueError:
            raise ProblemError(
                f"{what}: {name} {shape} does not broadcast against the batch shape {batch}; "
                f"expected {batch} or a shape that broadcasts to it"
            ) from None
    return batch


def _exec_source(
    name: str, source: str, namespace: dict[str, Any] | None = None, flavor: str = "numpy"
) -> Any:
    scope: dict[str, Any] = {**namespace_of(flavor), **(namespace or {})}
    # The source was printed from SymPy expressions built by scaleinv (never from user text).
    exec(compile(source, f"<scaleinv kernel {name}>", "exec"), scope)  # noqa: S102
    return scope[name]


def compile_kernel(
    name: str,
    exprs: sp.MatrixBase | Sequence[sp.Expr] | sp.Expr,
    args: Sequence[tuple[str, Sequence[sp.Symbol]]],
    params: Mapping[sp.Symbol, float] | None = None,
    doc: str = "",
    flavor: str = "numpy",
) -> Kernel:
    """Generate (see :func:`kernel_source`) and compile a batched kernel.

    Examples
    --------
    >>> import sympy as sp
    >>> x = sp.Symbol("x")
    >>> k = compile_kernel("square", [x**2, 1], [("x", [x])])
    >>> k([[2.0], [3.0]])
    array([[4., 1.],
           [9., 1.]])
    """
    source, shape = kernel_source(name, exprs, args, params, doc, flavor)
    return _kernel(name, source, shape, args, params, flavor)


def compile_program(
    name: str,
    program: tuple[Sequence[tuple[sp.Symbol, sp.Expr]], Sequence[sp.Expr]],
    keys: Sequence[Any],
    shape: tuple[int, ...],
    args: Sequence[tuple[str, Sequence[sp.Symbol]]],
    params: Mapping[sp.Symbol, float] | None = None,
) -> Kernel:
    """Compile a straight-line program ``(temporaries, reduced)`` whose ``reduced[i]`` is the
    entry ``keys[i]`` (an index of ``shape``, or an int for a vector) of the result.

    Examples
    --------
    >>> import sympy as sp
    >>> x, t = sp.symbols("x _t0")
    >>> k = compile_program("f", ([(t, x + 1)], [t * t, t]), [0, 1], (2,), [("x", [x])])
    >>> k([[1.0], [2.0]])
    array([[4., 2.],
           [9., 3.]])
    """
    temps, reduced = program
    index = [k if isinstance(k, tuple) else (k,) for k in keys]
    outputs = [(i, e) for i, e in zip(index, reduced) if e != 0]
    source = program_source(name, temps, outputs, shape, args, params)
    return _kernel(name, source, shape, args, params, "numpy")


def _kernel(
    name: str,
    source: str,
    shape: tuple[int, ...],
    args: Sequence[tuple[str, Sequence[sp.Symbol]]],
    params: Mapping[sp.Symbol, float] | None,
    flavor: str,
) -> Kernel:
    sizes = tuple(len(symbols) for _, symbols in args)
    positive = frozenset(str(s) for s in (params or {}) if s.is_positive)
    return Kernel(name, source, shape, _exec_source(name, source, flavor=flavor), sizes, positive)


@dataclass(frozen=True)
class Pattern:
    """The static nonzero pattern of a matrix kernel and whether steps use it.

    ``rows``/``cols`` (COO indices, sorted row-major) index the last axis of the ``*_values``
    kernel; ``sparse`` says whether the matrix is held sparsely (values computed, dense form a
    scatter) and steps solve with the pattern — chosen by :func:`use_sparse`.
    """

    name: str
    rows: np.ndarray
    cols: np.ndarray
    shape: tuple[int, int]
    sparse: bool

    @property
    def csr(self) -> tuple[np.ndarray, np.ndarray]:
        """``(indptr, indices)`` of the pattern in CSR form (values in the same order)."""
        indptr = np.searchsorted(self.rows, np.arange(self.shape[0] + 1)).astype(np.intp)
        return indptr, self.cols

    def source(self, flavor: str = "numpy") -> str:
        """Module-level lines defining ``{name}_pattern`` and ``{name}_sparse`` (JAX and
        PyTorch index with lists)."""
        rows, cols = (", ".join(map(str, a.tolist())) for a in (self.rows, self.cols))
        index = "numpy.array([{}], dtype=numpy.intp)" if flavor == "numpy" else "[{}]"
        return (
            f"{self.name}_pattern = ({index.format(rows)}, "
            f"{index.format(cols)}, {self.shape!r})\n"
            f"{self.name}_sparse = {self.sparse!r}\n"
        )


def use_sparse(nnz: int, shape: tuple[int, int]) -> bool:
    """Hold a matrix sparsely (and solve with its pattern) when it is large and sparse.

    Thresholds :data:`SPARSE_MIN_SIZE` and :data:`SPARSE_DENSITY` were measured with
    ``benchmarks/derive.py --threshold`` (Newton steps, sparse vs dense, on this machine).

    Examples
    --------
    >>> use_sparse(5 * 1024, (1024, 1024)), use_sparse(5 * 64, (64, 64))
    (True, False)
    """
    size = shape[0] * shape[1]
    return size >= SPARSE_MIN_SIZE and nnz <= SPARSE_DENSITY * size


@dataclass(frozen=True)
class ProblemKernels:
    """The batched kernels of one :class:`~scaleinv.symbolic.Problem`.

    ``P(x)`` → ``(..., m)``, ``jacobian(x)`` → ``(..., m, n)``, ``gradient(x)`` → ``(..., n)``,
    ``hessian(x)`` → ``(..., n, n)``, ``loss(x)`` → ``(...)``; in y-space ``loss_y(y)`` →
    ``(..., m)`` and ``newton_dy(y)`` → ``(..., m)`` (the unit-rate Newton step of L in y).
    ``jacobian_values(x)`` → ``(..., nnz)`` and ``hessian_values(x)`` are the structurally
    nonzero entries in the order of :attr:`jacobian_pattern` / :attr:`hessian_pattern`.
    Params are keyword arguments with the problem's defaults, named as :func:`param_keywords`
    says (a param's own name, or ``slice_`` for a param named like a builtin, e.g. ``slice``).
    """

    P: Kernel
    jacobian: Kernel
    gradient: Kernel
    hessian: Kernel
    loss: Kernel
    loss_of_y: Kernel
    loss_y: Kernel
    newton_dy: Kernel | None
    jacobian_values: Kernel
    hessian_values: Kernel
    jacobian_pattern: Pattern
    hessian_pattern: Pattern

    def all(self) -> tuple[Kernel, ...]:
        """Every kernel, in a fixed order (what :func:`scaleinv.export` writes)."""
        ks = (
            self.P,
            self.jacobian_values,
            self.jacobian,
            self.gradient,
            self.hessian_values,
            self.hessian,
            self.loss,
            self.loss_of_y,
            self.loss_y,
        )
        return ks + ((self.newton_dy,) if self.newton_dy is not None else ())

    def constants(self) -> dict[str, Any]:
        """The module-level names steps read besides the kernels (patterns and flags)."""
        out: dict[str, Any] = {}
        for pat in (self.jacobian_pattern, self.hessian_pattern):
            out[f"{pat.name}_pattern"] = (pat.rows, pat.cols, pat.shape)
            out[f"{pat.name}_sparse"] = pat.sparse
        return out


_CACHE: dict[str, weakref.WeakKeyDictionary[Problem, ProblemKernels]] = {}


def _matrix_kernels(
    problem: Problem, kind: str, doc: str, square_only: bool, flavor: str
) -> tuple[Kernel, Kernel, Pattern]:
    """The values kernel, the dense kernel and the pattern of the Jacobian or the Hessian.

    One straight-line program (cse once) computes whichever form is held; the other is a
    scatter (sparse: dense from values) or a gather (dense: values from dense) around it.
    """
    derivs = problem.sparse
    keys = sorted(derivs.native[kind])
    shape = (problem.m, problem.n) if kind == "jacobian" else (problem.n, problem.n)
    rows = np.array([k[0] for k in keys], dtype=np.intp)
    cols = np.array([k[1] for k in keys], dtype=np.intp)
    square = shape[0] == shape[1]
    # JAX and PyTorch hold it dense: the sparse form scatters into an array in place
    sparse = use_sparse(len(keys), shape) and (square or not square_only) and flavor == "numpy"
    pattern = Pattern(kind, rows, cols, shape, sparse)
    temps, reduced = derivs.program(kind, keys)
    x, ps = [("x", problem.inputs)], problem.params
    values_name = f"{kind}_values"
    values_doc = f"Nonzero entries of {doc}, shape (..., {len(keys)}); see {kind}_pattern."
    dense_doc = f"{doc}, shape (..., {shape[0]}, {shape[1]})."
    if sparse:
        outputs = [((i,), e) for i, e in enumerate(reduced) if e != 0]
        values_shape = (len(keys),)
        primary = program_source(values_name, temps, outputs, values_shape, x, ps, values_doc)
        wrapper = (
            f"def {kind}(x, **params):\n"
            f'    """{dense_doc}"""\n'
            f"    values = {values_name}(x, **params)\n"
            f"    out = numpy.zeros(values.shape[:-1] + {shape!r})\n"
            f"    out[..., {kind}_pattern[0], {kind}_pattern[1]] = values\n"
            "    return out\n"
        )
        values_src, dense_src = pattern.source(flavor) + primary, wrapper
    else:
        outputs = [(k, e) for k, e in zip(keys, reduced) if e != 0]
        primary = program_source(kind, temps, outputs, shape, x, ps, dense_doc, flavor)
        wrapper = (
            f"def {values_name}(x, **params):\n"
            f'    """{values_doc}"""\n'
            f"    return {kind}(x, **params)[..., {kind}_pattern[0], {kind}_pattern[1]]\n"
        )
        values_src, dense_src = pattern.source(flavor) + wrapper, primary
    scope = {f"{kind}_pattern": (rows, cols, shape)}
    values_fn = _exec_source(values_name, values_src, scope, flavor)
    scope[values_name] = values_fn
    dense_fn = _exec_source(kind, dense_src, scope, flavor)
    if not sparse:
        values_fn.__globals__[kind] = dense_fn
    guards = _guards(problem, "x")
    program = StraightLine(temps, outputs, (len(keys),) if sparse else shape, x, ps)
    values_program, dense_program = (program, None) if sparse else (None, program)
    return (
        Kernel(values_name, values_src, (len(keys),), values_fn, *guards, values_program),
        Kernel(kind, dense_src, shape, dense_fn, *guards, dense_program),
        pattern,
    )


def _vector_kernel(
    problem: Problem, kind: str, name: str, shape: tuple, doc: str, space: str, flavor: str
) -> Kernel:
    """A kernel of the entries of ``kind`` (a vector indexed by output, or a scalar)."""
    derivs = problem.sparse
    keys = sorted(derivs.table(kind))
    temps, reduced = derivs.program(kind, keys)
    outputs = [((k,) if shape else (), e) for k, e in zip(keys, reduced) if e != 0]
    args = [("x", problem.inputs)] if space == "x" else [("y", problem.output_symbols)]
    source = program_source(name, temps, outputs, shape, args, problem.params, doc, flavor)
    func = _exec_source(name, source, flavor=flavor)
    program = StraightLine(temps, outputs, shape, args, problem.params)
    return Kernel(name, source, shape, func, *_guards(problem, space), program)


def _guards(problem: Problem, space: str) -> tuple[tuple[int, ...], frozenset[str]]:
    """What a kernel checks of its arguments: the array size and the positive params."""
    size = problem.n if space == "x" else problem.m
    return (size,), frozenset(str(s) for s in problem.params if s.is_positive)


def _composed(name: str, outer: Kernel, inner: Kernel, doc: str, flavor: str) -> Kernel:
    """``outer(inner(x))`` (e.g. the loss as ``L(P(x))``: no cse of a long sum twice)."""
    source = (
        f"def {name}(x, **params):\n"
        f'    """{doc}"""\n'
        f"    return {outer.name}({inner.name}(x, **params), **params)\n"
    )
    scope = {outer.name: outer.func, inner.name: inner.func}
    func = _exec_source(name, source, scope, flavor)
    return Kernel(name, source, outer.shape, func, inner.sizes, inner.positive)


def flavor_kernels(problem: Problem, flavor: str = "numpy") -> ProblemKernels:
    """Compile (once per problem and flavour, cached) the kernels of :class:`ProblemKernels`,
    evaluated by their generated source (the backend is chosen by
    :func:`scaleinv.numeric.compiler.compile_problem`, the entry to use).

    Every kernel is printed from the problem's sparse derivatives (one cse per kernel,
    through the derivation engine, converted to SymPy only as the eliminated program).
    ``flavor`` ``"jax"`` or ``"torch"`` gives the same kernels written for that framework
    (see :mod:`scaleinv.numeric.flavors`; matrices are then always held dense).
    """
    cache = _CACHE.setdefault(flavor, weakref.WeakKeyDictionary())
    cached = cache.get(problem)
    if cached is not None:
        return cached
    m, n = problem.m, problem.n
    vector = functools.partial(_vector_kernel, problem, flavor=flavor)
    try:
        doc = "Unit-rate Newton step of L in y-space, (..., m)."
        newton_dy = vector("newton_dy", "newton_dy", (m,), doc, "y")
    except ProblemError:
        newton_dy = None
    jac_values, jac, jac_pattern = _matrix_kernels(problem, "jacobian", "dP/dx", True, flavor)
    hess_values, hess, hess_pattern = _matrix_kernels(problem, "hessian", "d2L/dx2", False, flavor)
    P = vector("P", "P", (m,), "P(x), shape (..., m).", "x")
    loss_of_y = vector("loss", "loss_of_y", (), "L(y), shape (...).", "y")
    kernels = ProblemKernels(
        P=P,
        jacobian=jac,
        gradient=vector("gradient", "gradient", (n,), "dL/dx, shape (..., n).", "x"),
        hessian=hess,
        loss=_composed("loss", loss_of_y, P, "L(P(x)), shape (...).", flavor),
        loss_of_y=loss_of_y,
        loss_y=vector("loss_y", "loss_y", (m,), "dL/dy, shape (..., m).", "y"),
        newton_dy=newton_dy,
        jacobian_values=jac_values,
        hessian_values=hess_values,
        jacobian_pattern=jac_pattern,
        hessian_pattern=hess_pattern,
    )
    cache[problem] = kernels
    return kernels
