"""Many starts on a Dask cluster: a LocalCluster of two worker processes runs minimize chunk by
chunk and gives exactly the in-memory run; workers import neither scaleinv nor SymPy."""

from __future__ import annotations

import numpy as np
import pytest
from catalogue import CATALOGUE, sample_points
from conftest import optional_module

from scaleinv import load_spec, minimize, rules
from scaleinv.cli.main import main
from scaleinv.cli.run import many_starts
from scaleinv.errors import ScaleinvError

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def client():
    optional_module("dask", "distributed")
    distributed = optional_module("distributed", "distributed")
    cluster = distributed.LocalCluster(
        n_workers=2, threads_per_worker=1, processes=True, dashboard_address=":0"
    )
    with cluster, distributed.Client(cluster) as c:
        yield c


@pytest.mark.parametrize(
    ("name", "rule"),
    [
        ("comparison", rules.pg(0.3)),
        ("comparison", rules.newton(1 / 3)),
        ("trig", rules.pg(0.5, fallback="ig")),
        ("coupled", rules.ig(0.5)),
        ("scaling_toy", rules.gd(0.001)),
        ("overdetermined", rules.pg(0.5)),  # no closed form: the numeric inverse on workers
    ],
)
@pytest.mark.filterwarnings("ignore::scaleinv.errors.NumericInverseWarning")
def test_dask_run_equals_in_memory_run(client, name: str, rule) -> None:
    import dask
    import dask.array as da

    problem = CATALOGUE[name]
    x = sample_points(name, np.random.default_rng(1), 700).reshape(7, 100, problem.n)
    starts = da.from_array(x, chunks=(3, 40, problem.n))
    t = minimize(problem, rule, starts, 12, tol=1e-9, record="all")
    assert isinstance(t.x, da.Array) and t.x.chunks[1] == (3, 3, 1)
    xs, ys, loss, status, taken = dask.compute(t.x, t.y, t.loss, t.status, t.steps_taken)
    ref = minimize(problem, rule, x, 12, tol=1e-9, record="all")
    np.testing.assert_array_equal(taken, ref.steps_taken)
    np.testing.assert_array_equal(t.recorded, ref.recorded)
    ends = minimize(problem, rule, starts, 12, tol=1e-9)  # record="ends", as in memory
    np.testing.assert_array_equal(ends.x.compute(), ref.x[[0, -1]])
    np.testing.assert_array_equal(xs, ref.x)
    np.testing.assert_array_equal(ys, ref.y)
    np.testing.assert_array_equal(loss, ref.loss)
    np.testing.assert_array_equal(status, ref.status)
    assert status.dtype == np.int8 and t.rule == rule.name


def test_workers_import_neither_scaleinv_nor_sympy(client) -> None:
    import dask.array as da

    problem = CATALOGUE["comparison"]
    x = da.ones((1000, 2), chunks=250)
    assert minimize(problem, rules.pg(0.3), x, 3).x[-1].sum().compute() > 0
    probe = "sorted({m.split('.')[0] for m in __import__('sys').modules} & {'scaleinv', 'sympy'})"
    assert set(map(tuple, client.run(eval, probe).values())) == {()}


def test_rule_without_an_exported_step_is_a_clear_error() -> None:
    da = optional_module("dask.array", "distributed")
    problem = CATALOGUE["overdetermined"]
    with pytest.raises(ScaleinvError, match="bfgs cannot run on Dask workers"):
        minimize(problem, rules.bfgs(), da.ones((4, 2)), 2)


def test_cli_run_many_starts_on_a_scheduler_equals_in_memory(client, capsys) -> None:
    spec = "reports/comparison.toml"
    assert main(["run", spec, "--starts", "500", "--seed", "3", "--steps", "8"]) == 0
    local = capsys.readouterr().out
    address = client.scheduler.address
    argv = ["run", spec, "--starts", "500", "--seed", "3", "--steps", "8", "--chunk", "128"]
    assert main([*argv, "--scheduler", address]) == 0
    remote = capsys.readouterr().out
    assert remote.replace(f" on {address}", "") == local
    assert "PG      500     8" in local
    starts = many_starts(load_spec(spec), 500, 3)
    final = minimize(load_spec(spec).problem, rules.pg(0.3), starts, 8).loss[-1]
    pg_row = next(line for line in local.splitlines() if line.startswith("PG "))
    assert f"{np.median(final):.6g}" in pg_row


def test_dask_runs_obey_the_step_limit() -> None:
    da = optional_module("dask.array", "distributed")
    with pytest.raises(ScaleinvError, match="more than the limit of 1000000 steps"):
        problem = load_spec("reports/comparison.toml").problem
        minimize(problem, rules.gd(0.1), da.ones((4, 2)), 10**7)


def test_a_scheduler_without_workers_is_an_error_not_a_wait(monkeypatch, capsys) -> None:
    distributed = optional_module("distributed", "distributed")
    monkeypatch.setattr("scaleinv.numeric.distributed.CONNECT_TIMEOUT", 1.0)
    with distributed.LocalCluster(n_workers=0, dashboard_address=":0") as cluster:
        argv = ["run", "reports/comparison.toml", "--starts", "5"]
        assert main([*argv, "--scheduler", cluster.scheduler_address]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "no Dask worker answered within 1 s" in err, err


def test_cli_scheduler_errors(capsys) -> None:
    assert main(["run", "reports/comparison.toml", "--scheduler", "tcp://127.0.0.1:9"]) == 2
    assert "give --starts N as well" in capsys.readouterr().err
    optional_module("distributed", "distributed")
    argv = ["run", "reports/comparison.toml", "--starts", "5", "--scheduler", "tcp://127.0.0.1:9"]
    assert main(argv) == 2
    assert "cannot reach the Dask scheduler at 'tcp://127.0.0.1:9'" in capsys.readouterr().err
