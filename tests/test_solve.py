"""runtime.solve: closed form for 1x1 and 2x2 systems, LAPACK for the rest, same flags."""

from __future__ import annotations

import numpy as np
import pytest

from scaleinv.numeric import runtime


def _systems(k: int, size: int, log_cond: float, seed: int = 0):
    """Random ``k x k`` systems with condition number ``10**log_cond``, their right-hand sides
    and solutions accurate to the last bit (refined in extended precision)."""
    rng = np.random.default_rng(seed)
    u, _ = np.linalg.qr(rng.normal(size=(size, k, k)))
    v, _ = np.linalg.qr(rng.normal(size=(size, k, k)))
    sigma = np.logspace(0, -log_cond, k) * rng.uniform(0.1, 10, (size, 1))
    a = u @ (sigma[..., None] * v)
    b = rng.normal(size=(size, k))
    x = np.linalg.solve(a, b[..., None])[..., 0]
    wide = a.astype(np.longdouble)
    for _ in range(3):
        r = b - np.einsum("sij,sj->si", wide, x.astype(np.longdouble))
        x = x + np.linalg.solve(a, r.astype(float)[..., None])[..., 0]
    return a, b, x


@pytest.mark.parametrize("k", [1, 2, 3, 4])
@pytest.mark.parametrize("log_cond", [0, 6, 12])
def test_solve_is_as_accurate_as_lapack(k, log_cond) -> None:
    a, b, exact = _systems(k, 2000, log_cond if k > 1 else 0)
    x, status = runtime.solve(a, b)
    lapack = np.linalg.solve(a, b[..., None])[..., 0]

    def error(z):
        return np.linalg.norm(z - exact, axis=-1) / np.linalg.norm(exact, axis=-1)

    assert not status.any()
    # forward error within a small factor of LU's, sample by sample where LU's is not tiny
    scale = np.maximum(error(lapack), 1e-15 * 10.0**log_cond)
    assert np.quantile(error(x) / scale, 0.99) < 10
    assert np.max(error(x)) <= 100 * max(np.max(error(lapack)), 1e-15)


def test_singular_and_non_finite_samples_among_regular_ones() -> None:
    a = np.array(
        [
            [[2.0, 0.0], [0.0, 4.0]],
            [[1.0, 1.0], [1.0, 1.0]],  # exactly singular
            # singular to working precision, but LU's pivot is -4.4e-16, not 0: LU's (huge)
            # answer, as alone (a sample's status never depends on its batch-mates)
            [[1.0, 2.0], [2.0, 4.0 * (1 + 2**-52)]],
            [[np.nan, 0.0], [0.0, 1.0]],
            [[1e-300, 0.0], [0.0, 1e-300]],  # tiny but regular: LAPACK's answer
        ]
    )
    x, status = runtime.solve(a, np.ones((5, 2)))
    assert status.tolist() == [0, 5, 0, 0, 0]
    np.testing.assert_array_equal(x[:2], [[0.5, 0.25], [0, 0]])
    np.testing.assert_array_equal(x[2], np.linalg.solve(a[2], np.ones(2)))
    assert np.abs(x[2]).min() > 1e14
    assert np.isnan(x[3]).all()  # garbage in: not finite, for the driver to call diverged
    np.testing.assert_allclose(x[4], [1e300, 1e300])


def test_solve_broadcasts_and_keeps_shapes() -> None:
    a = np.array([[3.0, 1.0], [1.0, 2.0]])
    b = np.arange(12.0).reshape(2, 3, 2)
    x, status = runtime.solve(a, b)
    assert x.shape == (2, 3, 2) and status.shape == (2, 3)
    np.testing.assert_allclose(np.einsum("ij,...j->...i", a, x), b, atol=1e-13)
    x, status = runtime.solve(np.array([[4.0]]), np.array([2.0]))
    assert x.tolist() == [0.5] and status.shape == ()


def test_the_2x2_closed_form_is_cramers_rule_bit_for_bit() -> None:
    # the in-place form of the solve computes the same products and differences: written out
    # here sample by sample in plain Python floats
    a, b, _ = _systems(2, 300, 4)
    a[7, 1, 1] = np.inf  # one non-finite sample among regular ones: told apart, the rest kept
    x, status = runtime.solve(a, b)
    for s in range(300):
        (a00, a01), (a10, a11) = a[s].tolist()
        b0, b1 = b[s].tolist()
        det = a00 * a11 - a01 * a10
        want = [(a11 * b0 - a01 * b1) / det, (a00 * b1 - a10 * b0) / det]
        if s != 7:
            assert x[s].tolist() == want
    assert status.tolist() == [0] * 300
    assert not np.isfinite(x[7]).all()


@pytest.mark.parametrize("n", [1, 2, 3])
def test_squared_norms_are_einsums_sums_bit_for_bit(n) -> None:
    g = (
        np.random.default_rng(n).normal(size=(500, n))
        * 10.0 ** np.arange(-3, 3).repeat(84)[:500, None]
    )
    g[3] = np.nan
    got = runtime._squared_norms(g)
    want = np.einsum("...i,...i->...", g, g)
    np.testing.assert_array_equal(got, want)


@pytest.mark.parametrize("tol", [1e-6, 1e-9, 0.1, 1.0, 3.0, 1e-160, 5e-324, 0.0, 1e200, np.inf])
def test_the_squared_limit_accepts_exactly_the_norms_sqrt_accepts(tol) -> None:
    # every float near the limit (and NaN, infinity, zero) is classified as sqrt(n) <= tol does
    limit = runtime.squared_limit(tol)
    near = [limit]
    with np.errstate(over="ignore"):
        for direction in (-np.inf, np.inf):
            t = limit
            for _ in range(40):
                t = np.nextafter(t, direction)
                near.append(t)
    n = np.array([*near, min(tol, 1e150) ** 2, 0.0, np.inf, np.nan, 1e-300, 1e300])
    n = n[~(n < 0)]
    np.testing.assert_array_equal(n <= limit, np.sqrt(n) <= tol)


def test_a_negative_or_nan_tolerance_accepts_no_norm() -> None:
    n = np.array([0.0, 1e-300, 1.0, np.inf, np.nan])
    for tol in (-1.0, np.nan):
        assert not (n <= runtime.squared_limit(tol)).any()
        assert not (np.sqrt(n) <= tol).any()


def test_diagonal_systems_are_divided_and_flagged_as_cramers_rule_flags_them() -> None:
    rng = np.random.default_rng(5)
    d = rng.uniform(0.5, 20.0, (400, 2)) * rng.choice([-1.0, 1.0], (400, 2))
    d[10, 1] = 0.0  # exactly singular
    d[11] = [1.0, 1e-14]  # beyond Cramer's trust (‖a‖²/|det| > 1e13), not singular: LAPACK
    d[12, 0] = -0.0  # a signed zero on the diagonal is singular too
    a = np.zeros((400, 2, 2))
    a[:, 0, 0], a[:, 1, 1] = d[:, 0], d[:, 1]
    b = rng.normal(size=(400, 2))
    x, status = runtime.solve(a, b)
    singular = np.isin(np.arange(400), [10, 12])
    assert status.tolist() == np.where(singular, runtime.SINGULAR, runtime.RUNNING).tolist()
    assert (x[singular] == 0).all()
    np.testing.assert_array_equal(x[~singular], b[~singular] / d[~singular])  # LAPACK's values
    for s in np.flatnonzero(~singular):  # within an ulp of Cramer's rule written out
        (a00, a01), (a10, a11) = a[s].tolist()
        det = a00 * a11 - a01 * a10
        want = [(a11 * b[s, 0] - a01 * b[s, 1]) / det, (a00 * b[s, 1] - a10 * b[s, 0]) / det]
        np.testing.assert_allclose(x[s], want, rtol=3e-16)
    a[200, 0, 1] = 1e-3  # one system that is not diagonal: its block goes through Cramer
    x, status = runtime.solve(a, b)
    np.testing.assert_allclose(x[200], np.linalg.solve(a[200], b[200]), rtol=1e-14)
    np.testing.assert_allclose(x[~singular], b[~singular] / d[~singular], rtol=1e-14, atol=1e-3)


def test_a_sample_solved_finitely_keeps_its_solve_whatever_shares_its_batch() -> None:
    """A matrix singular to working precision that LU still solves finitely gets the same
    result in a batch with an exactly singular matrix as alone: statuses never depend on
    which other samples share a call (a chunk, a ``--starts`` run)."""
    from scaleinv.numeric.runtime import solve

    near = np.array([[1.0, 1.0], [1.0, 1.0 + 4e-16]])  # condition ≈ 1e16, LU pivot 4.4e-16
    exact = np.array([[1.0, 1.0], [1.0, 1.0]])
    b = np.array([1.0, 2.0])
    for a, rhs in (
        (np.stack([near, exact]), np.stack([b, b])),  # Cramer's rule trusts neither
        (np.stack([_bordered(near), _bordered(exact)]), np.stack([np.append(b, 1.0)] * 2)),
    ):
        x, status = solve(a, rhs)
        assert status.tolist() == [0, 5]
        alone = solve(a[:1], rhs[:1])
        assert alone[1].tolist() == [0]
        np.testing.assert_array_equal(x[0], alone[0][0])
        assert np.all(x[1] == 0)


def _bordered(a: np.ndarray) -> np.ndarray:
    """``a`` with a row and column of the identity appended (3x3: LAPACK, no Cramer)."""
    out = np.eye(3)
    out[:2, :2] = a
    return out


def test_a_sample_of_a_minimize_run_ends_as_it_does_alone() -> None:
    """Newton on a problem whose runs cross near-singular Hessians: each start of a batch
    ends with the status and point it has when run alone."""
    from scaleinv import Problem, minimize, rules

    problem = Problem.from_strings(
        ["x0", "x1"], ["x0*exp(x1)", "x0 + x1**3 - 1.5*x1"], target=[2.0, 0.5]
    )
    x0 = np.random.default_rng(0).uniform(-2, 2, (200, 2))
    batch = minimize(problem, rules.newton(1.0), x0, 20, tol=1e-10, engine="numpy")
    for i in range(len(x0)):
        alone = minimize(problem, rules.newton(1.0), x0[i : i + 1], 20, tol=1e-10, engine="numpy")
        assert alone.status[0] == batch.status[i], i
        np.testing.assert_array_equal(alone.x[:, 0], batch.x[:, i])
