"""Kernel flavours: the same kernels and steps written for NumPy, JAX or PyTorch.

One kernel generator (:func:`scaleinv.numeric.kernels.kernel_source`), one printer per flavour:
SymPy's NumPy, JAX and PyTorch printers turn the same common-subexpression lines into source.
NumPy kernels loop over cache-sized blocks and write into ``out``; JAX and PyTorch kernels are
functional (:func:`functional_source`: the entries are stacked), so they trace under ``jit``,
``vmap`` and ``grad`` and keep autograd intact.

The update steps, the runtime helpers and the local-inverse template are written once, against
the NumPy names they call (``numpy.where``, ``numpy.linalg.pinv``, ...). A JAX or PyTorch
module binds ``numpy`` to a small namespace over its framework
(:mod:`scaleinv.numeric.flavors.jax_namespace`, :mod:`scaleinv.numeric.flavors.torch_namespace`)
that gives those names NumPy's meaning, so every flavour runs the same step source. Nothing
here imports JAX or PyTorch until a flavour is asked for.
"""

from __future__ import annotations

import ast
import functools
import importlib
import inspect
from collections.abc import Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import sympy as sp
from sympy.printing.numpy import JaxPrinter, NumPyPrinter

from scaleinv.errors import ScaleinvError
from scaleinv.numeric.pysource import SUM_GROUP, balanced

__all__ = ["FLAVORS", "Flavor", "check_flavor", "functional_source", "namespace_of"]
__all__ += ["MinMax", "printer_of", "prelude_source"]


@dataclass(frozen=True)
class Flavor:
    """A framework kernels can be written for.

    Attributes
    ----------
    name : str
        ``"numpy"``, ``"jax"`` or ``"torch"``.
    extra : str
        The ``scaleinv[...]`` extra that installs the framework ("" for NumPy).
    framework : str
        The module to import.
    namespace_module : str
        The module whose source defines the NumPy-compatible ``numpy`` namespace ("" for NumPy).
    rebind : tuple of (str, str)
        Runtime helpers replaced after the runtime source, e.g. ``("solve", "solve_flagged")``:
        the NumPy version branches on values (a fast path), which ``jit`` cannot trace.
    """

    name: str
    extra: str
    framework: str
    namespace_module: str
    rebind: tuple[tuple[str, str], ...] = ()


#: The export flavours by name (``scaleinv export --flavor``): numpy, jax and torch.
FLAVORS: dict[str, Flavor] = {
    "numpy": Flavor("numpy", "", "numpy", ""),
    "jax": Flavor(
        "jax", "jax", "jax", "scaleinv.numeric.flavors.jax_namespace", (("solve", "solve_flagged"),)
    ),
    "torch": Flavor(
        "torch",
        "torch",
        "torch",
        "scaleinv.numeric.flavors.torch_namespace",
        (("solve", "solve_flagged"),),
    ),
}


def check_flavor(flavor: str) -> Flavor:
    """The :class:`Flavor` named ``flavor``; a :class:`ScaleinvError` naming the known ones."""
    if flavor not in FLAVORS:
        raise ScaleinvError(f"unknown flavor {flavor!r}; known: {', '.join(FLAVORS)}")
    return FLAVORS[flavor]


if TYPE_CHECKING:  # for super(): the SymPy printers the mixin goes into
    from sympy.printing.numpy import NumPyPrinter as _Printer
else:
    _Printer = object


class _Balanced(_Printer):
    """Printer mixin: sums and products of more than ``SUM_GROUP`` terms in balanced groups
    (as the NumPy printer of :mod:`scaleinv.numeric.source`, with
    :func:`scaleinv.numeric.pysource.balanced`; a flat sum of about 3,000 terms
    is a RecursionError in Python's compiler)."""

    def _grouped(self, expr: Any, kind: type, op: str, print_flat: Any) -> str | None:
        args = expr.args
        if len(args) <= SUM_GROUP:
            return None
        chunks = [args[i : i + SUM_GROUP] for i in range(0, len(args), SUM_GROUP)]
        return balanced([f"({print_flat(kind(*c, evaluate=False))})" for c in chunks], op)

    def _print_Add(self, expr: Any, order: Any = None) -> str:
        grouped = self._grouped(expr, sp.Add, " + ", super()._print_Add)
        return grouped if grouped is not None else super()._print_Add(expr, order)

    def _print_Mul(self, expr: Any) -> str:
        grouped = self._grouped(expr, sp.Mul, "*", super()._print_Mul)
        return grouped if grouped is not None else super()._print_Mul(expr)


class MinMax(_Printer):
    """Printer mixin: ``Max`` and ``Min`` as nested ``maximum``/``minimum`` calls of the
    printer's module (SymPy prints ``functools.reduce(numpy.maximum, [...])``, which names a
    module the generated code does not import, and ``torch.max(0, x)``, which fails)."""

    def _print_Max(self, expr: Any) -> str:
        return self._folded(expr, "maximum")

    def _print_Min(self, expr: Any) -> str:
        return self._folded(expr, "minimum")

    def _folded(self, expr: Any, name: str) -> str:
        function = self._module_format(f"{self._module}.{name}")
        args = [self._operand(a) for a in expr.args]
        while len(args) > 1:  # pairwise, so many arguments nest only log2(n) deep
            pairs = [f"{function}({a}, {b})" for a, b in zip(args[::2], args[1::2])]
            args = pairs + args[len(pairs) * 2 :]
        return args[0]

    def _operand(self, expr: Any) -> str:
        """An argument of ``maximum``/``minimum`` as printed."""
        return str(self._print(expr))


class _Exp(_Printer):
    """Printer mixin: ``E**a`` as the module's ``exp(a)`` (derivatives on the expression graph
    keep ``Pow(E, a)`` unevaluated, which SymPy prints as ``e**a``: a general ``pow`` per
    element, far slower than ``exp`` under XLA on the CPU; the JAX engine's GD on
    ``exp(x0)/3 + ...`` ran 1.6x the time of its ``jax.grad`` twin, 1.3x with ``exp``)."""

    def _print_Pow(self, expr: Any, **settings: Any) -> str:
        if expr.base is sp.E:
            return f"{self._module_format(self._module + '.exp')}({self._print(expr.exp)})"
        return str(super()._print_Pow(expr, **settings))


class _NumPyPrinter(_Exp, MinMax, NumPyPrinter):
    """SymPy's NumPy printer with ``exp``, ``Max`` and ``Min`` the generated code can run."""


class _JaxPrinter(_Exp, MinMax, _Balanced, JaxPrinter):
    """SymPy's JAX printer with balanced long sums and products, ``exp``, ``Max`` and ``Min``."""


@functools.cache
def _torch_printer() -> type:
    """SymPy's PyTorch printer, with irrational numbers as float literals.

    ``torch.sqrt(2)`` fails (torch functions take tensors), so a number such as ``sqrt(70)``
    is printed as its float value. Imported here, not at the top: importing
    ``sympy.printing.pytorch`` imports torch.
    """
    from sympy.printing.pytorch import TorchPrinter

    class TorchNumbers(_Exp, MinMax, _Balanced, TorchPrinter):
        def _print(self, expr: Any, **kwargs: Any) -> str:
            if isinstance(expr, sp.Expr) and expr.is_number and not expr.is_Rational:
                value = complex(expr.evalf(17))
                if value.imag == 0:
                    return repr(value.real)
            return super()._print(expr, **kwargs)

        def _operand(self, expr: Any) -> str:  # torch.maximum takes tensors only
            if isinstance(expr, sp.Expr) and expr.is_number:
                return f"torch.as_tensor({float(expr)!r})"
            return super()._operand(expr)

        def _print_Heaviside(self, expr: Any) -> str:
            """``H(x)`` (``H(0) = 1/2``, the derivative of ``Max``) as ``(sign(x) + 1)/2``:
            ``torch.heaviside`` takes its value at 0 as a tensor of ``x``'s dtype."""
            if expr.args[1] != sp.S.Half:
                return str(super()._print_Heaviside(expr))
            return f"((torch.sign({self._print(expr.args[0])}) + 1)/2)"

    return TorchNumbers


def printer_of(flavor: str) -> Any:
    """The SymPy printer that writes the expressions of ``flavor``'s kernels.

    Examples
    --------
    >>> import sympy as sp
    >>> x = sp.Symbol("x")
    >>> for flavor in ("numpy", "jax", "torch"):
    ...     print(printer_of(flavor).doprint(sp.sqrt(2) * sp.sin(x)))
    numpy.sqrt(2)*numpy.sin(x)
    jax.numpy.sqrt(2)*jax.numpy.sin(x)
    1.4142135623730951*torch.sin(x)
    """
    name = check_flavor(flavor).name
    if name == "jax":
        return _JaxPrinter({"allow_unknown_functions": False})
    if name == "torch":
        return _torch_printer()({"allow_unknown_functions": False})
    return _NumPyPrinter({"fully_qualified_modules": True, "allow_unknown_functions": False})


#: A functional kernel of at least this many entries, most of them zero, gathers its nonzero
#: entries instead of stacking every one.
GATHER_MIN = 64


def functional_source(
    name: str,
    signature: str,
    doc: str,
    arg_names: Sequence[str],
    columns: Sequence[tuple[str, str, int]],
    param_names: Sequence[str],
    assign: Sequence[str],
    entries: Sequence[str | None],
    shape: tuple[int, ...],
) -> str:
    """A kernel as one functional expression: the entries broadcast and stacked.

    Parameters
    ----------
    name, signature : str
        The function's name and parameter list.
    doc : str
        The indented docstring line ("" for none).
    arg_names : sequence of str
        Positional array arguments, shape ``(..., k)``.
    columns : sequence of (identifier, argument, index)
        ``identifier = argument[..., index]``.
    param_names : sequence of str
        Keyword parameters; they take the first argument's dtype and broadcast.
    assign : sequence of str
        The common-subexpression lines, printed by the flavour's printer.
    entries : sequence of str or None
        Each output entry (row-major), ``None`` where it is zero.
    shape : tuple of int
        One sample's output shape.
    """
    first = arg_names[0]
    body = [f"{a} = numpy.asarray({a}, dtype=numpy.float64)" for a in arg_names]
    body += [f"{p} = numpy.asarray({p}, dtype={first}.dtype)" for p in param_names]
    body += [f"{ident} = {arg}[..., {i}]" for ident, arg, i in columns]
    # _base carries the batch shape, dtype and device every entry is broadcast to
    base = " + ".join(
        [f"numpy.zeros_like({first}[..., 0])"]
        + [f"numpy.zeros_like({a}[..., 0])" for a in arg_names[1:]]
        + [f"numpy.zeros_like({p})" for p in param_names]
    )
    body.append(f"_base = {base}")
    body += assign
    terms = ["_base" if e is None else f"_base + ({e})" for e in entries]
    if not shape:
        body.append(f"return {terms[0]}")
    elif len(entries) >= GATHER_MIN and 2 * entries.count(None) > len(entries):
        # mostly zeros (a Hessian of many inputs): stack the nonzero entries once and gather;
        # a stack of every entry traced n² terms (a minute under jax.jit at n = 128)
        nonzero = [k for k, e in enumerate(entries) if e is not None]
        stacked = ", ".join(["_base", *(terms[k] for k in nonzero)])
        body.append(f"_values = numpy.stack([{stacked}], axis=-1)")
        body.append(f"_slots = [0] * {len(entries)}  # entry -> its column of _values, 0: zero")
        body.append(f"for _k, _p in enumerate({tuple(nonzero)!r}):")
        body.append("    _slots[_p] = _k + 1")
        body.append("_out = _values[..., numpy.asarray(_slots)]")
        body.append(f"return _out.reshape(tuple(_base.shape) + {shape!r})")
    else:
        body.append(f"_out = numpy.stack([{', '.join(terms)}], axis=-1)")
        body.append(f"return _out.reshape(tuple(_base.shape) + {shape!r})")
    return f"def {name}({signature}):\n{doc}" + "".join(f"    {line}\n" for line in body)


def _import(flavor: Flavor) -> Any:
    try:
        return importlib.import_module(flavor.namespace_module)
    except ImportError as err:
        if err.name is not None and err.name.split(".")[0] == flavor.framework:
            raise ScaleinvError(
                f"the {flavor.name} flavor needs {flavor.framework}: "
                f"pip install 'scaleinv[{flavor.extra}]'"
            ) from None
        raise


def namespace_of(flavor: str) -> dict[str, Any]:
    """The globals generated ``flavor`` code runs in: ``numpy`` (NumPy or its stand-in) and
    the framework module the printer names (``jax``, ``torch``)."""
    spec = check_flavor(flavor)
    if spec.name == "numpy":
        import numpy

        return {"numpy": numpy}
    module = _import(spec)
    return {"numpy": module.numpy, spec.framework: importlib.import_module(spec.framework)}


def prelude_source(flavor: str) -> str:
    """What a generated module of ``flavor`` starts with: its imports and, for JAX and
    PyTorch, the source of the ``numpy`` namespace over the framework."""
    spec = check_flavor(flavor)
    if spec.name == "numpy":
        return "import numpy\n"
    source = inspect.getsource(_import(spec))
    first = ast.parse(source).body[1].lineno  # the statement after the module docstring
    return "\n".join(source.splitlines()[first - 1 :]).strip() + "\n"
