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
import functools
import keyword
import textwrap
import weakref
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any, ClassVar

import numpy as np
import sympy as sp
from sympy.core.function import AppliedUndef
from sympy.printing.codeprinter import PrintMethodNotImplementedError
from sympy.printing.numpy import NumPyPrinter

from scaleinv.errors import ProblemError
from scaleinv.numeric import pysource
from scaleinv.numeric.flavors import functional_source, namespace_of, printer_of
from scaleinv.symbolic import Problem

__all__ = ["Kernel", "ProblemKernels", "Pattern", "compile_kernel", "compile_program"]
__all__ += ["kernel_source"]
__all__ += ["program_source", "compile_problem", "use_sparse", "param_keywords", "RESERVED"]
__all__ += ["real_array"]

#: Points per block of a kernel's batch loop (a block's temporaries then fit in L2/L3 cache).
BLOCK = 4096
#: Integer powers up to this exponent are printed as products (``x*x*x``).
MAX_PRODUCT_POWER = 8
#: A matrix with at least this many entries and at most this fraction nonzero is held
#: sparsely and solved with its pattern (see :func:`use_sparse`). Measured on the diffusion
#: step (5 nonzeros per row), Newton step at 1000 points: the SciPy block-diagonal LU is
#: 1.2-1.4x slower than batched dense LAPACK at n = 64, 14x faster at n = 128.
SPARSE_MIN_SIZE = 96 * 96
SPARSE_DENSITY = 0.1


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


class _Printer(NumPyPrinter):
    """NumPy's printer with a fast path for the nodes derivatives are made of.

    Sums, products, numbers, symbols, powers and the elementary functions are printed
    directly (fully parenthesized, in stored order: SymPy's general printer spent most of a
    1024-point stencil's compile time on precedence and term ordering); anything else goes
    to :class:`NumPyPrinter`. Small integer powers become products: ``x**3`` on an array calls
    ``pow`` per element (on negative bases 40x the cost of ``x*x*x``); the two agree to a few
    ulp (only symbol bases: other bases are cse temporaries or used once). Functions are
    looked up under ``self._module``, so a flavour printer deriving from
    this one (JAX, PyTorch) only changes the module.
    """

    _FUNCTIONS: ClassVar[dict[type, str]] = {
        sp.sin: "sin",
        sp.cos: "cos",
        sp.tan: "tan",
        sp.exp: "exp",
        sp.log: "log",
        sp.sinh: "sinh",
        sp.cosh: "cosh",
        sp.tanh: "tanh",
        sp.asin: "arcsin",
        sp.acos: "arccos",
        sp.atan: "arctan",
    }

    def doprint(self, expr: Any, assign_to: Any = None) -> str:
        if assign_to is None:
            return self._fast(expr)
        return super().doprint(expr, assign_to)

    def _fast(self, expr: Any) -> str:
        if expr.is_Symbol:
            return expr.name
        if expr.is_Integer:
            return str(int(expr)) if expr >= 0 else f"({int(expr)})"
        if expr.is_Rational:
            return f"({expr.p}/{expr.q})"
        if expr.is_Float:
            return f"({float(expr)!r})"
        if expr.is_Add:  # terms with a negative coefficient are subtracted: a - b, not a + (-1)*b
            plus, minus = [], []
            for a in expr.args:
                coeff, rest = a.as_coeff_Mul()
                if coeff.is_negative:
                    term = self._fast(rest) if coeff == -1 else self._fast(-coeff * rest)
                    minus.append(term)
                else:
                    plus.append(self._fast(a))
            head = " + ".join(plus) if plus else f"-{minus.pop(0)}"
            return "(" + " - ".join([head, *minus]) + ")"
        if expr.is_Mul:
            return "*".join(self._fast(a) for a in expr.args)
        if expr.is_Pow:
            base, exp = self._fast(expr.base), expr.exp
            if expr.base.is_Mul:
                base = f"({base})"
            small = exp.is_Integer and 1 <= abs(int(exp)) <= MAX_PRODUCT_POWER
            if small and expr.base.is_Symbol:  # a symbol: the product repeats no work
                product = "*".join([base] * abs(int(exp)))
                return f"({product})" if exp > 0 else f"(1/({product}))"
            if exp == sp.S.Half or exp == -sp.S.Half:
                root = f"{self._module_format(self._module + '.sqrt')}({base})"
                return root if exp > 0 else f"(1/{root})"
            if expr.base is sp.E:
                return f"{self._module_format(self._module + '.exp')}({self._fast(exp)})"
            return f"({base}**({self._fast(exp)}))"
        name = self._FUNCTIONS.get(type(expr))
        if name is not None:
            return f"{self._module_format(f'{self._module}.{name}')}({self._fast(expr.args[0])})"
        return f"({super().doprint(expr)})"


def _printer() -> NumPyPrinter:
    # order="none": print sums and products in their stored order; sorting the terms for
    # display was 2/3 of the printing time of a 256-point stencil's kernels.
    settings = {"fully_qualified_modules": True, "allow_unknown_functions": False}
    return _Printer({**settings, "order": "none"})


def _flatten(exprs: sp.MatrixBase | Sequence[sp.Expr] | sp.Expr) -> tuple[tuple, list[sp.Expr]]:
    if isinstance(exprs, sp.MatrixBase):
        return (exprs.rows, exprs.cols), list(exprs)
    if isinstance(exprs, (list, tuple)):
        return (len(exprs),), [sp.sympify(e) for e in exprs]
    return (), [sp.sympify(exprs)]


def kernel_source(
    name: str,
    exprs: sp.MatrixBase | Sequence[sp.Expr] | sp.Expr,
    args: Sequence[tuple[str, Sequence[sp.Symbol]]],
    params: Mapping[sp.Symbol, float] | None = None,
    doc: str = "",
    flavor: str = "numpy",
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
    doc : str
        The function's docstring.
    flavor : {"numpy", "jax", "torch"}
        Whose array operations the source calls (:mod:`scaleinv.numeric.flavors`): the
        expression lines are printed by that flavour's printer; JAX and PyTorch kernels are
        functional (one stacked result instead of a blocked loop writing into ``out``).
    """
    shape, flat = _flatten(exprs)
    # cse's "basic" optimizations cost 70x more time on a 12-link chain's Hessian for no
    # measurable gain in the kernel, so the default (none) is used.
    temps, reduced = sp.cse(flat, symbols=sp.numbered_symbols("_t"))
    outputs = [(i, e) for i, e in zip(np.ndindex(*shape), reduced) if e != 0]
    return program_source(name, temps, outputs, shape, args, params, doc, flavor), shape


def _clean(expr: sp.Expr, rename: Mapping[sp.Symbol, sp.Symbol]) -> sp.Expr:
    """``expr`` with generated names, and ``DiracDelta`` as 0 (d|x|/dx = sign(x)
    differentiates to 2 DiracDelta(x): 0 wherever a float can land)."""
    if rename:
        expr = expr.xreplace(rename)
    if expr.has(sp.DiracDelta):
        expr = expr.replace(sp.DiracDelta, lambda *a: sp.Integer(0))
    return expr


def program_source(
    name: str,
    temps: Sequence[tuple[sp.Symbol, sp.Expr]],
    outputs: Sequence[tuple[tuple[int, ...], sp.Expr]],
    shape: tuple[int, ...],
    args: Sequence[tuple[str, Sequence[sp.Symbol]]],
    params: Mapping[sp.Symbol, float] | None = None,
    doc: str = "",
    flavor: str = "numpy",
) -> str:
    """Source of a batched kernel from a straight-line program (the one printing step).

    ``temps`` are ``(symbol, expr)`` assignments in order (as :func:`sympy.cse` gives them),
    ``outputs`` the ``(index, expr)`` entries of the per-sample result of shape ``shape``
    that are not zero. See :func:`kernel_source` for ``args`` and ``params``.
    """
    params = dict(params or {})
    keywords = param_keywords(params)  # first: the same keywords in every kernel
    taken = set(keywords.values())
    arg_names = [a for a, _ in args]
    taken.update(arg_names)
    rename = {s: sp.Symbol(ident) for s, ident in keywords.items() if ident != s.name}
    unpack, columns, defined = [], [], set(keywords.values())
    for arg, symbols in args:
        for i, s in enumerate(symbols):
            ident = _identifier(s, taken)
            if ident != s.name:
                rename[s] = sp.Symbol(ident)
            defined.add(ident)
            unpack.append(f"{ident} = {arg}[_rows, {i}]")
            columns.append((ident, arg, i))
    param_sigs = [f"{ident}={float(params[s])!r}" for s, ident in keywords.items()]
    param_names = list(keywords.values())
    unpack += [f"{ident} = _params[_rows, {j}]" for j, ident in enumerate(param_names)]
    temps = [(t, _clean(e, rename)) for t, e in temps]
    outputs = [(i, _clean(e, rename)) for i, e in outputs]
    reads = [e.free_symbols for _, e in [*temps, *outputs]]  # each statement's symbols
    free = {s.name for symbols in reads for s in symbols}
    free -= defined | {t.name for t, _ in temps}
    if free:
        raise ProblemError(f"kernel {name}: expressions use symbols that are not arguments: {free}")
    undefined = sorted({str(f.func) for _, e in [*temps, *outputs] for f in e.atoms(AppliedUndef)})
    if undefined:  # an older SymPy printer would write their names into the source
        raise ProblemError(f"kernel {name}: cannot compile undefined functions {undefined}")
    signature = ", ".join(arg_names) + (", *, " + ", ".join(param_sigs) if param_sigs else "")
    docstring = f"    {pysource.docstring(doc)}\n" if doc else ""
    if flavor != "numpy":  # JAX and PyTorch: the same program in a functional frame
        frame = (arg_names, columns, param_names)
        return _functional(name, signature, docstring, flavor, temps, outputs, shape, frame)
    printer = _printer()
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
        inner += _statements(printer, temps, outputs, reads)
    except PrintMethodNotImplementedError as err:
        raise ProblemError(f"kernel {name}: no NumPy form for a function it uses ({err})") from None
    body += ["        " + line for line in inner]
    body.append(f"return out.reshape(batch{f' + {shape!r}' if shape else ''})")
    source = f"def {name}({signature}):\n{docstring}" + textwrap.indent("\n".join(body), "    ")
    return source + "\n"


def _statements(
    printer: NumPyPrinter,
    temps: Sequence[tuple[sp.Symbol, sp.Expr]],
    outputs: Sequence[tuple[tuple[int, ...], sp.Expr]],
    reads: Sequence[set[sp.Basic]],
) -> list[str]:
    """The block's lines: temporaries in order, each output written as soon as what it reads
    is computed, and each temporary deleted after its last use — so a block's working set is
    the live temporaries, whose memory NumPy reuses while it is in cache (a 12-link chain's
    Hessian: at most 38 live arrays of 32 KB, not 400). ``reads``: each temporary's and then
    each output's free symbols."""
    position = {t: i for i, (t, _) in enumerate(temps)}
    used = [{s for s in symbols if s in position} for symbols in reads]
    after: dict[int, list[int]] = {}  # temp position -> outputs written right after it
    for k in range(len(outputs)):
        after.setdefault(max((position[s] for s in used[len(temps) + k]), default=-1), []).append(k)
    order = after.get(-1, []).copy()  # statements: temps as i, outputs as len(temps) + k
    order = [len(temps) + k for k in order]
    for i in range(len(temps)):
        order += [i, *(len(temps) + k for k in after.get(i, []))]
    last = {s: step for step, i in enumerate(order) for s in used[i]}
    dead: dict[int, list[str]] = {}
    for s, step in last.items():
        dead.setdefault(step, []).append(s.name)
    lines = []
    for step, i in enumerate(order):
        if i < len(temps):
            t, e = temps[i]
            lines.append(f"{printer.doprint(t)} = {printer.doprint(e)}")
        else:
            index, expr = outputs[i - len(temps)]
            target = ", ".join(["_rows", *map(str, index)])
            lines.append(f"out[{target}] = {printer.doprint(expr)}")
        if step in dead:
            lines.append("del " + ", ".join(sorted(dead[step])))
    return lines


def _functional(
    name: str,
    signature: str,
    docstring: str,
    flavor: str,
    temps: Sequence[tuple[sp.Symbol, sp.Expr]],
    outputs: Sequence[tuple[tuple[int, ...], sp.Expr]],
    shape: tuple[int, ...],
    frame: tuple[list[str], list[tuple[str, str, int]], list[str]],
) -> str:
    """:func:`program_source` for JAX or PyTorch (see
    :func:`~scaleinv.numeric.flavors.functional_source`); ``temps`` and ``outputs`` renamed,
    ``frame`` is (argument names, their unpacked columns, param keywords)."""
    printer = printer_of(flavor)
    entries: list[str | None] = [None] * int(np.prod(shape, dtype=int))  # None: zero entry
    try:
        assign = [f"{printer.doprint(t)} = {printer.doprint(e)}" for t, e in temps]
        for index, expr in outputs:
            entries[int(np.ravel_multi_index(index, shape)) if shape else 0] = printer.doprint(expr)
    except PrintMethodNotImplementedError as err:
        raise ProblemError(
            f"kernel {name}: no {flavor} form for a function it uses ({err})"
        ) from None
    arg_names, columns, param_names = frame
    return functional_source(
        name, signature, docstring, arg_names, columns, param_names, assign, entries, shape
    )


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
    return (
        Kernel(values_name, values_src, (len(keys),), values_fn, *guards),
        Kernel(kind, dense_src, shape, dense_fn, *guards),
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
    return Kernel(name, source, shape, func, *_guards(problem, space))


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


def compile_problem(problem: Problem, flavor: str = "numpy") -> ProblemKernels:
    """Compile (once per problem and flavour, cached) the kernels of :class:`ProblemKernels`.

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
