"""Compile SymPy expressions into batched NumPy kernels — the only place SymPy becomes NumPy.

A kernel is generated Python source (SymPy's NumPy printer after common-subexpression
elimination) that unpacks its vector arguments from the last axis, broadcasts constants to the
batch shape and writes a float64 array of shape ``batch + shape``. The batch is flattened and
evaluated in blocks of :data:`BLOCK` points, so the temporaries of a block stay in cache and the
output is written a block at a time (on 10**6 points of a 12-link chain, 3-4x faster than
evaluating the whole batch at once). The same source is what :func:`scaleinv.export` writes to
disk, so exported and in-process kernels are one code path.
"""

from __future__ import annotations

import builtins
import keyword
import textwrap
import weakref
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import sympy as sp
from sympy.core.function import AppliedUndef
from sympy.printing.codeprinter import PrintMethodNotImplementedError
from sympy.printing.numpy import NumPyPrinter

from scaleinv.errors import ProblemError
from scaleinv.numeric import pysource
from scaleinv.symbolic import Problem

__all__ = [
    "Kernel",
    "ProblemKernels",
    "compile_kernel",
    "kernel_source",
    "compile_problem",
    "param_keywords",
    "RESERVED",
    "real_array",
]

#: Points per block of a kernel's batch loop (a block's temporaries then fit in L2/L3 cache).
BLOCK = 4096


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
        The compiled function.
    """

    name: str
    source: str
    shape: tuple[int, ...]
    func: Callable[..., np.ndarray]
    sizes: tuple[int, ...] = ()
    positive: frozenset[str] = frozenset()

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
        return self.func(*args, **params)


#: Names a problem's symbols may not take in generated code, besides Python's keywords and
#: builtins: what kernels use (``numpy``, ``out``, ``batch``) and the positional arguments of
#: kernels and steps (``x``, ``y``).
RESERVED = frozenset({*keyword.kwlist, *vars(builtins), "numpy", "out", "batch", "x", "y"})


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


def _identifier(symbol: sp.Symbol, taken: set[str]) -> str:
    """A Python name for ``symbol`` in generated code: its own name where that is safe.

    A reserved name gets a trailing underscore (``slice`` -> ``slice_``); a name that is not an
    ASCII identifier (non-ASCII ones are NFKC-normalized by Python, so ``ｘ0`` would be
    ``x0``), starts with ``_`` (the generated code's own names do) or is taken becomes ``_s<k>``.
    """
    name = str(symbol)
    if name in RESERVED:
        name += "_"
    if not name.isidentifier() or not name.isascii() or name.startswith("_") or name in taken:
        k = len(taken)
        while f"_s{k}" in taken:
            k += 1
        name = f"_s{k}"
    taken.add(name)
    return name


def param_keywords(params: Mapping[sp.Symbol, float] | Sequence[sp.Symbol]) -> dict[sp.Symbol, str]:
    """The keyword each param takes in every generated kernel and step (sorted by name).

    A param's keyword is its name unless that would shadow a Python builtin or a name the
    generated code uses (see :data:`RESERVED`).

    Examples
    --------
    >>> import sympy as sp
    >>> param_keywords([sp.Symbol("slice"), sp.Symbol("alpha"), sp.Symbol("x")])
    {alpha: 'alpha', slice: 'slice_', x: 'x_'}
    """
    taken: set[str] = set()
    return {s: _identifier(s, taken) for s in sorted(params, key=str)}


def kernel_source(
    name: str,
    exprs: sp.MatrixBase | Sequence[sp.Expr] | sp.Expr,
    args: Sequence[tuple[str, Sequence[sp.Symbol]]],
    params: Mapping[sp.Symbol, float] | None = None,
    doc: str = "",
) -> tuple[str, tuple[int, ...]]:
    """Python source of a batched kernel evaluating ``exprs``, and its per-sample shape.

    Parameters
    ----------
    name : str
        Function name.
    exprs : Matrix, sequence or scalar expression
        What to evaluate; a Matrix keeps its 2-D shape, a sequence gives a vector.
    args : sequence of (name, symbols)
        Positional array arguments; ``symbols`` are unpacked from the last axis in order.
    params : mapping of Symbol to float
        Keyword arguments with defaults; arrays broadcast against the batch.
    """
    params = dict(params or {})
    if isinstance(exprs, sp.MatrixBase):
        shape, flat = (exprs.rows, exprs.cols), list(exprs)
    elif isinstance(exprs, (list, tuple)):
        shape, flat = (len(exprs),), [sp.sympify(e) for e in exprs]
    else:
        shape, flat = (), [sp.sympify(exprs)]
    keywords = param_keywords(params)  # first: the same keywords in every kernel
    taken = set(keywords.values())
    arg_names = [a for a, _ in args]
    taken.update(arg_names)
    rename = {s: sp.Symbol(ident) for s, ident in keywords.items()}
    unpack = []
    for arg, symbols in args:
        for i, s in enumerate(symbols):
            ident = _identifier(s, taken)
            rename[s] = sp.Symbol(ident)
            unpack.append(f"{ident} = {arg}[_rows, {i}]")
    param_sigs = [f"{ident}={float(params[s])!r}" for s, ident in keywords.items()]
    param_names = list(keywords.values())
    unpack += [f"{ident} = _params[_rows, {j}]" for j, ident in enumerate(param_names)]
    # d|x|/dx = sign(x) differentiates to 2 DiracDelta(x): 0 wherever a float can land.
    flat = [e.xreplace(rename).replace(sp.DiracDelta, lambda *a: sp.Integer(0)) for e in flat]
    free = set().union(*(e.free_symbols for e in flat)) - set(rename.values())
    if free:
        raise ProblemError(f"kernel {name}: expressions use symbols that are not arguments: {free}")
    undefined = sorted({str(f.func) for e in flat for f in e.atoms(AppliedUndef)})
    if undefined:  # an older SymPy printer would write their names into the source
        raise ProblemError(f"kernel {name}: cannot compile undefined functions {undefined}")
    # cse's "basic" optimizations cost 70x more time on a 12-link chain's Hessian for no
    # measurable gain in the kernel, so the default (none) is used.
    temps, reduced = sp.cse(flat, symbols=sp.numbered_symbols("_t"))
    printer = NumPyPrinter({"fully_qualified_modules": True, "allow_unknown_functions": False})
    body = [f"{a} = numpy.asarray({a}, dtype=numpy.float64)" for a in arg_names]
    shapes = [f"numpy.shape({a})[:-1]" for a in arg_names]
    shapes += [f"numpy.shape({p})" for p in param_names]
    body.append(f"batch = numpy.broadcast_shapes({', '.join(shapes)})")
    body.append(f"# flatten the batch; evaluate it in blocks of {BLOCK} points (cache-sized)")
    body.append("_size = int(numpy.prod(batch))")
    for a in arg_names:
        body.append(
            f"{a} = numpy.broadcast_to({a}, batch + {a}.shape[-1:])"
            f".reshape((_size,) + {a}.shape[-1:])"
        )
    if param_names:
        body.append(
            "_params = numpy.stack([numpy.broadcast_to(_p, batch).reshape(_size) for _p in "
            f"({', '.join(param_names)},)], axis=-1, dtype=numpy.float64)"
        )
    dims = ", ".join(["_size", *map(str, shape)])
    body.append(f"out = numpy.zeros(({dims}))" if shape else "out = numpy.zeros(_size)")
    body.append("with numpy.errstate(all='ignore'):")
    body.append(f"    for _start in range(0, _size, {BLOCK}):")
    inner = [f"_rows = slice(_start, _start + {BLOCK}) if _size > 1 else 0  # 0: NumPy scalars"]
    inner += unpack
    try:
        inner += [f"{printer.doprint(t)} = {printer.doprint(e)}" for t, e in temps]
        for index, expr in zip(np.ndindex(*shape), reduced):
            if expr != 0:
                target = ", ".join(["_rows", *map(str, index)])
                inner.append(f"out[{target}] = {printer.doprint(expr)}")
    except PrintMethodNotImplementedError as err:
        raise ProblemError(f"kernel {name}: no NumPy form for a function it uses ({err})") from None
    body += ["        " + line for line in inner]
    body.append(f"return out.reshape(batch{f' + {shape!r}' if shape else ''})")
    signature = ", ".join(arg_names) + (", *, " + ", ".join(param_sigs) if param_sigs else "")
    docstring = f"    {pysource.docstring(doc)}\n" if doc else ""
    source = f"def {name}({signature}):\n{docstring}" + textwrap.indent("\n".join(body), "    ")
    return source + "\n", shape


def compile_kernel(
    name: str,
    exprs: sp.MatrixBase | Sequence[sp.Expr] | sp.Expr,
    args: Sequence[tuple[str, Sequence[sp.Symbol]]],
    params: Mapping[sp.Symbol, float] | None = None,
    doc: str = "",
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
    source, shape = kernel_source(name, exprs, args, params, doc)
    namespace: dict[str, Any] = {"numpy": np}
    # The source was printed from SymPy expressions built by scaleinv (never from user text).
    exec(compile(source, f"<scaleinv kernel {name}>", "exec"), namespace)  # noqa: S102
    sizes = tuple(len(symbols) for _, symbols in args)
    positive = frozenset(str(s) for s in (params or {}) if s.is_positive)
    return Kernel(name, source, shape, namespace[name], sizes, positive)


@dataclass(frozen=True)
class ProblemKernels:
    """The batched kernels of one :class:`~scaleinv.symbolic.Problem`.

    ``P(x)`` → ``(..., m)``, ``jacobian(x)`` → ``(..., m, n)``, ``gradient(x)`` → ``(..., n)``,
    ``hessian(x)`` → ``(..., n, n)``, ``loss(x)`` → ``(...)``; in y-space ``loss_y(y)`` →
    ``(..., m)`` and ``newton_dy(y)`` → ``(..., m)`` (the unit-rate Newton step of L in y).
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

    def all(self) -> tuple[Kernel, ...]:
        """Every kernel, in a fixed order (what :func:`scaleinv.export` writes)."""
        ks = (
            self.P,
            self.jacobian,
            self.gradient,
            self.hessian,
            self.loss,
            self.loss_of_y,
            self.loss_y,
        )
        return ks + ((self.newton_dy,) if self.newton_dy is not None else ())


_CACHE: weakref.WeakKeyDictionary[Problem, ProblemKernels] = weakref.WeakKeyDictionary()


def compile_problem(problem: Problem) -> ProblemKernels:
    """Compile (once per problem, cached) the kernels listed in :class:`ProblemKernels`."""
    cached = _CACHE.get(problem)
    if cached is not None:
        return cached
    x = [("x", problem.inputs)]
    y = [("y", problem.output_symbols)]
    ps = problem.params
    try:
        newton_dy = compile_kernel(
            "newton_dy",
            list(problem.newton_dy),
            y,
            ps,
            "Unit-rate Newton step of L in y-space, (..., m).",
        )
    except ProblemError:
        newton_dy = None
    kernels = ProblemKernels(
        P=compile_kernel("P", list(problem.P), x, ps, "P(x), shape (..., m)."),
        jacobian=compile_kernel("jacobian", problem.jacobian, x, ps, "dP/dx, shape (..., m, n)."),
        gradient=compile_kernel(
            "gradient", list(problem.gradient), x, ps, "dL/dx, shape (..., n)."
        ),
        hessian=compile_kernel("hessian", problem.hessian, x, ps, "d2L/dx2, shape (..., n, n)."),
        loss=compile_kernel("loss", problem.loss_x, x, ps, "L(P(x)), shape (...)."),
        loss_of_y=compile_kernel("loss_of_y", problem.loss, y, ps, "L(y), shape (...)."),
        loss_y=compile_kernel("loss_y", list(problem.loss_y), y, ps, "dL/dy, shape (..., m)."),
        newton_dy=newton_dy,
    )
    _CACHE[problem] = kernels
    return kernels
