"""Turn untrusted expression strings into SymPy expressions, without ever evaluating Python.

The string is parsed with :mod:`ast` and the tree is walked against an allow-list: numbers,
known symbols, ``+ - * / ** ^`` and calls of a named set of functions. Anything else —
attribute access, subscripts, lambdas, dunder names, calls of unknown names — raises a
:class:`~scaleinv.errors.ParseError` that quotes the offending text. SymPy objects are built
node by node; no ``eval``, ``exec`` or ``sympify`` of the raw string happens anywhere.
"""

from __future__ import annotations

import ast
import keyword
import math
import re
from collections.abc import Callable, Mapping
from fractions import Fraction

import sympy as sp

from scaleinv.errors import ParseError, did_you_mean

__all__ = ["FUNCTIONS", "VARIADIC", "CONSTANTS", "parse_expr", "make_symbol", "check_name"]
__all__ += ["MAX_LENGTH", "MAX_DEPTH", "MAX_NODES", "MAX_EXPONENT", "MAX_DIGITS", "MAX_CONSTANT"]

#: Functions an expression may call, by the name it uses.
FUNCTIONS: Mapping[str, sp.FunctionClass | type] = {
    "sin": sp.sin,
    "cos": sp.cos,
    "tan": sp.tan,
    "asin": sp.asin,
    "acos": sp.acos,
    "atan": sp.atan,
    "sinh": sp.sinh,
    "cosh": sp.cosh,
    "tanh": sp.tanh,
    "exp": sp.exp,
    "log": sp.log,
    "sqrt": sp.sqrt,
    "Abs": sp.Abs,
    "abs": sp.Abs,
    "Max": sp.Max,
    "max": sp.Max,
    "Min": sp.Min,
    "min": sp.Min,
}
#: The :data:`FUNCTIONS` that take two or more arguments (the others take one).
VARIADIC = frozenset({"Max", "max", "Min", "min"})

#: Named constants an expression may use.
CONSTANTS: Mapping[str, sp.Expr] = {"pi": sp.pi, "E": sp.E}

#: Limits on the text and on the parsed tree (chains of ``+ -`` or ``* /`` count as one level).
MAX_LENGTH = 10_000
MAX_DEPTH = 100
MAX_NODES = 5_000
#: Largest power of a symbol (in total, after SymPy combines powers) and of a number.
MAX_EXPONENT = 1_000
MAX_DIGITS = 1_000
#: Largest magnitude of a constant subexpression (a float64 must hold it).
MAX_CONSTANT = 1e300

_SUM, _PRODUCT = (ast.Add, ast.Sub), (ast.Mult, ast.Div)
_MAX_BITS = int(MAX_DIGITS * 3.33)


def check_name(name: str, *, text: str | None = None) -> str:
    """Return ``name`` if it can name a symbol, else raise :class:`ParseError`.

    A symbol name is a Python identifier that is not a keyword, not a dunder, does not start
    with an underscore and does not shadow an allowed function or constant.
    """
    where = text if text is not None else name
    if not isinstance(name, str) or not name.isidentifier() or not name.isascii():
        raise ParseError(where, str(name), "not a valid symbol name")
    if name.startswith("_"):
        raise ParseError(where, name, "names starting with '_' are not allowed")
    if keyword.iskeyword(name) or name in FUNCTIONS or name in CONSTANTS or name == "np":
        raise ParseError(where, name, "reserved name")
    return name


def make_symbol(name: str, *, positive: bool = False) -> sp.Symbol:
    """A real (optionally positive) SymPy symbol with a checked name."""
    check_name(name)
    if positive:
        return sp.Symbol(name, positive=True)
    return sp.Symbol(name, real=True)


#: ``subscript(builder, node)`` turns an ``ast.Subscript`` into a symbol (indexed problems).
Subscript = Callable[["_Builder", ast.Subscript], sp.Expr]


def parse_expr(
    text: str, symbols: Mapping[str, sp.Symbol], *, subscript: Subscript | None = None
) -> sp.Expr:
    """Parse ``text`` into a SymPy expression over ``symbols``.

    Parameters
    ----------
    text : str
        The expression, e.g. ``"alpha*x1**2 + sin(x0)"``. ``^`` means power.
    symbols : mapping of str to Symbol
        The only names the expression may use besides :data:`FUNCTIONS` and
        :data:`CONSTANTS`.
    subscript : callable, optional
        ``subscript(builder, node)`` for ``name[...]`` (otherwise not allowed): the indexed
        problems' ``u[i+1]`` (:mod:`scaleinv.symbolic.indexed_parsing`). It builds the index
        expressions with ``builder.build`` and raises ``builder.fail(node, reason)``.

    Raises
    ------
    ParseError
        Naming the part of ``text`` that is not allowed.

    Examples
    --------
    >>> import sympy as sp
    >>> x = sp.Symbol("x", real=True)
    >>> parse_expr("2*x^2 + sin(x)", {"x": x})
    2*x**2 + sin(x)
    """
    if isinstance(text, (int, float)) and not isinstance(text, bool):
        text = repr(text)  # a TOML number: parsed (and checked) like the same text
    if not isinstance(text, str):
        raise ParseError(repr(text), repr(text), "expected an expression string")
    if len(text) > MAX_LENGTH:
        raise ParseError(text[:40] + "...", text[:40], f"longer than {MAX_LENGTH} characters")
    digits = re.search(rf"\d{{{MAX_DIGITS + 1},}}", text)
    if digits:
        raise ParseError(text[:40], digits[0][:20], f"a number of more than {MAX_DIGITS} digits")
    foreign = next((c for c in text if not c.isascii()), None)
    if foreign is not None:
        # Python folds e.g. a fullwidth 'ｘ0' into 'x0' (NFKC); names here are ASCII only.
        raise ParseError(text, foreign, f"non-ASCII character U+{ord(foreign):04X}")
    try:
        # '^' means power, as in papers; replaced before parsing so it keeps power's precedence.
        tree = ast.parse(text.strip().replace("^", "**"), mode="eval")
    except SyntaxError as err:
        raise ParseError(text, text, f"syntax error ({err.msg})") from None
    except (RecursionError, MemoryError, ValueError) as err:
        reason = "nested too deeply" if isinstance(err, RecursionError) else str(err)
        raise ParseError(text[:40], text[:40], f"cannot be parsed: {reason}") from None
    _check_tree(text, tree.body)
    return _Builder(text, symbols, subscript).build(tree.body)


def _check_tree(text: str, root: ast.AST) -> None:
    """Enforce :data:`MAX_NODES` and :data:`MAX_DEPTH` on the parsed tree (iteratively)."""
    count, stack = 0, [(root, 1)]
    while stack:
        node, depth = stack.pop()
        count += 1
        if count > MAX_NODES:
            raise ParseError(text[:40], text[:40], f"more than {MAX_NODES} syntax nodes")
        if depth > MAX_DEPTH:
            raise ParseError(text[:40], text[:40], f"nested deeper than {MAX_DEPTH} levels")
        family = _family(node)
        for child in ast.iter_child_nodes(node):
            if isinstance(child, ast.expr):  # operators and load contexts are not levels
                same = family is not None and _family(child) == family
                stack.append((child, depth if same else depth + 1))


def _family(node: ast.AST) -> tuple[type, ...] | None:
    if isinstance(node, ast.BinOp):
        for family in (_SUM, _PRODUCT):
            if isinstance(node.op, family):
                return family
    return None


class _Builder:
    def __init__(
        self, text: str, symbols: Mapping[str, sp.Symbol], subscript: Subscript | None = None
    ) -> None:
        self.text, self.symbols, self.subscript = text, symbols, subscript

    def fail(self, node: ast.AST, reason: str) -> ParseError:
        source = self.text.strip().replace("^", "**")
        segment = ast.get_source_segment(source, node) or type(node).__name__
        return ParseError(self.text, segment, reason)

    def build(self, node: ast.AST) -> sp.Expr:
        """The checked SymPy expression of ``node`` (see :meth:`check`)."""
        return self.check(node, self.construct(node))

    def construct(self, node: ast.AST) -> sp.Expr:
        if isinstance(node, ast.Constant):
            return self.constant(node)
        if isinstance(node, ast.Name):
            return self.name(node)
        if isinstance(node, ast.UnaryOp) and isinstance(node.op, (ast.USub, ast.UAdd)):
            operand = self.build(node.operand)
            return -operand if isinstance(node.op, ast.USub) else operand
        if isinstance(node, ast.BinOp) and isinstance(node.op, _SUM + _PRODUCT):
            return self.chain(node)
        if isinstance(node, ast.BinOp) and isinstance(node.op, ast.Pow):
            left, right = self.build(node.left), self.build(node.right)
            if _too_big_power(left, right):
                raise self.fail(node, "exponent too large")
            return left**right
        if isinstance(node, ast.Call):
            return self.call(node)
        if isinstance(node, ast.Subscript) and self.subscript is not None:
            return self.subscript(self, node)
        kinds = {
            ast.Attribute: "attribute access is not allowed",
            ast.Subscript: "subscripts are not allowed",
            ast.Lambda: "lambdas are not allowed",
        }
        raise self.fail(node, kinds.get(type(node), "this construct is not allowed"))

    def constant(self, node: ast.Constant) -> sp.Expr:
        value = node.value
        if isinstance(value, complex):
            raise self.fail(node, "complex numbers are not allowed")
        if isinstance(value, bool) or not isinstance(value, (int, float)):
            raise self.fail(node, "only numbers are allowed as literals")
        if isinstance(value, int):
            return sp.Integer(value)
        if not math.isfinite(value):
            raise self.fail(node, "number too large for a float")
        frac = Fraction(repr(value))  # exact decimal, e.g. 0.3 -> 3/10
        return sp.Rational(frac.numerator, frac.denominator)

    def chain(self, node: ast.BinOp) -> sp.Expr:
        """A chain ``a + b - c ...`` or ``a * b / c ...`` built as one n-ary node, iteratively
        (a 3000-term sum is one level, not 3000)."""
        family = _family(node)
        rest: list[tuple[ast.operator, ast.AST]] = []
        left: ast.AST = node
        while isinstance(left, ast.BinOp) and _family(left) == family:
            rest.append((left.op, left.right))
            left = left.left
        items = [self.build(left)]
        for op, operand in reversed(rest):
            value = self.build(operand)
            if isinstance(op, ast.Sub):
                value = -value
            elif isinstance(op, ast.Div):
                value = sp.Pow(value, -1)
            items.append(value)
        return sp.Add(*items) if family == _SUM else sp.Mul(*items)

    def check(self, node: ast.AST, expr: sp.Expr) -> sp.Expr:
        """Reject a value that is not finite, complex for every real input, or too large."""
        if expr.has(sp.zoo, sp.nan, sp.oo, -sp.oo):
            raise self.fail(node, "not a finite value (a division by zero or log(0)?)")
        for part in (expr, *expr.args):
            if isinstance(part, sp.Rational) and max(part.p.bit_length(), part.q.bit_length()) > (
                _MAX_BITS
            ):
                raise self.fail(node, f"a number of more than {MAX_DIGITS} digits")
            if isinstance(part, sp.Pow) and part.exp.is_number and abs(part.exp) > MAX_EXPONENT:
                raise self.fail(node, f"exponent too large (over {MAX_EXPONENT} in total)")
        if isinstance(expr, sp.Rational):
            if abs(expr) > MAX_CONSTANT:
                raise self.fail(node, "a number too large for a float")
            return expr
        if not isinstance(node, (ast.BinOp, ast.Call)):
            return expr
        if expr.is_number:
            self.check_constant(node, expr)
            return expr
        if expr.is_extended_real is False:
            raise self.fail(node, "complex for every real input (only real expressions)")
        if expr.has(sp.I):  # sqrt(-x**2) is I*Abs(x): real only where it is 0
            raise self.fail(node, "imaginary except at isolated points (only real expressions)")
        if isinstance(expr, (sp.Add, sp.Mul)):  # exp(600)*exp(600)*x0 is exp(1200)*x0
            constant = expr.as_independent(*expr.free_symbols, as_Add=isinstance(expr, sp.Add))[0]
            if not constant.is_Rational:
                self.check_constant(node, constant)
        return expr

    def check_constant(self, node: ast.AST, constant: sp.Expr) -> None:
        """Reject a constant that is complex or does not fit a float."""
        try:
            value = complex(sp.N(constant, 15))
        except (OverflowError, TypeError, ValueError):
            raise self.fail(node, "a constant too large for a float") from None
        if not abs(value.real) <= MAX_CONSTANT:
            raise self.fail(node, "a constant too large for a float")
        if value.imag != 0:
            raise self.fail(node, "a complex value (only real expressions are allowed)")

    def name(self, node: ast.Name) -> sp.Expr:
        ident = node.id
        if ident.startswith("__") or ident.startswith("_"):
            raise self.fail(node, "dunder and private names are not allowed")
        if ident in self.symbols:
            return self.symbols[ident]
        if ident in CONSTANTS:
            return CONSTANTS[ident]
        if ident in FUNCTIONS:
            raise self.fail(node, "function used without a call")
        raise self.fail(node, f"unknown name{did_you_mean(ident, [*self.symbols, *CONSTANTS])}")

    def call(self, node: ast.Call) -> sp.Expr:
        func = node.func
        if isinstance(func, ast.Attribute):
            raise self.fail(func, "attribute access is not allowed")
        if not isinstance(func, ast.Name):
            raise self.fail(func, "only calls of allowed functions by name are allowed")
        if func.id not in FUNCTIONS:
            raise self.fail(func, f"call of an unknown function{did_you_mean(func.id, FUNCTIONS)}")
        starred = any(isinstance(a, ast.Starred) for a in node.args)
        if func.id in VARIADIC:
            if node.keywords or len(node.args) < 2 or starred:
                raise self.fail(node, f"{func.id} takes two or more positional arguments")
        elif node.keywords or len(node.args) != 1 or starred:
            raise self.fail(node, f"{func.id} takes exactly one positional argument")
        return FUNCTIONS[func.id](*(self.build(a) for a in node.args))


def _too_big_power(base: sp.Expr, exponent: sp.Expr) -> bool:
    # Guards against '9**9**9'-style inputs that would hang SymPy's exact arithmetic.
    if not exponent.is_number:
        return False
    if abs(exponent) > MAX_EXPONENT:
        return True
    if base.is_number and base.is_real and abs(base) > 1:
        return bool(abs(exponent) * sp.log(abs(base), 10) > MAX_DIGITS)
    return False
