"""Python source of batched NumPy kernels, printed from straight-line programs.

A kernel's source unpacks its vector arguments from the last axis, broadcasts constants to the
batch shape and writes a float64 array of shape ``batch + shape``. The batch is flattened and
evaluated in blocks of :data:`BLOCK` points, so the temporaries of a block stay in cache and the
output is written a block at a time (on 10**6 points of a 12-link chain, 3-4x faster than
evaluating the whole batch at once). A program is ``(temporaries, outputs)`` as
:func:`sympy.cse` gives them, or as derivatives on the expression graph give them
(:mod:`scaleinv.symbolic.autodiff`); :func:`program_source` is the one printing step, and
:mod:`scaleinv.numeric.kernels` compiles what it prints. JAX and PyTorch flavours print the same
program in a functional frame (:mod:`scaleinv.numeric.flavors`).
"""

from __future__ import annotations

import builtins
import keyword
import textwrap
from collections.abc import Mapping, Sequence
from typing import Any, ClassVar

import numpy as np
import sympy as sp
from sympy.core.function import AppliedUndef
from sympy.printing.codeprinter import PrintMethodNotImplementedError
from sympy.printing.numpy import NumPyPrinter

from scaleinv.errors import ProblemError
from scaleinv.numeric import pysource
from scaleinv.numeric.flavors import MinMax, functional_source, printer_of
from scaleinv.numeric.pysource import SUM_GROUP, balanced

__all__ = ["BLOCK", "MAX_PRODUCT_POWER", "RESERVED", "kernel_source", "program_source"]
__all__ += ["param_keywords", "renaming_printer"]

#: Points per block of a kernel's batch loop (a block's temporaries then fit in L2/L3 cache).
BLOCK = 4096
#: Integer powers up to this exponent are printed as products (``x*x*x``).
MAX_PRODUCT_POWER = 8
#: Integers and ratios beyond this magnitude are printed as floats: NumPy's functions take
#: no Python int beyond int64 (``numpy.sin(10**300)`` is a TypeError).
_EXACT_INT = 2**53
#: Names a problem's symbols may not take in generated code, besides Python's keywords and
#: builtins: what kernels use (``numpy``, ``out``, ``batch``) and the positional arguments of
#: kernels and steps (``x``, ``y``).
RESERVED = frozenset({*keyword.kwlist, *vars(builtins), "numpy", "out", "batch", "x", "y"})


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


class _Printer(MinMax, NumPyPrinter):
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

    #: Names printed for symbols (and subexpressions) instead of their own
    #: (:func:`renaming_printer`).
    names: Mapping[sp.Basic, str] = {}

    def _print_Symbol(self, expr: Any) -> str:
        return self.names.get(expr) or str(super()._print_Symbol(expr))

    def doprint(self, expr: Any, assign_to: Any = None) -> str:
        if assign_to is None:
            return self._fast(expr)
        return super().doprint(expr, assign_to)

    # Sums and products inside what NumPyPrinter prints (|a + b + ...|, Max, Piecewise, sign)
    # come back to the fast path, so they are balanced there too.
    def _print_Add(self, expr: Any, order: Any = None) -> str:
        return self._fast(expr)

    def _print_Mul(self, expr: Any) -> str:
        return self._fast(expr)

    def _fast(self, expr: Any) -> str:
        if expr.is_Symbol:
            return self.names.get(expr) or expr.name
        if self.names and (name := self.names.get(expr)) is not None:  # computed already
            return name
        if expr.is_Rational and max(abs(expr.p), expr.q) >= _EXACT_INT:
            return _float_literal(float(expr))
        if expr.is_Integer:
            return str(int(expr)) if expr >= 0 else f"({int(expr)})"
        if expr.is_Rational:
            return f"({expr.p}/{expr.q})"
        if expr.is_Float:
            return _float_literal(float(expr))
        if expr.is_Add:  # terms with a negative coefficient are subtracted: a - b, not a + (-1)*b
            plus, minus = [], []
            for a in expr.args:
                coeff, rest = a.as_coeff_Mul()
                if float(coeff) < 0:  # not coeff.is_negative: a SymPy assumption query each
                    term = self._fast(rest) if coeff == -1 else self._fast(-coeff * rest)
                    minus.append(term)
                else:
                    plus.append(self._fast(a))
            if len(plus) + len(minus) > SUM_GROUP:  # a - b - c = a - (b + c), both balanced
                head = balanced(plus, " + ") if plus else "0"
                return f"({head} - ({balanced(minus, ' + ')}))" if minus else f"({head})"
            head = " + ".join(plus) if plus else f"-{minus.pop(0)}"
            return "(" + " - ".join([head, *minus]) + ")"
        if expr.is_Mul:
            return balanced([self._fast(a) for a in expr.args], "*")
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
        if isinstance(expr, sp.Function) and expr.args and all(a.is_Number for a in expr.args):
            try:  # a function of numbers: its value, rounded once (sin(10**300) needs SymPy)
                return _float_literal(float(expr))
            except (TypeError, ValueError):  # not real (asin(2)): NumPy's answer, NaN
                pass
        name = self._FUNCTIONS.get(type(expr))
        if name is not None:
            return f"{self._module_format(f'{self._module}.{name}')}({self._fast(expr.args[0])})"
        return f"({super().doprint(expr)})"


def _float_literal(value: float) -> str:
    """A Python literal of ``value`` (``1e999`` is how Python spells infinity)."""
    if value != value or abs(value) == float("inf"):
        return "(1e999)" if value > 0 else "(-1e999)" if value < 0 else "(1e999 - 1e999)"
    return f"({value!r})"


def _printer() -> NumPyPrinter:
    # order="none": print sums and products in their stored order; sorting the terms for
    # display was 2/3 of the printing time of a 256-point stencil's kernels.
    settings = {"fully_qualified_modules": True, "allow_unknown_functions": False}
    return _Printer({**settings, "order": "none"})


def renaming_printer(names: Mapping[sp.Basic, str]) -> NumPyPrinter:
    """The kernels' printer, printing the symbols and subexpressions of ``names`` by those
    names (renaming with ``xreplace`` would rebuild the expressions, and SymPy's evaluation
    could then change their arithmetic: ``4*t + 2*(t - 3)`` becomes ``6*t - 6``)."""
    printer = _printer()
    printer.names = dict(names)
    return printer


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
    Hessian: at most 70 live arrays of 32 KB, not 397). ``reads``: each temporary's and then
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
