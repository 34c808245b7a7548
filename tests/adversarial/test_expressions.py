"""Hostile and malformed expressions: each is a one-line :class:`ParseError` naming the part at
fault (never a traceback, never a silently wrong expression), and nothing runs."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import sympy as sp

from scaleinv import Problem
from scaleinv.errors import ParseError, ProblemError, ScaleinvError
from scaleinv.symbolic.parsing import MAX_DEPTH, MAX_NODES, parse_expr

X0, X1 = sp.symbols("x0 x1", real=True)
SYMBOLS = {"x0": X0, "x1": X1}

#: (text, reason, offending part) — the reason is the exact clause of the error message.
HOSTILE = [
    ("x0/0", "not a finite value (a division by zero or log(0)?)", "x0/0"),
    ("log(0)", "not a finite value (a division by zero or log(0)?)", "log(0)"),
    ("0/0", "not a finite value (a division by zero or log(0)?)", "0/0"),
    ("x0*(1/0)", "not a finite value (a division by zero or log(0)?)", "1/0"),
    ("1/(x0-x0)", "not a finite value (a division by zero or log(0)?)", "1/(x0-x0)"),
    ("log(x0-x0)", "not a finite value (a division by zero or log(0)?)", "log(x0-x0)"),
    ("(x0-x0)**-1", "not a finite value (a division by zero or log(0)?)", "(x0-x0)**-1"),
    ("0**-1", "not a finite value (a division by zero or log(0)?)", "0**-1"),
    ("1e999", "number too large for a float", "1e999"),
    ("-1e999", "number too large for a float", "1e999"),
    ("1e308*10", "a number too large for a float", "1e308"),
    ("sqrt(-1)", "a complex value (only real expressions are allowed)", "sqrt(-1)"),
    ("log(-1)", "a complex value (only real expressions are allowed)", "log(-1)"),
    ("(-8)**(1/3)", "a complex value (only real expressions are allowed)", "(-8)**(1/3)"),
    ("(-1)**0.5", "a complex value (only real expressions are allowed)", "(-1)**0.5"),
    ("asin(2)", "a complex value (only real expressions are allowed)", "asin(2)"),
    ("acos(-3)", "a complex value (only real expressions are allowed)", "acos(-3)"),
    ("log(-x0**2-1)", "complex for every real input (only real expressions)", "log(-x0**2-1)"),
    ("sqrt(-x0**2-1)", "complex for every real input (only real expressions)", "sqrt(-x0**2-1)"),
    ("sqrt(-exp(x0))", "complex for every real input (only real expressions)", "sqrt(-exp(x0))"),
    ("asin(x0**2+2)", "complex for every real input (only real expressions)", "asin(x0**2+2)"),
    ("sqrt(-x0**2)", "imaginary except at isolated points (only real expressions)", "sqrt(-x0**2)"),
    (
        "x1 + sqrt(-(x0 - 1)**2)",
        "imaginary except at isolated points (only real expressions)",
        "sqrt(-(x0 - 1)**2)",
    ),
    ("1j", "complex numbers are not allowed", "1j"),
    ("x0 + 2j", "complex numbers are not allowed", "2j"),
    ("ｘ0", "non-ASCII character U+FF58", "ｘ"),
    ("x０", "non-ASCII character U+FF10", "０"),
    ("x0 − 1", "non-ASCII character U+2212", "−"),
    ("x0 × 2", "non-ASCII character U+00D7", "×"),
    ("é", "non-ASCII character U+00E9", "é"),
    ("((x0**999)**999)**999", "exponent too large (over 1000 in total)", "(x0**999)**999"),
    ("(x0**999)**2", "exponent too large (over 1000 in total)", "(x0**999)**2"),
    ("x0**900*x0**900", "exponent too large (over 1000 in total)", "x0**900*x0**900"),
    ("x0**1001", "exponent too large", "x0**1001"),
    ("x0**-1001", "exponent too large", "x0**-1001"),
    ("9**9**9", "exponent too large", "9**9**9"),
    ("2**999*3**999*5**999*7**999", "a number too large for a float", "2**999"),
    ("10**1000", "a number too large for a float", "10**1000"),
    ("10**301", "a number too large for a float", "10**301"),
    ("exp(1000)", "a constant too large for a float", "exp(1000)"),
    ("exp(exp(exp(exp(1000))))", "a constant too large for a float", "exp(1000)"),
    ("exp(exp(10))", "a constant too large for a float", "exp(exp(10))"),
    ("cosh(1000)", "a constant too large for a float", "cosh(1000)"),
    ("sinh(-800)", "a constant too large for a float", "sinh(-800)"),
    (
        "99999999999999999999999999999999999999999999999999**7",
        "a number too large for a float",
        "99999999999999999999999999999999999999999999999999**7",
    ),
    ("True", "only numbers are allowed as literals", "True"),
    ("None", "only numbers are allowed as literals", "None"),
    ("'x0'", "only numbers are allowed as literals", "'x0'"),
    ("b'x0'", "only numbers are allowed as literals", "b'x0'"),
    ("[x0]", "this construct is not allowed", "[x0]"),
    ("{x0}", "this construct is not allowed", "{x0}"),
    ("(x0, x1)", "this construct is not allowed", "(x0, x1)"),
    ("x0 if x1 else 1", "this construct is not allowed", "x0 if x1 else 1"),
    ("x0 and x1", "this construct is not allowed", "x0 and x1"),
    ("not x0", "this construct is not allowed", "not x0"),
    ("x0 < x1", "this construct is not allowed", "x0 < x1"),
    ("x0 == x1", "this construct is not allowed", "x0 == x1"),
    ("x0 @ x1", "this construct is not allowed", "x0 @ x1"),
    ("x0 // x1", "this construct is not allowed", "x0 // x1"),
    ("x0 % x1", "this construct is not allowed", "x0 % x1"),
    ("x0 << 1", "this construct is not allowed", "x0 << 1"),
    ("x0 | x1", "this construct is not allowed", "x0 | x1"),
    ("~x0", "this construct is not allowed", "~x0"),
    ("x0.real", "attribute access is not allowed", "x0.real"),
    ("x0.__class__", "attribute access is not allowed", "x0.__class__"),
    ("sin.__globals__", "attribute access is not allowed", "sin.__globals__"),
    ("x0[0]", "subscripts are not allowed", "x0[0]"),
    ("lambda: 0", "lambdas are not allowed", "lambda: 0"),
    ("__import__('os')", "call of an unknown function", "__import__"),
    ("().__class__.__bases__[0]", "subscripts are not allowed", "().__class__.__bases__[0]"),
    ("getattr(x0, 'real')", "call of an unknown function", "getattr"),
    ("eval('1')", "call of an unknown function", "eval"),
    ("exec('1')", "call of an unknown function", "exec"),
    ("open('f')", "call of an unknown function", "open"),
    ("f'{x0}'", "this construct is not allowed", "f'{x0}'"),
    ("[i for i in x0]", "this construct is not allowed", "[i for i in x0]"),
    ("sin(x0, x1)", "sin takes exactly one positional argument", "sin(x0, x1)"),
    ("sin()", "sin takes exactly one positional argument", "sin()"),
    ("sin(x=x0)", "sin takes exactly one positional argument", "sin(x=x0)"),
    ("sin(*x0)", "sin takes exactly one positional argument", "sin(*x0)"),
    ("max(x0)", "max takes two or more positional arguments", "max(x0)"),
    ("Min(x0, x1, key=x0)", "Min takes two or more positional arguments", "Min(x0, x1, key=x0)"),
    ("exp", "function used without a call", "exp"),
    ("zoo", "unknown name", "zoo"),
    ("nan", "unknown name", "nan"),
    ("oo", "unknown name", "oo"),
    ("inf", "unknown name", "inf"),
    ("I", "unknown name", "I"),
    ("E.x", "attribute access is not allowed", "E.x"),
    ("np", "unknown name", "np"),
    ("_x", "dunder and private names are not allowed", "_x"),
    ("__x0", "dunder and private names are not allowed", "__x0"),
    ("x0 = 1", "syntax error (invalid syntax)", "x0 = 1"),
    ("x0; x1", "syntax error (invalid syntax)", "x0; x1"),
    ("x0 +", "syntax error (invalid syntax)", "x0 +"),
    ("(x0", "syntax error ('(' was never closed)", "(x0"),
]


@pytest.mark.parametrize(("text", "reason", "offending"), HOSTILE, ids=[h[0] for h in HOSTILE])
def test_hostile_expression_is_a_one_line_parse_error(
    text: str, reason: str, offending: str
) -> None:
    with pytest.raises(ParseError) as info:
        parse_expr(text, SYMBOLS)
    assert (info.value.reason, info.value.offending) == (reason, offending)
    message = str(info.value)
    assert message == f"cannot parse {text!r}: {reason}: {offending!r}" and "\n" not in message


def _nested_minus(k: int) -> str:
    return "-" * k + "x0"


def _sum(k: int) -> str:
    return "+".join(["x0"] * k)


@pytest.mark.parametrize(
    ("text", "reason"),
    [
        (_nested_minus(5000), "cannot be parsed: nested too deeply"),
        (_sum(3000), "cannot be parsed: nested too deeply"),
        ("(" * 250 + "x0" + ")" * 250, "syntax error (too many nested parentheses)"),
        (_nested_minus(MAX_DEPTH + 1), f"nested deeper than {MAX_DEPTH} levels"),
        ("sin(" * (MAX_DEPTH + 1) + "x0" + ")" * (MAX_DEPTH + 1), "nested deeper than"),
        ("+".join(["sin(1)"] * 1300), f"more than {MAX_NODES} syntax nodes"),
        ("x0" + "+x0" * 5000, "longer than 10000 characters"),
        ("9" * 5000, "a number of more than 1000 digits"),
        ("x0*" + "1" * 1001, "a number of more than 1000 digits"),
    ],
    ids=[
        "5000-minus",
        "3000-sum",
        "250-parens",
        "depth",
        "sin-depth",
        "nodes",
        "length",
        "long-int",
        "int-digits",
    ],
)
def test_size_limits_apply_to_the_parsed_tree(text: str, reason: str) -> None:
    with pytest.raises(ParseError, match="cannot parse") as info:
        parse_expr(text, SYMBOLS)
    assert info.value.reason.startswith(reason)


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        (_sum(1000), 1000 * X0),  # a long flat sum is one level, not 1000
        ("*".join(["x1"] * 500), X1**500),
        (_nested_minus(MAX_DEPTH - 1), -X0),
        ("x0**1000", X0**1000),
        ("(x0**10)**100", X0**1000),
        ("1e-999*x0", 0 * X0),
        ("1e300", sp.Integer(10) ** 300),
        ("sqrt(x0**2 + 1)", sp.sqrt(X0**2 + 1)),  # real for every real x0: allowed
        ("log(x0)", sp.log(X0)),  # real where x0 > 0: allowed
        ("asin(x0)", sp.asin(X0)),
        ("(-8)**3", sp.Integer(-512)),
        ("exp(600)", sp.exp(600)),
        ("1" * 299 + "*0", sp.Integer(0)),
    ],
)
def test_large_but_fair_expressions_still_parse(text: str, expected: sp.Expr) -> None:
    assert parse_expr(text, SYMBOLS) == expected


ATTACKS = [
    "__import__('os').system('touch {c}')",
    "open('{c}', 'w')",
    "exec(\"open('{c}','w')\")",
    "eval(\"open('{c}','w')\")",
    "(lambda: open('{c}', 'w'))()",
    "[open('{c}', 'w') for _ in (1,)]",
    "x0.__class__.__init__.__globals__['os'].system('touch {c}')",
    "sin.__call__(open('{c}', 'w'))",
    'f\'{{open("{c}", "w")}}\'',
    "sin(x0) if open('{c}', 'w') else 1",
]


@pytest.mark.parametrize("attack", ATTACKS)
@pytest.mark.parametrize("where", ["output", "loss", "target", "param"])
def test_attacks_anywhere_in_a_problem_run_nothing(tmp_path: Path, attack: str, where: str) -> None:
    canary = tmp_path / "canary"
    text = attack.format(c=canary)
    kwargs: dict = {"outputs": ["x0"]}
    if where == "output":
        kwargs["outputs"] = [text]
    elif where == "loss":
        kwargs["loss"] = text
    elif where == "target":
        kwargs["target"] = [text]
    else:
        kwargs["params"] = {"a": text}
    with pytest.raises(ParseError, match="cannot parse"):
        Problem.from_strings(["x0"], **kwargs)
    assert not canary.exists()


@pytest.mark.parametrize(
    ("inputs", "match"),
    [
        (["ｘ0"], "not a valid symbol name"),
        (["x0", "x0"], "names repeat"),
        (["y0"], "name .y0. is reserved: .* output 0 of P"),
        (["__class__"], "names starting with '_'"),
        (["sin"], "reserved name"),
        (["for"], "reserved name"),
        (["x 0"], "not a valid symbol name"),
        ([""], "not a valid symbol name"),
        ([], "a problem needs at least one input"),
        (["1x"], "not a valid symbol name"),
    ],
)
def test_bad_input_names_are_typed_errors(inputs: list[str], match: str) -> None:
    with pytest.raises(ScaleinvError, match=match):
        Problem.from_strings(inputs, ["1"])


def test_fullwidth_names_do_not_silently_become_ascii() -> None:
    # Python's tokenizer folds 'ｘ0' to 'x0' (NFKC); scaleinv refuses non-ASCII instead.
    with pytest.raises(ParseError, match="non-ASCII character U\\+FF58"):
        Problem.from_strings(["x0"], ["ｘ0**2"])


def test_params_keep_results_right_for_every_value_a_user_sets() -> None:
    p = Problem.from_strings(["x0"], ["sqrt(alpha**2)*x0"], params={"alpha": 2})
    with pytest.raises(ProblemError, match="param alpha is declared positive .* cannot be -2"):
        p.with_params(alpha=-2)
    with pytest.raises(ProblemError, match="cannot be 0"):
        p.with_params(alpha=0)
    assert float(p.with_params(alpha=3).compile().P([1.0])[0]) == pytest.approx(3.0)
    # a negative default gives a real symbol, and the right value
    q = Problem.from_strings(["x0"], ["sqrt(alpha**2)*x0"], params={"alpha": -2})
    assert float(q.compile().P([1.0])[0]) == pytest.approx(2.0)
    assert float(q.with_params(alpha=5).compile().P([1.0])[0]) == pytest.approx(5.0)


@pytest.mark.parametrize(
    ("output", "params", "match"),
    [
        ("sqrt(a)*x0", {"a": -4}, r"complex \(0 \+ 2i\) at the params' defaults: sqrt\(a\)"),
        ("log(a) + x0", {"a": -1}, r"complex .* at the params' defaults: log\(a\) with a = -1"),
        ("x0*Abs(sqrt(a))", {"a": -4}, r"complex .*: sqrt\(a\) with a = -4"),
        ("acos(a)*x0", {"a": 2}, r"complex .*: acos\(a\) with a = 2"),
        ("exp(a)*x0", {"a": 1000}, r"not a finite float at the params' defaults: exp\(a\)"),
        ("x0/(a - 2)", {"a": 2}, r"not a finite float .*: 1/\(a - 2\) with a = 2"),
    ],
)
def test_a_problem_complex_or_infinite_at_its_defaults_is_refused(output, params, match) -> None:
    """Issue 17: these were accepted and every run ended in NaN; numpy agrees they are not
    real floats (the independent evaluation below)."""
    with pytest.raises(ProblemError, match=match):
        Problem.from_strings(["x0"], [output], params=params)
    expr = parse_expr(output, {"x0": X0, "a": sp.Symbol("a", real=True)})
    f = sp.lambdify([X0, sp.Symbol("a", real=True)], expr, "numpy")
    with np.errstate(all="ignore"):
        assert not np.isfinite(f(np.float64(0.5), np.float64(params["a"])))


def test_with_params_refuses_a_value_where_the_problem_is_complex() -> None:
    p = Problem.from_strings(["x0"], ["sqrt(a - 1)*x0"], params={"a": 2})
    with pytest.raises(ProblemError, match=r"sqrt\(a - 1\) with a = 0.5"):
        p.with_params(a=0.5)


@pytest.mark.parametrize(
    ("output", "params"),
    [("sqrt(a*x0)", {"a": -4}), ("Abs(a)*x0", {"a": -4}), ("exp(a)*x0", {"a": 600})],
)
def test_a_problem_real_somewhere_at_its_defaults_is_kept(output, params) -> None:
    p = Problem.from_strings(["x0"], [output], params=params)
    assert np.isfinite(p.compile().P(np.array([[-0.5]]))).all()


@pytest.mark.parametrize("text", ["exp(600)*exp(600)*x0", "x0 + exp(600)*exp(600)", "E**700*x0"])
def test_an_overflowing_constant_factor_is_refused(text) -> None:
    with pytest.raises(ParseError, match="a constant too large for a float"):
        parse_expr(text, SYMBOLS)


def test_a_spec_complex_at_its_defaults_is_one_error_line(tmp_path, capsys) -> None:
    from scaleinv.cli.main import main

    spec = tmp_path / "s.toml"
    spec.write_text('[problem]\ninputs = ["x0"]\noutputs = ["sqrt(a)*x0"]\n[params]\na = -4\n')
    assert main(["run", str(spec)]) == 2
    err = capsys.readouterr().err
    assert err.count("scaleinv: error:") == 1 and "complex" in err and "Traceback" not in err
