"""Adversarial: user text never becomes code, and no symbol name breaks generated code.

Hostile titles, descriptions and labels go through ``scaleinv.export`` (API and CLI) and the
report build; every exported module is imported in a fresh interpreter, which must not create
the canary file and whose functions must equal the in-process kernels. Symbols named like
Python builtins or like the generated code's own names compile, run and export.
"""

from __future__ import annotations

import ast
import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import sympy as sp

import scaleinv
from scaleinv import rules
from scaleinv.cli.main import main
from scaleinv.errors import ProblemError, ScaleinvError
from scaleinv.numeric.export import export, module_source
from scaleinv.reports.latex import escape, prose
from scaleinv.symbolic import Problem

CANARY = "{canary}"  # replaced by the test's canary path


def _payloads() -> list[str]:
    """Text meant to escape a docstring, a comment, a string or LaTeX, and run ``touch``."""
    run = "__import__('os').system('touch {canary}')"
    code = f"open(r'{CANARY}', 'w').close()"
    utf7 = "+ACIAIgAi-+AAo-import os+ADs- os.system(+ACI-touch {canary}+ACI-)+AAo-+ACIAIgAi-"
    return [
        f'pwn"""\nimport os; os.system("touch {CANARY}")\n_ = """',  # the issue's title
        f"pwn'''\n{code}\n_ = '''",
        f'"""; {code}; """',
        f'""" + {run} + """',
        f'\\"""\n{code}\n"""',
        f'"\\\n{code}',
        f'a\\\n"""\n{code}\n#',
        f"\n{code}",
        f"\r{code}",
        f"\r\n{code}\r\n",
        f"\n# {code}\n",
        f"\u2028{code}\u2029",
        f"\x85{code}",
        f"\x0c{code}",
        f"\x0b{code}",
        f"\x00{code}",
        f"\x1b[2J{code}",
        f"{{{run}}}",
        f"f'{{{run}}}'",
        f"%({run})s",
        f"\ufeff{code}",
        f"\n# -*- coding: utf-7 -*-\n{utf7}",
        f"# -*- coding: utf-7 -*-\n{utf7}",
        f'\t"""\n\t{code}\n\t"""',
        f'"""\x00"""\n{code}',
        "C:\\new\\xdata\\N",  # the issue's SyntaxError
        "\\N{LATIN SMALL LETTER A} \\N{",
        "\\x \\u12 \\U1234 \\777 \\",
        "trailing backslash \\",
        'trailing quote "',
        'two quotes ""',
        "'''",
        '"' * 7,
        "\\" * 7,
        "ｉｍｐｏｒｔ ｏｓ",
        "x" * 100_000,
        ('"""' + "\\" * 3) * 500,
        "__import__('os').system('id')",
        "\\input{/etc/passwd} \\write18{touch " + CANARY + "} ^^5cinput",
        "$\\frac{$ $$ \\$ $x^$",
        "\U0001f600 emoji \U000e0041 tag",
        "\ud800 lone surrogate",
    ]


PAYLOADS = _payloads()


def _problem() -> Problem:
    return Problem.from_strings(
        ["x0", "x1"], ["x0 + sin(x1)", "alpha*x1**3"], loss="y0**2 + y1**2", params={"alpha": 2}
    )


X = np.array([[0.3, -0.7], [1.5, 0.25], [-2.0, 1.0]])


def _fill(text: str, canary: Path) -> str:
    return text.replace(CANARY, str(canary))


def _import_all(folder: Path, names: list[str], calls: dict[str, list]) -> dict:
    """Import modules in a fresh interpreter; return each one's doc and function values."""
    script = (
        "import importlib, json, sys, numpy\n"
        f"sys.path.insert(0, {str(folder)!r})\n"
        f"calls = json.loads({json.dumps(calls)!r})\n"
        "out = {}\n"
        f"for name in {names!r}:\n"
        "    m = importlib.import_module(name)\n"
        "    values = {}\n"
        "    for f, (x, kw) in calls.items():\n"
        "        r = getattr(m, f)(numpy.array(x), **kw)\n"
        "        r = r[0] if isinstance(r, tuple) else r\n"
        "        values[f] = numpy.asarray(r).tolist()\n"
        "    out[name] = {'doc': m.__doc__, 'values': values}\n"
        "print(json.dumps(out))\n"
    )
    done = subprocess.run(
        [sys.executable, "-c", script], capture_output=True, text=True, cwd=folder, timeout=300
    )
    assert done.returncode == 0, done.stderr[-2000:]
    return json.loads(done.stdout)


def _in_process(problem: Problem, calls: dict[str, list]) -> dict[str, list]:
    kernels = {k.name: k for k in problem.compile().all()}
    steps = {f"{r.name}_step": r for r in (rules.gd(), rules.newton(), rules.ig(), rules.hig())}
    values = {}
    for f, (x, kw) in calls.items():
        if f in kernels:
            values[f] = kernels[f](np.array(x), **kw)
        else:
            step = steps[f].compile(problem.with_params(**kw) if kw else problem).step
            values[f] = step(np.array(x), None)[0]
    return values


CALLS = {
    "P": [X.tolist(), {}],
    "jacobian": [X.tolist(), {"alpha": 0.5}],
    "hessian": [X.tolist(), {}],
    "gd_step": [X.tolist(), {}],
    "newton_step": [X.tolist(), {}],
    "hig_step": [X.tolist(), {}],
}


@pytest.mark.slow
def test_hostile_titles_give_modules_that_import_cleanly_and_run_nothing(tmp_path) -> None:
    canary = tmp_path / "CANARY"
    problem = _problem()
    names = []
    for i, payload in enumerate(PAYLOADS):
        title = _fill(payload, canary)
        source = module_source(problem, title=title)
        tree = ast.parse(source)  # one docstring, then only scaleinv's own statements
        assert ast.get_docstring(tree, clean=False).startswith(title + " — generated")
        assert not [n for n in ast.walk(tree) if isinstance(n, ast.Call) and _calls_os(n)]
        export(problem, tmp_path / f"k{i}.py", title=title)
        names.append(f"k{i}")
    imported = _import_all(tmp_path, names, CALLS)
    assert not canary.exists()
    expected = _in_process(problem, CALLS)
    for i, name in enumerate(names):
        title = _fill(PAYLOADS[i], canary)
        if "\ud800" not in title:  # a lone surrogate cannot cross JSON to this process intact
            assert imported[name]["doc"].startswith(title + " — generated by scaleinv")
        for f, value in expected.items():
            np.testing.assert_allclose(imported[name]["values"][f], value, rtol=1e-12, err_msg=f)


def _calls_os(node: ast.Call) -> bool:
    return any(
        isinstance(n, ast.Name) and n.id in ("os", "__import__", "open") for n in ast.walk(node)
    )


def _toml(text: str) -> str:
    """A TOML basic string holding ``text`` (JSON's escapes are TOML's, but for DEL)."""
    return json.dumps(text, ensure_ascii=False).replace("\x7f", "\\u007f")


def _spec(tmp_path: Path, name: str, title: str, description: str = "", label: str = "") -> Path:
    text = f"title = {_toml(title)}\ndescription = {_toml(description)}\n"
    text += '[problem]\ninputs = ["x0", "x1"]\noutputs = ["x0 + x1", "2*x1"]\n'
    text += '[run]\nstarts = [[1.0, 0.5]]\nsteps = 3\n[[rules]]\nname = "newton"\n'
    if label:
        text += f"label = {_toml(label)}\n"
    text += '[[rules]]\nname = "gd"\n'
    path = tmp_path / f"{name}.toml"
    path.write_text(text, encoding="utf-8")
    return path


#: Payloads a TOML file can carry (no lone surrogates).
SPEC_PAYLOADS = [p for p in PAYLOADS if "\ud800" not in p]


@pytest.mark.slow
def test_hostile_spec_titles_through_the_cli_export_run_nothing(tmp_path, capsys) -> None:
    canary = tmp_path / "CANARY"
    names = []
    for i, payload in enumerate(SPEC_PAYLOADS):
        spec = _spec(tmp_path, f"s{i}", _fill(payload, canary), _fill(payload, canary))
        assert main(["export", str(spec), "--to", str(tmp_path / f"m{i}.py")]) == 0
        names.append(f"m{i}")
    capsys.readouterr()
    calls = {"P": CALLS["P"], "newton_step": CALLS["newton_step"]}
    imported = _import_all(tmp_path, names, calls)
    assert not canary.exists()
    problem = Problem.from_strings(["x0", "x1"], ["x0 + x1", "2*x1"])
    expected = _in_process(problem, calls)
    for i, name in enumerate(names):
        assert imported[name]["doc"].startswith(_fill(SPEC_PAYLOADS[i], canary) + " — generated")
        for f, value in expected.items():
            np.testing.assert_allclose(imported[name]["values"][f], value, rtol=1e-12)


def test_the_issues_title_exploit_creates_no_file(tmp_path) -> None:
    """``scaleinv export evil.toml --to k1.py && python -c "import k1"`` (as in the issue)."""
    evil = tmp_path / "evil.toml"
    evil.write_text(
        'title = \'\'\'pwn"""\nimport os; os.system("touch pwned")\n_ = """\'\'\'\n'
        '[problem]\ninputs = ["x0"]\noutputs = ["x0"]\n'
    )
    script = "from scaleinv.cli.main import main; import sys; sys.exit(main(sys.argv[1:]))"
    command = [sys.executable, "-c", script, "export", "evil.toml", "--to", "k1.py"]
    done = subprocess.run(command, cwd=tmp_path, capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr
    done = subprocess.run([sys.executable, "-c", "import k1"], cwd=tmp_path, capture_output=True)
    assert done.returncode == 0 and not (tmp_path / "pwned").exists()


@pytest.mark.parametrize("text", PAYLOADS[:30] + ["", "plain", "a\nb"])
def test_docstring_is_a_literal_of_exactly_the_text(text) -> None:
    from scaleinv.numeric.pysource import docstring

    literal = docstring(text)
    assert ast.literal_eval(literal) == text
    assert len(ast.parse(literal).body) == 1
    assert "\r" not in literal and "\x00" not in literal and "\u2028" not in literal


# -- names ---------------------------------------------------------------------------------

BUILTIN_NAMES = Problem.from_strings(
    ["int", "range", "len"],
    ["int*range + slice", "float*int**2 + out", "numpy*len - x"],
    loss="y0**2 + y1**2 + y2**2",
    params={"slice": 2.0, "float": 0.5, "x": 1.5, "numpy": 3.0, "out": -1.0, "beta": 0.25},
)


def _p_builtins(v: np.ndarray, slice_=2.0, float_=0.5, x_=1.5, numpy_=3.0, out_=-1.0):
    """An independent evaluation of BUILTIN_NAMES.P."""
    i, r, n = v[..., 0], v[..., 1], v[..., 2]
    return np.stack([i * r + slice_, float_ * i**2 + out_, numpy_ * n - x_], axis=-1)


V = np.array([[1.0, 2.0, 3.0], [0.5, -1.0, 2.0]])


def test_symbols_named_like_builtins_compile_and_take_their_keywords() -> None:
    from scaleinv.numeric.kernels import param_keywords

    keywords = {str(s): k for s, k in param_keywords(BUILTIN_NAMES.params).items()}
    assert keywords == {
        "beta": "beta", "float": "float_", "numpy": "numpy_", "out": "out_", "slice": "slice_",
        "x": "x_",
    }  # fmt: skip
    kernels = BUILTIN_NAMES.compile()
    np.testing.assert_allclose(kernels.P(V), _p_builtins(V))
    np.testing.assert_allclose(kernels.P(V, slice_=-4.0, x_=0.0), _p_builtins(V, -4.0, x_=0.0))
    h = 1e-6
    fd = np.stack(
        [(kernels.P(V + h * e) - kernels.P(V - h * e)) / (2 * h) for e in np.eye(3)], axis=-1
    )
    np.testing.assert_allclose(kernels.jacobian(V), fd, rtol=1e-6, atol=1e-8)
    with pytest.raises(TypeError, match="slice"):
        kernels.P(V, slice=1.0)  # the keyword is slice_, never a builtin's name


@pytest.mark.parametrize("rule", [rules.gd(), rules.newton(), rules.ig(), rules.hig()])
def test_rules_run_on_symbols_named_like_builtins(rule) -> None:
    t = scaleinv.minimize(BUILTIN_NAMES, rule, V, steps=3)
    assert np.isfinite(t.x).all() and np.isfinite(t.loss).all()


def test_a_module_of_builtin_names_imports_and_equals_the_kernels(tmp_path) -> None:
    export(BUILTIN_NAMES, tmp_path / "names.py")
    calls = {
        "P": [V.tolist(), {"slice_": -4.0}],
        "jacobian": [V.tolist(), {}],
        "hessian": [V.tolist(), {"numpy_": 0.5}],
        "gd_step": [V.tolist(), {}],
        "hig_step": [V.tolist(), {}],
    }
    imported = _import_all(tmp_path, ["names"], calls)["names"]
    kernels = BUILTIN_NAMES.compile()
    np.testing.assert_allclose(imported["values"]["P"], kernels.P(V, slice_=-4.0))
    np.testing.assert_allclose(imported["values"]["jacobian"], kernels.jacobian(V))
    np.testing.assert_allclose(imported["values"]["hessian"], kernels.hessian(V, numpy_=0.5))
    for name, rule in [("gd_step", rules.gd()), ("hig_step", rules.hig())]:
        dx = rule.compile(BUILTIN_NAMES).step(V, None)[0]
        np.testing.assert_allclose(imported["values"][name], dx, rtol=1e-12)
    assert "slice_ = 2.0 (param slice)" in imported["doc"]


#: Builtins, keywords-to-be and the generated code's own names (kernels, steps, the export).
CLASHING = [
    "int", "range", "slice", "float", "len", "numpy", "out", "batch", "x", "y", "print", "sum",
    "abs", "min", "max", "object", "type", "list", "dict", "tuple", "zip", "map", "iter", "id",
    "ArithmeticError", "Ellipsis", "None_", "exec", "eval", "open", "match", "case", "P",
    "jacobian", "solve", "eta", "beta", "rcond", "params", "status", "dx", "kernels",
]  # fmt: skip


@pytest.mark.parametrize("name", CLASHING)
def test_every_reserved_name_works_as_an_input_and_a_param(name) -> None:
    x, a = sp.Symbol(name, real=True), sp.Symbol(f"{name}2", real=True)
    p = Problem([x], [a * x**2], params={a: 3.0})
    q = Problem([a], [x * a**2], params={x: 3.0})
    np.testing.assert_allclose(p.compile().P(np.array([[2.0]])), [[12.0]])
    np.testing.assert_allclose(q.compile().jacobian(np.array([[2.0]])), [[[12.0]]])
    compile(module_source(q), "<module>", "exec")


def test_names_python_would_fold_together_stay_apart() -> None:
    """Python NFKC-normalizes identifiers: ``ｘ0`` (fullwidth) would be ``x0`` in source."""
    wide, plain = sp.Symbol("ｘ0", real=True), sp.Symbol("x0", real=True)
    p = Problem([wide, plain], [wide - plain])
    np.testing.assert_allclose(p.compile().P(np.array([[5.0, 2.0]])), [[3.0]])


def test_names_that_are_not_identifiers_are_renamed() -> None:
    odd = [sp.Symbol(n, real=True) for n in ['a"""b', "c\nd", "_e", "f g", "lambda"]]
    p = Problem(odd, [odd[0] * odd[1] + odd[2] - odd[3] * odd[4]])
    np.testing.assert_allclose(p.compile().P(np.array([[1.0, 2.0, 3.0, 4.0, 5.0]])), [[-15.0]])
    compile(module_source(p), "<module>", "exec")


def test_an_undefined_function_is_refused_not_printed() -> None:
    x = sp.Symbol("x0", real=True)
    evil = sp.Function("__import__('os').system('id') or float")
    with pytest.raises(ProblemError, match="undefined functions"):
        Problem([x], [evil(x)]).compile()


# -- LaTeX and figures ------------------------------------------------------------------------


@pytest.mark.parametrize("text", SPEC_PAYLOADS)
@pytest.mark.parametrize("typeset", [escape, prose], ids=["escape", "prose"])
def test_latex_escape_leaves_no_command_and_no_control_character(text, typeset) -> None:
    out = typeset(text)
    assert not any(c < " " and c != "\n" for c in out) and "\x7f" not in out
    for cmd in ("\\input", "\\write", "\\catcode", "\\immediate", "^^"):
        assert cmd not in out


@pytest.mark.parametrize("label", ["$\\frac{$", "$$", "$x^$", "\\$", "$a$b$", "_hidden", "\x00"])
def test_plain_label_is_drawn_literally(label) -> None:
    from matplotlib.figure import Figure

    from scaleinv.reports.landscapes import plain_label

    fig = Figure()
    text = fig.text(0, 0, plain_label(label))
    fig.canvas.draw()  # would raise on bad mathtext
    assert text.get_text() == plain_label(label)


def test_a_report_of_hostile_text_builds(tmp_path) -> None:
    canary = tmp_path / "CANARY"
    payload = _fill(PAYLOADS[0] + PAYLOADS[38] + "\x00\x7f\x0c" + "\n\n", canary)
    spec = _spec(tmp_path, "hostile", payload, payload, label="$\\frac{$ " + payload)
    result = scaleinv.reports.build(spec, tmp_path / "out", pdf=False)
    tex = result.tex.read_text()
    assert "\\input{/etc" not in tex and "\\write18" not in tex and "\x00" not in tex
    assert not canary.exists()


def test_tex_runs_without_shell_escape_or_reading_outside(tmp_path, tex) -> None:
    from scaleinv.reports.pdf import LatexError, compile_pdf

    secret = tmp_path / "secret.tex"
    secret.write_text("SECRET-TEXT\n")
    folder = tmp_path / "build"
    folder.mkdir()
    doc = folder / "report.tex"
    doc.write_text(
        "\\documentclass{article}\\begin{document}\n"
        "\\immediate\\write18{touch " + str(tmp_path / "CANARY") + "}\n"
        "\\input{" + str(secret) + "}\n\\end{document}\n"
    )
    with pytest.raises(LatexError, match="LaTeX Error: File"):
        compile_pdf(doc)
    assert not (tmp_path / "CANARY").exists()
    assert "SECRET-TEXT" not in (folder / "report.log").read_text()


def test_export_refuses_a_folder_and_follows_a_symlink(tmp_path) -> None:
    (tmp_path / "dir.py").mkdir()
    with pytest.raises(ScaleinvError, match="not a file"):
        export(_problem(), tmp_path / "dir.py")
    target = tmp_path / "real.py"
    target.write_text("# mine\n")
    (tmp_path / "link.py").symlink_to(target)
    export(_problem(), tmp_path / "link.py")
    assert (tmp_path / "link.py").is_symlink() and "def P(" in target.read_text()
