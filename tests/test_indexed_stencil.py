"""The stencil product against a point-by-point evaluation of its definition: varying and
constant diagonals (equal constants summed before scaling), periodic and zero-padded grids,
1-D and 2-D, output into a given array and accumulated, buffers reused across batch sizes."""

from __future__ import annotations

import itertools

import numpy as np
import pytest

from scaleinv.numeric.indexed_stencil import StencilProduct


def _naive(terms: list, fields: tuple[int, int], shape: tuple, periodic: bool, v: np.ndarray):
    """``(A v)[r, q] = Σ D[q] · v[c, q + δ]`` point by point (zero off a non-periodic grid)."""
    batch = len(v)
    grid = v.reshape((batch, fields[1]) + shape)
    out = np.zeros((batch, fields[0]) + shape)
    for r, c, delta, d in terms:
        full = np.broadcast_to(d, (batch,) + shape)
        for q in itertools.product(*(range(s) for s in shape)):
            at = [x + e for x, e in zip(q, delta)]
            if periodic:
                at = [a % s for a, s in zip(at, shape)]
            elif any(a < 0 or a >= s for a, s in zip(at, shape)):
                continue
            out[(slice(None), r) + q] += full[(slice(None),) + q] * grid[(slice(None), c, *at)]
    return out.reshape((batch, -1))


def _terms(shape: tuple, batch: int, rng: np.random.Generator) -> list:
    ones = (batch,) + (1,) * len(shape)
    axes = len(shape)
    unit = [tuple(int(a == b) * k for b in range(axes)) for a in range(axes) for k in (1, -1)]
    same = rng.standard_normal(ones)  # one constant shared by the four neighbours of field 0
    terms = [(0, 0, delta, same) for delta in unit]
    terms += [
        (0, 0, (0,) * axes, rng.standard_normal((batch,) + shape)),
        (0, 1, (0,) * axes, rng.standard_normal((batch,) + shape)),
        (1, 1, unit[0], rng.standard_normal(ones)),  # a constant of its own
        (1, 0, unit[-1], rng.standard_normal((batch,) + shape)),
        (1, 1, tuple(2 for _ in range(axes)), rng.standard_normal((batch,) + shape)),
    ]
    return terms


@pytest.mark.parametrize("shape", [(7,), (5, 6)])
@pytest.mark.parametrize("periodic", [True, False])
def test_stencil_product_equals_its_definition(shape: tuple, periodic: bool) -> None:
    rng = np.random.default_rng(0)
    batch = 3
    terms = _terms(shape, batch, rng)
    product = StencilProduct(terms, (2, 2), shape, periodic)
    size = 2 * int(np.prod(shape))
    for _ in range(2):  # the padded buffer is reused: a second vector is not polluted by the first
        v = rng.standard_normal((batch, size))
        expected = _naive(terms, (2, 2), shape, periodic, v)
        np.testing.assert_allclose(product(v), expected, rtol=1e-13, atol=1e-13)
    out = rng.standard_normal((batch, size))
    start = out.copy()
    assert product(v, out=out, accumulate=True) is out
    np.testing.assert_allclose(out, start + expected, rtol=1e-13, atol=1e-13)
    one = StencilProduct([(r, c, d, x[:1]) for r, c, d, x in terms], (2, 2), shape, periodic)
    np.testing.assert_allclose(one(v[:1]), expected[:1], rtol=1e-13, atol=1e-13)


def test_a_row_without_terms_is_zero_and_fields_may_differ() -> None:
    # 1 output field from 2 input fields, and 2 from 1: rows with no term come out as zeros
    rng = np.random.default_rng(1)
    shape = (6,)
    d = rng.standard_normal((2,) + shape)
    wide = StencilProduct([(0, 1, (1,), d)], (1, 2), shape, True)
    v = rng.standard_normal((2, 12))
    np.testing.assert_allclose(wide(v), _naive([(0, 1, (1,), d)], (1, 2), shape, True, v))
    tall = StencilProduct([(1, 0, (-1,), d)], (2, 1), shape, False)
    w = rng.standard_normal((2, 6))
    result = tall(w)
    assert not result[:, :6].any()
    np.testing.assert_allclose(result, _naive([(1, 0, (-1,), d)], (2, 1), shape, False, w))


def test_a_product_reads_another_products_padded_buffer_and_writes_into_its_interior() -> None:
    # C·v from J's buffer (padded as wide), J·v written straight into Jᵀ's buffer
    rng = np.random.default_rng(2)
    shape, batch = (5, 4), 2
    wide = _terms(shape, batch, rng)  # reaches 2 points
    near = [(0, 1, (0, 0), rng.standard_normal((batch,) + shape))]  # reaches none
    first = StencilProduct(wide, (2, 2), shape, True)
    second = StencilProduct(near, (2, 2), shape, True, width=first.width)
    assert second.width == first.width == [2, 2]
    v = rng.standard_normal((batch, 40))
    padded = first.load(v)
    np.testing.assert_allclose(second.apply(padded), _naive(near, (2, 2), shape, True, v))
    then = StencilProduct(near, (2, 2), shape, True)
    first.apply(padded, out=then.interior(batch))
    expected = _naive(near, (2, 2), shape, True, _naive(wide, (2, 2), shape, True, v))
    np.testing.assert_allclose(then.apply(then.wrap(batch)), expected, rtol=1e-13, atol=1e-13)


def test_offsets_wider_than_a_periodic_grid_wrap_more_than_once() -> None:
    rng = np.random.default_rng(3)
    terms = [(0, 0, (3,), rng.standard_normal((1, 2))), (0, 0, (-2,), rng.standard_normal((1, 1)))]
    v = rng.standard_normal((1, 2))
    product = StencilProduct(terms, (1, 1), (2,), True)
    np.testing.assert_allclose(product(v), _naive(terms, (1, 1), (2,), True, v), rtol=1e-13)
