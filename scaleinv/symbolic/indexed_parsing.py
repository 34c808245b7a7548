"""Parse an indexed problem from untrusted strings, with the allow-list parser of every
expression (:func:`scaleinv.symbolic.parsing.parse_expr`: nothing is evaluated).

The syntax reads like the mathematics::

    inputs   "u[0:n]"  or  ["u[0:n, 0:n]", "v[0:n, 0:n]"]   fields on one grid, from 0
    outputs  "u[i] + dt*(u[i+1] - 2*u[i] + u[i-1])"         one point formula per output field
    boundary "periodic" | "neumann" | "dirichlet" | {kind = "dirichlet", value = 0}
             (value: one number, or one per field: {u = 1, v = 0})
    params   scalars (numbers or number expressions); a param read as ``a[i]`` is per point:
             a number, a formula of the index (``"1 + 0.5*sin(2*pi*i/n)"``) or a list
    target   per output field: a number or a formula of the index (default 0)
    target_from  per input field: ``x*``; the target is then ``P(x*)``

An index must be its axis's symbol plus an integer offset (``i``, ``i+1``, ``j-2``); anything
else (``u[2*i]``, ``u[i+0.5]``, ``u[j]`` on axis 0, a wrong number of indices, an unknown
field) is a one-line :class:`~scaleinv.errors.ParseError` quoting the index expression.
"""

from __future__ import annotations

import ast
from collections.abc import Mapping, Sequence
from typing import TYPE_CHECKING, Any, NamedTuple

import numpy as np
import sympy as sp

from scaleinv.errors import ParseError, ProblemError
from scaleinv.symbolic.indexed_grid import (
    BOUNDARY_KINDS,
    INDEX_NAMES,
    Access,
    Boundary,
    grid_values,
    index_symbols,
)
from scaleinv.symbolic.parsing import check_name, make_symbol, parse_expr
from scaleinv.symbolic.problem import check_user_names

if TYPE_CHECKING:
    from scaleinv.symbolic.indexed import IndexedProblem

__all__ = ["IndexedParts", "parse_indexed_parts", "parse_grid", "is_indexed", "indexed_starts"]


class IndexedParts(NamedTuple):
    """The parsed pieces of an indexed problem: the arguments of
    :class:`~scaleinv.symbolic.indexed.IndexedProblem` (which builds and checks the problem
    from them in :meth:`~scaleinv.symbolic.indexed.IndexedProblem.from_strings`)."""

    fields: tuple[str, ...]
    shape: tuple[int, ...]
    sizes: tuple[str | None, ...]
    outputs: tuple[sp.Expr, ...]
    accesses: Mapping[sp.Symbol, Access]
    boundary: Boundary
    params: Mapping[sp.Symbol, float]
    point_params: Mapping[str, np.ndarray]
    target: tuple[sp.Expr, ...] | None
    target_from: tuple[sp.Expr, ...] | None


def is_indexed(inputs: Any) -> bool:
    """Is ``inputs`` written over an index (``"u[0:n]"``, or a list of such), not as names?"""
    items = [inputs] if isinstance(inputs, str) else inputs
    return (
        isinstance(items, (list, tuple))
        and bool(items)
        and all(isinstance(s, str) and "[" in s and ":" in s for s in items)
    )


def parse_grid(
    text: str, params: Mapping[str, Any]
) -> tuple[str, tuple[int, ...], tuple[str | None, ...]]:
    """``"u[0:n, 0:m]"`` → ``("u", (n, m), ("n", "m"))`` with the sizes' values from params."""
    if not isinstance(text, str):
        raise ParseError(repr(text), repr(text), "expected a field such as 'u[0:n]'")
    try:
        node = ast.parse(text.strip(), mode="eval").body
    except SyntaxError as err:
        raise ParseError(text, text, f"syntax error ({err.msg})") from None
    if not (isinstance(node, ast.Subscript) and isinstance(node.value, ast.Name)):
        raise ParseError(text, text, "a field is written name[0:size], e.g. u[0:n]")
    name = check_name(node.value.id, text=text)
    parts = node.slice.elts if isinstance(node.slice, ast.Tuple) else [node.slice]
    shape, sizes = [], []
    for part in parts:
        segment = ast.get_source_segment(text.strip(), part) or text
        if not isinstance(part, ast.Slice) or part.step is not None or part.upper is None:
            raise ParseError(text, segment, "each axis is a range 0:size")
        lower = part.lower
        if lower is not None and not (isinstance(lower, ast.Constant) and lower.value == 0):
            raise ParseError(text, segment, "a grid starts at 0")
        size, label = _size(text, segment, part.upper, params)
        shape.append(size)
        sizes.append(label)
    return name, tuple(shape), tuple(sizes)


def _size(
    text: str, segment: str, node: ast.AST, params: Mapping[str, Any]
) -> tuple[int, str | None]:
    if isinstance(node, ast.Constant) and isinstance(node.value, int) and node.value > 0:
        return node.value, None
    if isinstance(node, ast.Name) and node.id in params:
        value = params[node.id]
        if isinstance(value, int) and not isinstance(value, bool) and value > 0:
            return value, node.id
        if isinstance(value, float) and value.is_integer() and value > 0:
            return int(value), node.id
        raise ParseError(text, segment, f"the size {node.id} must be a positive integer param")
    raise ParseError(text, segment, "a size is a positive integer or an integer param")


def parse_indexed_parts(
    inputs: str | Sequence[str],
    outputs: str | Sequence[str],
    boundary: Any = "periodic",
    params: Mapping[str, Any] | None = None,
    target: Any = None,
    target_from: Any = None,
) -> IndexedParts:
    """Parse the pieces of an indexed problem from untrusted strings (see the module
    docstring); :meth:`IndexedProblem.from_strings` builds the problem from them.

    Examples
    --------
    >>> parts = parse_indexed_parts("u[0:n]", "u[i]**2 + u[i+1]", params={"n": 4})
    >>> parts.outputs
    (u[i+1] + u[i]**2,)
    >>> parse_indexed_parts("u[0:n]", "u[2*i]", params={"n": 4})
    Traceback (most recent call last):
    ...
    scaleinv.errors.ParseError: cannot parse 'u[2*i]': an index is i plus an integer offset ...
    """
    params = dict(params or {})
    grids = [parse_grid(text, params) for text in _listed(inputs, "inputs")]
    fields = tuple(name for name, _, _ in grids)
    shape, sizes = grids[0][1], grids[0][2]
    for name, other, _ in grids[1:]:
        if other != shape:
            raise ProblemError(f"every field is on one grid: {name} has {other}, not {shape}")
    if len(set(fields)) != len(fields):
        raise ProblemError(f"fields repeat: {list(fields)}")
    index = index_symbols(len(shape))
    texts = _listed(outputs, "outputs")
    subscripted = _subscripted_names(texts)
    point_names = sorted(subscripted & set(params))
    scalars = {k: v for k, v in params.items() if k not in point_names}
    for name in [*fields, *params]:
        check_name(str(name))
        if name in INDEX_NAMES[: len(shape)]:
            raise ProblemError(f"{name!r} names an index of the grid; rename the field or param")
    clash = set(fields) & set(params)
    if clash:
        raise ProblemError(f"names {sorted(clash)} name both a field and a param")
    check_user_names([*fields, *params], 0)
    symbols = _scalar_params(scalars)
    by_name = {str(s): s for s in symbols}
    formula_names = {**by_name, **{str(s): s for s in index}}
    accesses: dict[sp.Symbol, Access] = {}
    subscript = _Subscripts(fields, set(point_names), index, accesses)
    formulas = tuple(parse_expr(t, formula_names, subscript=subscript) for t in texts)
    if not any(not a.param for a in accesses.values()):
        raise ProblemError(
            f"no output reads an input field ({', '.join(fields)}): P is constant, there is "
            f"nothing to optimize; write the update with {fields[0]}[{', '.join(map(str, index))}]"
        )
    points = {
        name: _point_values(name, params[name], shape, formula_names, symbols)
        for name in point_names
    }
    targets = _formulas(target, formula_names, "target")
    states = _formulas(target_from, formula_names, "target_from")
    return IndexedParts(
        fields,
        shape,
        sizes,
        formulas,
        accesses,
        _boundary(boundary, fields),
        symbols,
        points,
        targets,
        states,
    )


def _listed(value: Any, what: str) -> list[str]:
    items = [value] if isinstance(value, (str, int, float)) else value
    if not isinstance(items, (list, tuple)) or not items:
        raise ProblemError(f"{what} must be a string or a non-empty list of strings")
    return [str(v) if isinstance(v, (int, float)) and not isinstance(v, bool) else v for v in items]


def _subscripted_names(texts: Sequence[str]) -> set[str]:
    """Names read as ``name[...]`` in the formulas (a syntax error is reported by the parser)."""
    found: set[str] = set()
    for text in texts:
        try:
            tree = ast.parse(str(text).strip().replace("^", "**"), mode="eval")
        except (SyntaxError, ValueError, RecursionError, MemoryError):
            continue
        for node in ast.walk(tree):
            if isinstance(node, ast.Subscript) and isinstance(node.value, ast.Name):
                found.add(node.value.id)
    return found


def _scalar_params(values: Mapping[str, Any]) -> dict[sp.Symbol, float]:
    from scaleinv.symbolic.problem import _param_value

    symbols = {}
    for name, value in values.items():
        if isinstance(value, (list, tuple)):
            raise ProblemError(f"param {name!r} has a list of values: read it per point, {name}[i]")
        number = _param_value(name, value)
        symbols[make_symbol(name, positive=number > 0)] = number
    return symbols


class _Subscripts:
    """The parser's hook for ``u[i+1]``: checks the indices, returns the access's symbol."""

    def __init__(
        self,
        fields: Sequence[str],
        point_names: set[str],
        index: Sequence[sp.Symbol],
        accesses: dict[sp.Symbol, Access],
    ) -> None:
        self.fields, self.point_names, self.index = fields, point_names, tuple(index)
        self.accesses = accesses

    def __call__(self, builder: Any, node: ast.Subscript) -> sp.Expr:
        value = node.value
        if not isinstance(value, ast.Name) or value.id not in (*self.fields, *self.point_names):
            known = ", ".join([*self.fields, *sorted(self.point_names)])
            raise builder.fail(node, f"unknown field (fields and per-point params: {known})")
        parts = node.slice.elts if isinstance(node.slice, ast.Tuple) else [node.slice]
        if len(parts) != len(self.index):
            names = ", ".join(map(str, self.index))
            raise builder.fail(node, f"{value.id} takes {len(self.index)} indices ({names})")
        offset = []
        for axis, part in enumerate(parts):
            if isinstance(part, ast.Slice):
                raise builder.fail(node, "a formula reads one point, not a range")
            shift = sp.expand(builder.build(part) - self.index[axis])
            if not shift.is_Integer:
                raise builder.fail(
                    node,
                    f"an index is {self.index[axis]} plus an integer offset "
                    f"({self.index[axis]}, {self.index[axis]}+1, {self.index[axis]}-2)",
                )
            offset.append(int(shift))
        param = value.id in self.point_names
        if param and any(offset):
            raise builder.fail(
                node,
                f"a per-point param is read at the point itself: {value.id}"
                f"[{', '.join(map(str, self.index))}]",
            )
        access = Access(value.id, tuple(offset), param)
        for symbol, seen in self.accesses.items():
            if seen == access:
                return symbol
        symbol = sp.Symbol(access.text(self.index), real=True)
        self.accesses[symbol] = access
        return symbol


def _point_values(
    name: str,
    value: Any,
    shape: tuple[int, ...],
    names: Mapping[str, sp.Symbol],
    scalars: Mapping[sp.Symbol, float],
) -> np.ndarray:
    if isinstance(value, (list, tuple)):
        array = np.array(value, dtype=object)
        if array.shape != shape:
            raise ProblemError(f"per-point param {name!r} needs {shape} values, got {array.shape}")
        return np.vectorize(lambda v: float(parse_expr(v, {})), otypes=[float])(array)
    values = grid_values(parse_expr(value, names), shape, scalars)
    if not np.isfinite(values).all():
        raise ProblemError(f"per-point param {name!r} ({value}) is not finite on the whole grid")
    return values


def _formulas(value: Any, names: Mapping[str, sp.Symbol], what: str) -> tuple[sp.Expr, ...] | None:
    if value is None:
        return None
    return tuple(parse_expr(v, names) for v in _listed(value, what))


def _boundary(value: Any, fields: Sequence[str]) -> Boundary:
    if isinstance(value, str):
        return Boundary(value)
    if not isinstance(value, Mapping):
        raise ProblemError(f"boundary must be one of {BOUNDARY_KINDS} or a table, got {value!r}")
    unknown = set(value) - {"kind", "value"}
    if unknown:
        raise ProblemError(f"boundary has unknown keys {sorted(unknown)}; known: kind, value")
    kind = value.get("kind", "periodic")
    given = value.get("value", 0)
    if "value" in value and kind != "dirichlet":
        raise ProblemError(f"a {kind} boundary takes no value (only dirichlet does)")
    if isinstance(given, Mapping):
        return Boundary(kind, {str(f): _ghost(v) for f, v in given.items()})
    return Boundary(kind, {f: _ghost(given) for f in fields})


def _ghost(value: Any) -> float:
    number = float(parse_expr(value, {})) if isinstance(value, str) else value
    if isinstance(number, bool) or not isinstance(number, (int, float)) or not np.isfinite(number):
        raise ProblemError(f"a dirichlet value must be a finite number, got {value!r}")
    return float(number)


def indexed_starts(problem: IndexedProblem, value: Any, source: str) -> tuple[np.ndarray, ...]:
    """The ``[run] starts`` of an indexed problem as read-only flat arrays (length ``n``).

    ``starts`` is one start or a list of them; a start is a number or a formula of the index
    (every field), a list with one such entry per field, or the ``n`` flat values (a list of
    ``n`` numbers is one flat start).
    """
    from scaleinv.errors import SpecError

    def one(start: Any, where: str) -> np.ndarray:
        try:
            if (
                isinstance(start, list)
                and len(start) == problem.n
                and len(start) != len(problem.fields)
            ):
                flat = np.array([_number(v) for v in start], dtype=np.float64)
            else:
                entries = start if isinstance(start, list) else [start] * len(problem.fields)
                if len(entries) != len(problem.fields):
                    raise ProblemError(
                        f"a start is a number or formula, one per field ({len(problem.fields)}), "
                        f"or {problem.n} values; got {len(entries)} entries"
                    )
                names = {str(s): s for s in (*problem.index, *problem.params)}
                flat = np.concatenate(
                    [problem.grid_values(parse_expr(e, names)).ravel() for e in entries]
                )
        except (ProblemError, ParseError, TypeError, ValueError) as err:
            raise SpecError(source, where, str(err)) from None
        if not np.isfinite(flat).all():
            raise SpecError(source, where, "has values that are not finite")
        flat.setflags(write=False)
        return flat

    flat = isinstance(value, list) and len(value) == problem.n
    many = isinstance(value, list) and not (
        flat and all(isinstance(v, (int, float)) for v in value)
    )
    starts = value if many else [value]
    if not starts:
        raise SpecError(source, "run.starts", "must not be empty")
    return tuple(one(s, f"run.starts[{k}]") for k, s in enumerate(starts))


def _number(value: Any) -> float:
    if isinstance(value, bool) or not isinstance(value, (int, float, str)):
        raise ProblemError(f"expected a number, got {value!r}")
    return float(parse_expr(value, {})) if isinstance(value, str) else float(value)
