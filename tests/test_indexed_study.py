"""An indexed spec through ``scaleinv run`` (one start, ``--starts``), ``scaleinv study`` and
``minimize`` on a Dask array of starts: the same results as in memory, terminal output that
summarises the n-vectors instead of listing them."""

from __future__ import annotations

import re

import numpy as np
import pytest
from conftest import optional_module

from scaleinv import load_spec, minimize, rules
from scaleinv.cli.main import main
from scaleinv.reports.study_indexed import negative_eigenvalues, run_indexed_study

SPEC = """\
title = "indexed diffusion"
[problem]
inputs = "u[0:n]"
outputs = "u[i] + dt*(nu*(u[i+1] - 2*u[i] + u[i-1]) + c*u[i]**3)"
boundary = "periodic"
target = "sin(2*pi*i/n)"
[params]
n = {n}
dt = 0.1
nu = 0.5
c = 0.2
[run]
starts = [0.5]
steps = 8
[study]
starts = 6
spread = 0.2
steps = 20
tol = 1e-9
[[rules]]
name = "gd"
eta = 0.5
[[rules]]
name = "newton"
[[rules]]
name = "ig"
"""


@pytest.fixture
def spec_path(tmp_path):
    path = tmp_path / "diffusion.toml"
    path.write_text(SPEC.format(n=64), encoding="utf-8")
    return path


def _long_lines(text: str) -> list[str]:
    return [line for line in text.splitlines() if line.count(",") > 20]


def test_run_with_pg_says_once_that_it_solves_numerically(tmp_path, capsys):
    # the point formula reads its neighbours: no closed form per point, PG solves with J
    # (the note came from the per-expression check, an AttributeError on an indexed problem)
    path = tmp_path / "pg.toml"
    path.write_text(SPEC.format(n=32) + '[[rules]]\nname = "pg"\n', encoding="utf-8")
    assert main(["run", str(path)]) == 0
    out = capsys.readouterr().out
    assert out.count("PG solves P(x) = y numerically") == 1
    assert "\n  PG      u[0:32] = (" in out  # its final state, summarised


def test_run_prints_summaries_not_vectors(spec_path, capsys):
    assert main(["run", str(spec_path)]) == 0
    out = capsys.readouterr().out
    assert "64 inputs (u[0:64]), 64 outputs" in out and "Newton" in out
    assert not _long_lines(out)
    spec = load_spec(spec_path)  # the table's final loss is minimize's
    t = minimize(spec.problem, rules.newton(), np.array(spec.starts), 8)
    assert f"{t.loss[-1, 0]:.6g}" in out


TWO_FIELDS = """\
title = "two fields on a 6 x 6 grid"
[problem]
inputs = ["u[0:n, 0:n]", "v[0:n, 0:n]"]
outputs = ["u[i,j] + 0.1*(u[i+1,j] - u[i,j]) + 0.05*u[i,j]*v[i,j]", "v[i,j] + 0.1*v[i,j+1]*u[i,j]"]
boundary = "periodic"
target_from = ["1 + 0.1*sin(2*pi*i/n)*cos(2*pi*j/n)", "3 + 0.1*cos(2*pi*(i + 2*j)/n)"]
[params]
n = 6
[run]
starts = [[1.0, 3.0]]
steps = 8
tol = 1e-9
[[rules]]
name = "newton"
"""


def test_run_names_indexed_entries_by_field_and_grid_point(tmp_path, capsys):
    """The smallest and largest final entry were named by flat position (``x93``)."""
    path = tmp_path / "two.toml"
    path.write_text(TWO_FIELDS, encoding="utf-8")
    assert main(["run", str(path)]) == 0
    out = capsys.readouterr().out
    assert "72 inputs (u[0:6, 0:6], v[0:6, 0:6]), 72 outputs" in out
    assert "start 1  u[0:6, 0:6] = all 1; v[0:6, 0:6] = all 3" in out
    row = next(line for line in out.splitlines() if line.startswith("Newton "))
    assert "converged" in row
    # Newton reaches x*: each named entry holds the known answer at that field and grid point
    answer = {
        "u": lambda i, j: 1 + 0.1 * np.sin(2 * np.pi * i / 6) * np.cos(2 * np.pi * j / 6),
        "v": lambda i, j: 3 + 0.1 * np.cos(2 * np.pi * (i + 2 * j) / 6),
    }
    named = re.findall(r"(-?[\d.]+) \(([uv])\[(\d), (\d)\]\)", row)
    assert [field for _, field, _, _ in named] == ["u", "v"]  # the min in u, the max in v
    for value, field, i, j in named:
        assert float(value) == pytest.approx(answer[field](int(i), int(j)), abs=1e-3)
    grid = np.indices((6, 6))
    assert float(named[0][0]) == pytest.approx(answer["u"](*grid).min(), abs=1e-3)
    assert float(named[1][0]) == pytest.approx(answer["v"](*grid).max(), abs=1e-3)
    assert "  Newton  u[0:6, 0:6] = (" in out and "\n          v[0:6, 0:6] = (" in out


def test_study_lists_a_minimum_field_by_field(tmp_path, capsys):
    """The minima table held one flat vector's ends, ``(1, 1, …, 3.05, 2.9)``, fields mixed."""
    path = tmp_path / "two.toml"
    path.write_text(TWO_FIELDS + "[study]\nstarts = 3\nspread = 0.05\n", encoding="utf-8")
    assert main(["study", str(path)]) == 0
    lines = capsys.readouterr().out.splitlines()
    head = next(line for line in lines if line.split()[:2] == ["minimum", "|x|"])
    assert head.split()[2:6] == ["u[0:6,", "0:6]", "v[0:6,", "0:6]"]
    row = next(line for line in lines if line.startswith("m1 "))
    u, v = re.findall(r"\(([^)]*)\)", row)
    grid = np.indices((6, 6)).reshape(2, -1)
    u_star = 1 + 0.1 * np.sin(2 * np.pi * grid[0] / 6) * np.cos(2 * np.pi * grid[1] / 6)
    v_star = 3 + 0.1 * np.cos(2 * np.pi * (grid[0] + 2 * grid[1]) / 6)
    for shown, answer in ((u, u_star), (v, v_star)):
        first, last = (float(e) for e in shown.split(", ")[:: len(shown.split(", ")) - 1])
        assert (first, last) == pytest.approx((answer[0], answer[-1]), abs=1e-3)


def test_run_many_starts(spec_path, capsys):
    assert main(["run", str(spec_path), "--starts", "3"]) == 0
    out = capsys.readouterr().out
    assert "3 starts (seed 0)" in out and not _long_lines(out)


def test_study_reaches_the_one_minimum(spec_path, capsys):
    spec = load_spec(spec_path)
    study = run_indexed_study(spec)
    assert len(study.minima) == 1
    newton = study.rules[1]
    assert newton.share(0) == 1.0  # every Newton run ends at it
    y_star = np.sin(2 * np.pi * np.arange(64) / 64)  # P(x) = y* has a solution: loss 0 there
    kernels = spec.problem.compile()
    np.testing.assert_allclose(kernels.P(np.array(study.minima[0].point)), y_star, atol=1e-8)
    assert main(["study", str(spec_path)]) == 0
    out = capsys.readouterr().out
    assert "The runs reached 1 minimum." in out and not _long_lines(out)


def test_study_refuses_a_region(tmp_path, capsys):
    path = tmp_path / "bad.toml"
    path.write_text(SPEC.format(n=16).replace("spread = 0.2", "region = [[0, 1]]"), "utf-8")
    assert main(["study", str(path)]) == 2
    assert "starts spread around its [run] start (spread = 0.1" in capsys.readouterr().err


def test_inertia_matches_dense_eigenvalues():
    import scipy.sparse

    rng = np.random.default_rng(3)
    for shift in (0.0, 2.5, 5.0):  # none, some, all negative
        a = rng.normal(size=(30, 30))
        h = (a + a.T) / 2 - shift * np.eye(30) + 4 * np.eye(30)
        expected = int(np.sum(np.linalg.eigvalsh(h) < 0))
        found = negative_eigenvalues(scipy.sparse.csc_matrix(h))
        assert found in (expected, None)  # None only when LU had to pivot rows
    tri = scipy.sparse.diags([np.full(49, -1.0), np.full(50, 2.0), np.full(49, -1.0)], [-1, 0, 1])
    assert negative_eigenvalues(tri) == 0
    assert negative_eigenvalues(-tri) == 50


@pytest.mark.slow
@pytest.mark.filterwarnings("ignore::scaleinv.errors.NumericInverseWarning")
def test_dask_run_equals_in_memory_run(spec_path):
    optional_module("dask", "distributed")
    distributed = optional_module("distributed", "distributed")
    import dask
    import dask.array as da

    problem = load_spec(spec_path).problem
    x = 0.5 + 0.1 * np.random.default_rng(0).normal(size=(5, problem.n))
    cluster = distributed.LocalCluster(
        n_workers=2, threads_per_worker=1, processes=True, dashboard_address=":0"
    )
    with cluster, distributed.Client(cluster):
        for rule in (rules.gd(0.5), rules.newton(), rules.ig(), rules.pg()):
            t = minimize(problem, rule, da.from_array(x, chunks=(2, problem.n)), 6, tol=1e-10)
            xs, ys, loss, status = dask.compute(t.x, t.y, t.loss, t.status)
            ref = minimize(problem, rule, x, 6, tol=1e-10)
            np.testing.assert_array_equal(xs, ref.x)
            np.testing.assert_array_equal(ys, ref.y)
            np.testing.assert_array_equal(loss, ref.loss)
            np.testing.assert_array_equal(status, ref.status)


def test_minimize_dask_sends_an_indexed_problem_to_minimize(spec_path):
    # Its workers run scaleinv.minimize, which only minimize itself passes in.
    from scaleinv.errors import ScaleinvError
    from scaleinv.numeric.distributed import minimize_dask

    problem = load_spec(spec_path).problem
    with pytest.raises(ScaleinvError, match="through scaleinv.minimize"):
        minimize_dask(problem, rules.gd(0.5), np.ones((2, problem.n)), 3)
