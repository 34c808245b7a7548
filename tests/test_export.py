"""Exported modules are imported in a fresh interpreter and compared with the in-process kernels."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from catalogue import CATALOGUE, sample_points

from scaleinv import export, rules
from scaleinv.errors import ScaleinvError
from scaleinv.numeric.export import module_source

RULES = [rules.gd(0.05), rules.newton(0.5), rules.ig(0.5), rules.pg(0.5), rules.hig(0.5, beta=0.5)]

_RUNNER = """
import json, sys
import numpy
sys.path.insert(0, sys.argv[1])
assert "sympy" not in sys.modules
import exported
assert "sympy" not in sys.modules and "scipy" not in sys.modules
x = numpy.array(json.loads(sys.argv[2]))
out = {}
for name in exported.__all__:
    fn = getattr(exported, name)
    if name.endswith("_step"):
        dx, status = fn(x)
        out[name] = [dx.tolist(), status.tolist()]
    elif name == "local_inverse":
        target = exported.P(x) * 0.9
        xs, status, residual = fn(target, x)
        out[name] = [xs.tolist(), status.tolist(), residual.tolist()]
    elif name in ("loss_of_y", "loss_y", "newton_dy"):
        out[name] = fn(exported.P(x)).tolist()
    else:
        out[name] = fn(x).tolist()
print(json.dumps(out))
"""


def _run_exported(folder: Path, x: np.ndarray) -> dict:
    result = subprocess.run(
        [sys.executable, "-c", _RUNNER, str(folder), json.dumps(x.tolist())],
        capture_output=True,
        text=True,
        check=True,
    )
    return json.loads(result.stdout)


@pytest.mark.parametrize(
    "name", ["comparison", "scaling_toy", "coupled", "trig", "cubic_exp", "overdetermined"]
)
def test_exported_module_equals_in_process_kernels(name: str, tmp_path: Path) -> None:
    problem = CATALOGUE[name]
    export(problem, tmp_path / "exported.py", rules=RULES, title=name)
    x = sample_points(name, np.random.default_rng(11), 5)
    got = _run_exported(tmp_path, x)
    kernels = problem.compile()
    for k in kernels.all():
        arg = kernels.P(x) if k.name in ("loss_of_y", "loss_y", "newton_dy") else x
        np.testing.assert_allclose(np.array(got[k.name]), k(arg), rtol=1e-13, atol=1e-14)
    for rule in RULES:  # PG too: without a closed form, the numeric inverse is exported
        dx, _, status = rule.compile(problem).step(x, None)
        np.testing.assert_allclose(
            np.array(got[f"{rule.name}_step"][0]), dx, rtol=1e-12, atol=1e-13
        )
        assert got[f"{rule.name}_step"][1] == status.tolist()
    sol = problem.local_inverse().compile().solve(kernels.P(x) * 0.9, x)
    np.testing.assert_allclose(np.array(got["local_inverse"][0]), sol.x, rtol=1e-12, atol=1e-13)
    assert got["local_inverse"][1] == sol.status.tolist()
    np.testing.assert_allclose(np.array(got["local_inverse"][2]), sol.residual, rtol=1e-12)


def test_export_of_a_problem_without_closed_form_inverse_writes_the_numeric_one() -> None:
    text = module_source(CATALOGUE["overdetermined"], rules=RULES)
    assert "def pg_step" in text and "def path_inverse" in text
    assert "Not exported: bfgs" in module_source(CATALOGUE["comparison"], rules=[rules.bfgs()])


def test_export_is_atomic_and_checks_its_target(tmp_path: Path) -> None:
    target = tmp_path / "k.py"
    target.write_text("previous = 1\n")
    with pytest.raises(ScaleinvError, match="must be a .py file"):
        export(CATALOGUE["comparison"], tmp_path / "k.txt")
    with pytest.raises(ScaleinvError, match="folder does not exist"):
        export(CATALOGUE["comparison"], tmp_path / "missing" / "k.py")
    assert target.read_text() == "previous = 1\n"
    export(CATALOGUE["comparison"], target)
    assert "def pg_step" in target.read_text()
    assert sorted(p.name for p in tmp_path.iterdir()) == ["k.py"]  # no temporary left behind
