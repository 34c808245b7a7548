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
from collections.abc import Mapping
from fractions import Fraction

import sympy as sp

from scaleinv.errors import ParseError

__all__ = ["FUNCTIONS", "CONSTANTS", "parse_expr", "make_symbol", "check_name"]

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
}

#: Named constants an expression may use.
CONSTANTS: Mapping[str, sp.Expr] = {"pi": sp.pi, "E": sp.E}

_MAX_LENGTH = 10_000
_BINARY = {
    ast.Add: lambda a, b: a + b,
    ast.Sub: lambda a, b: a - b,
    ast.Mult: lambda a, b: a * b,
    ast.Div: lambda a, b: a / b,
    ast.Pow: lambda a, b: a**b,
}


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


def _exact_number(value: float) -> sp.Expr:
    """A float as an exact rational when it is a short fraction (0.3 -> 3/10), else a Float.

    (``nsimplify`` would also try to recognise constants, at ~0.1 s per number: a spec with
    256 target values spent a minute there.)
    """
    frac = Fraction(value).limit_denominator(10**6)
    if float(frac) == value:
        return sp.Rational(frac.numerator, frac.denominator)
    return sp.Float(value)


def parse_expr(text: str, symbols: Mapping[str, sp.Symbol]) -> sp.Expr:
    """Parse ``text`` into a SymPy expression over ``symbols``.

    Parameters
    ----------
    text : str
        The expression, e.g. ``"alpha*x1**2 + sin(x0)"``. ``^`` means power.
    symbols : mapping of str to Symbol
        The only names the expression may use besides :data:`FUNCTIONS` and
        :data:`CONSTANTS`.

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
        return _exact_number(text) if isinstance(text, float) else sp.Integer(text)
    if not isinstance(text, str):
        raise ParseError(repr(text), repr(text), "expected an expression string")
    if len(text) > _MAX_LENGTH:
        raise ParseError(text[:40] + "...", text[:40], f"longer than {_MAX_LENGTH} characters")
    try:
        # '^' means power, as in papers; replaced before parsing so it keeps power's precedence.
        tree = ast.parse(text.strip().replace("^", "**"), mode="eval")
    except SyntaxError as err:
        raise ParseError(text, text, f"syntax error ({err.msg})") from None
    return _Builder(text, symbols).build(tree.body)


class _Builder:
    def __init__(self, text: str, symbols: Mapping[str, sp.Symbol]) -> None:
        self.text, self.symbols = text, symbols

    def fail(self, node: ast.AST, reason: str) -> ParseError:
        source = self.text.strip().replace("^", "**")
        segment = ast.get_source_segment(source, node) or type(node).__name__
        return ParseError(self.text, segment, reason)

    def build(self, node: ast.AST) -> sp.Expr:
        if isinstance(node, ast.Constant):
            value = node.value
            if isinstance(value, bool) or not isinstance(value, (int, float)):
                raise self.fail(node, "only numbers are allowed as literals")
            if isinstance(value, int):
                return sp.Integer(value)
            frac = Fraction(repr(value))  # exact decimal, e.g. 0.3 -> 3/10
            return sp.Rational(frac.numerator, frac.denominator)
        if isinstance(node, ast.Name):
            return self.name(node)
        if isinstance(node, ast.UnaryOp) and isinstance(node.op, (ast.USub, ast.UAdd)):
            operand = self.build(node.operand)
            return -operand if isinstance(node.op, ast.USub) else operand
        if isinstance(node, ast.BinOp) and type(node.op) in _BINARY:
            left, right = self.build(node.left), self.build(node.right)
            if isinstance(node.op, ast.Pow) and _too_big_power(left, right):
                raise self.fail(node, "exponent too large")
            return _BINARY[type(node.op)](left, right)
        if isinstance(node, ast.Call):
            return self.call(node)
        kinds = {
            ast.Attribute: "attribute access is not allowed",
            ast.Subscript: "subscripts are not allowed",
            ast.Lambda: "lambdas are not allowed",
        }
        raise self.fail(node, kinds.get(type(node), "this construct is not allowed"))

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
        raise self.fail(node, "unknown name")

    def call(self, node: ast.Call) -> sp.Expr:
        func = node.func
        if isinstance(func, ast.Attribute):
            raise self.fail(func, "attribute access is not allowed")
        if not isinstance(func, ast.Name):
            raise self.fail(func, "only calls of allowed functions by name are allowed")
        if func.id not in FUNCTIONS:
            raise self.fail(func, "call of an unknown function")
        if node.keywords or len(node.args) != 1 or isinstance(node.args[0], ast.Starred):
            raise self.fail(node, f"{func.id} takes exactly one positional argument")
        return FUNCTIONS[func.id](self.build(node.args[0]))


def _too_big_power(base: sp.Expr, exponent: sp.Expr) -> bool:
    # Guards against '9**9**9'-style inputs that would hang SymPy's exact arithmetic.
    if not exponent.is_number:
        return False
    if abs(exponent) > 1000:
        return True
    if base.is_number and base.is_real and abs(base) > 1:
        return bool(abs(exponent) * sp.log(abs(base), 10) > 1000)
    return False
