"""The claims ledger: every verdict computed and asserted, quotes verbatim, numeric twins for the
claims the ledger decides, and the verdict logic itself."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import sympy as sp

from scaleinv import Problem, minimize, rules
from scaleinv.analysis.claims import (
    CLAIMS,
    Claim,
    ClaimVerdict,
    LedgerRow,
    claim,
    ledger,
    run_ledger,
)
from scaleinv.analysis.claims.checks import Finding, mechanics
from scaleinv.analysis.claims.checks_pg import intermediate_step
from scaleinv.analysis.invariance import InputScaling, trajectory_invariance
from scaleinv.numeric.status import Status

CHAPTER = Path("/work/shared/seed/scale-invariance-and-inversion.txt")


@pytest.fixture(scope="module")
def report():
    return run_ledger()


def test_every_claim_gets_the_verdict_the_ledger_was_written_with(report) -> None:
    assert [r.id for r in report.rows] == [c.id for c in CLAIMS]
    for row in report.rows:
        assert row.verdict is row.claim.expected, (row.id, row.result.detail)
        assert not row.result.detail.text().startswith("check could not finish")
        assert row.result.derivation, row.id
    assert report.regressions == ()
    assert sum(report.counts.values()) == len(CLAIMS)
    assert report.counts[ClaimVerdict.CORRECTED] >= 2  # at least the two slips DESIGN.md names


def test_the_design_slips_are_corrected(report) -> None:
    sign = report.row("gd-loss-change-sign")
    assert sign.verdict is ClaimVerdict.CORRECTED and "+η (∂L/∂x)²" in sign.summary().text()
    remainder = report.row("pg-quotient-remainder")
    assert remainder.verdict is ClaimVerdict.CORRECTED and "O(Δy)" in remainder.summary().text()
    for row in report.rows:
        assert bool(row.result.correction) == (row.verdict is ClaimVerdict.CORRECTED)


def test_ids_are_unique_and_claims_carry_their_text() -> None:
    assert len({c.id for c in CLAIMS}) == len(CLAIMS)
    for c in CLAIMS:
        assert c.quote and c.statement and c.section
        assert bool(c.correction) == (c.expected is ClaimVerdict.CORRECTED)
    with pytest.raises(KeyError, match="unknown claim 'nope'"):
        claim("nope")


@pytest.mark.skipif(not CHAPTER.exists(), reason="the chapter text is not on this machine")
def test_quotes_are_verbatim_and_sections_are_chapter_headings() -> None:
    text = CHAPTER.read_text()
    headings = {line.strip().rstrip("#") for line in text.splitlines()}
    for c in CLAIMS:
        assert c.quote in text, c.id
        assert c.section.split(":")[0] in headings, c.section
        sub = c.section.partition(": ")[2]
        assert not sub or any(h.startswith(sub) for h in headings), c.section


def _fake(text, corrected=None, boom=False):
    def run(budget: float) -> Finding:
        if boom:
            raise ValueError("broken check")
        return Finding(text, (), "fake", corrected)

    return Claim("fake", "s", "q", "st", ClaimVerdict.HOLDS, run, "the fix")


@pytest.mark.parametrize(
    ("text", "corrected", "verdict"),
    [
        (True, None, ClaimVerdict.HOLDS),
        (False, True, ClaimVerdict.CORRECTED),
        (False, False, ClaimVerdict.FAILS),
        (False, None, ClaimVerdict.FAILS),
        (None, True, ClaimVerdict.UNDECIDED),
    ],
)
def test_verdict_logic(text, corrected, verdict) -> None:
    result = _fake(text, corrected).check()
    assert result.verdict is verdict
    assert result.correction.text() == ("the fix" if verdict is ClaimVerdict.CORRECTED else "")
    row = LedgerRow(_fake(text, corrected), result, 0.0)
    assert row.regression == (verdict is ClaimVerdict.FAILS)


def test_a_crashing_check_is_undecided_not_fatal() -> None:
    result = _fake(True, boom=True).check()
    assert (
        result.verdict is ClaimVerdict.UNDECIDED
        and "ValueError: broken check" in result.detail.text()
    )


def test_run_ledger_subset_and_regressions(monkeypatch) -> None:
    monkeypatch.setattr(ledger, "_BY_ID", {"fake": _fake(False)})
    report = run_ledger(ids=["fake"])
    assert [r.verdict for r in report.rows] == [ClaimVerdict.FAILS]
    assert report.regressions == report.rows


# -- numeric twins of the ledger's symbolic verdicts --------------------------------------------


def test_twin_gd_loss_change_is_a_decrease_of_eta_grad_squared() -> None:
    p = Problem.from_strings(["x1", "x2"], ["x1", "alpha*x2"], "y0**2 + y1**2", params={"alpha": 3})
    k = p.compile()
    rng = np.random.default_rng(5)
    for x in rng.uniform(-2, 2, size=(5, 2)):
        g = k.gradient(x)
        for eta in (1e-4, 1e-5):
            drop = k.loss(x) - k.loss(x - eta * g)
            assert drop > 0  # the chapter's sign would make this negative
            assert drop / eta == pytest.approx(g @ g, rel=1e-2)


def test_twin_gd_step_bound_on_the_toy() -> None:
    alpha = 30.0
    p = Problem.from_strings(
        ["x1", "x2"], ["x1", "alpha*x2"], "y0**2 + y1**2", params={"alpha": alpha}
    )
    below = minimize(p, rules.gd(0.95 / alpha**2), np.array([1.0, 1.0]), 200)
    above = minimize(p, rules.gd(1.05 / alpha**2), np.array([1.0, 1.0]), 200)
    assert abs(below.x[-1, 1]) < 1e-3 and abs(above.x[-1, 1]) > 1.0
    assert below.x[-1, 0] > 0.5  # x1 has barely moved: (1 − 1.9/α²)^200 ≈ 0.66


@pytest.mark.parametrize("name", ["gd", "newton", "ig", "pg"])
def test_twin_toy_trajectories_under_alpha(name) -> None:
    p = Problem.from_strings(["x1", "x2"], ["x1", "alpha*x2"], "y0**2 + y1**2", params={"alpha": 3})
    eta = 0.05 if name == "gd" else 0.3
    c = trajectory_invariance(
        p, rules.REGISTRY[name](eta), InputScaling({"x2": "1/alpha"}), [1.5, 0.8], 8, {"alpha": 3}
    )
    assert (c.max_rel < 1e-10) == (name != "gd")


def test_twin_composition_y_steps_at_random_points() -> None:
    p = Problem.from_strings(["x0", "x1"], ["x0", "x1**2"], loss="y0**2 + y1**2")
    k = p.compile()
    x = np.random.default_rng(6).uniform(0.5, 2, size=(6, 2))
    dy = 0.3 * k.newton_dy(k.P(x))
    for name, expected in (("newton", False), ("ig", True), ("pg", True)):
        dx, _, _ = rules.REGISTRY[name](0.3).compile(p).step(x, None)
        change = (
            k.P(x + dx) - k.P(x) if name == "pg" else np.einsum("...ij,...j", k.jacobian(x), dx)
        )
        assert np.allclose(change, dy) == expected
        eta = sp.Symbol("eta", positive=True)
        verdict = intermediate_step(p, rules.REGISTRY[name](eta)).verdict.value
        assert (verdict == "proved") == expected


def test_twin_newton_has_no_step_on_alpha_x_and_cancels_alpha_on_its_square() -> None:
    linear = Problem.from_strings(["x"], ["alpha*x"], loss="y0", params={"alpha": 4})
    _, _, status = rules.newton(1.0).compile(linear).step(np.array([0.3]), None)
    assert Status(int(status)) is Status.SINGULAR
    for alpha in (0.1, 10.0):
        square = Problem.from_strings(["x"], ["(alpha*x)**2"], loss="y0", params={"alpha": alpha})
        dx, _, _ = rules.newton(0.5).compile(square).step(np.array([0.3]), None)
        assert dx[0] == pytest.approx(-0.15)


@pytest.mark.parametrize(("name", "changes"), [("gd", True), ("newton", False), ("ig", False)])
def test_twin_units_a_change_of_time_unit_changes_only_gd(name, changes) -> None:
    """x1 in seconds vs minutes (g rescaled): the physical step of x1 must not depend on it."""
    seconds = mechanics()
    minutes = seconds.with_params(g=9.81 * 3600.0)
    x_s = np.array([2.0, 1.5])
    x_m = np.array([2.0, 1.5 / 60.0])
    rule = rules.REGISTRY[name](0.1)
    dx_s, _, _ = rule.compile(seconds).step(x_s, None)
    dx_m, _, _ = rule.compile(minutes).step(x_m, None)
    same = np.allclose(dx_s, dx_m * np.array([1.0, 60.0]), rtol=1e-9)
    assert same != changes


def test_twin_time_reversal_of_explicit_euler() -> None:
    k, dt, x = 0.7, 0.1, 1.3
    forward = x + dt * (-k * x)
    back = forward - dt * (-k * forward)
    assert back / x == pytest.approx(1 - (k * dt) ** 2) and back != pytest.approx(x, rel=1e-6)


def test_twin_gradient_length_grows_for_x4_and_shrinks_for_a_saturating_loss() -> None:
    r = np.linspace(0.8, 3.0, 12)
    assert np.all(np.diff(4 * r**3) > 0)
    assert np.all(np.diff(2 * r * np.exp(-(r**2))) < 0)


def test_gd_counterexample_of_the_toy_invariance_holds_up_numerically() -> None:
    from scaleinv.analysis.claims.checks import _toy_invariance

    report = _toy_invariance("gd", 20.0)
    ce = report.counterexample
    u = np.array([ce.point["u0"], ce.point["u1"]])
    alpha, eta = ce.params["alpha"], ce.params["eta"]
    x = np.array([u[0], u[1] / alpha])  # x = g(u): x2 = u2/alpha
    toy = Problem.from_strings(
        ["x1", "x2"], ["x1", "alpha*x2"], "y0**2 + y1**2", params={"alpha": alpha}
    )
    plain = Problem.from_strings(["u0", "u1"], ["u0", "u1"], "y0**2 + y1**2")
    dx, _, _ = rules.gd(eta).compile(toy).step(x, None)
    du, _, _ = rules.gd(eta).compile(plain).step(u, None)
    assert dx == pytest.approx(ce.lhs) and np.array([du[0], du[1] / alpha]) == pytest.approx(ce.rhs)
    assert np.max(np.abs(dx - np.array(ce.rhs))) > 1e-3


def test_twin_composite_hessian_by_finite_differences() -> None:
    def loss(y):
        return np.sin(y) + y**3

    def inner(x):
        return np.exp(0.3 * x) + x**2

    h = 1e-4
    for x in (-0.7, 0.4, 1.3):
        y, dy, d2y = inner(x), 0.3 * np.exp(0.3 * x) + 2 * x, 0.09 * np.exp(0.3 * x) + 2
        composed = (loss(inner(x + h)) - 2 * loss(inner(x)) + loss(inner(x - h))) / h**2
        formula = (-np.sin(y) + 6 * y) * dy**2 + (np.cos(y) + 3 * y**2) * d2y
        assert composed == pytest.approx(formula, rel=1e-5)


def test_twin_newton_step_in_y_is_eta_times_the_distance_to_the_target() -> None:
    p = Problem.from_strings(
        ["x0", "x1"], ["x0*x1", "x0 + x1"], target=["a", "b"], params={"a": 1.5, "b": -2}
    )
    y = np.random.default_rng(7).normal(size=(5, 2))
    assert p.compile().newton_dy(y) == pytest.approx(np.array([1.5, -2.0]) - y)


CODE_TOKENS = ("**", "^", "Interval", "Derivative(", "!=", "_PG", "_GD", "Piecewise(", "Eq(")


def test_statements_are_structured_and_print_without_code_tokens(report) -> None:
    """Statements, corrections and findings hold SymPy parts; LaTeX and text have no code."""
    from scaleinv.reports.latex import escape

    with_math = 0
    for row in report.rows:
        for st in (row.claim.statement, row.result.correction, row.result.detail):
            with_math += any(not isinstance(p, str) for p in st.parts)
            text_parts = "".join(p for p in st.parts if isinstance(p, str))
            assert not any(t in text_parts for t in CODE_TOKENS), (row.id, text_parts)
            # the terminal writes subscripts Δx_GD and fractional powers 2^(2/3)
            terminal = st.text().replace("Δx_", "Δx").replace("^(", "(")
            assert not any(t in terminal for t in CODE_TOKENS), (row.id, st.text())
            pdf = st.latex_parts(escape)
            assert "\\textasciicircum" not in pdf and "\\_" not in pdf, (row.id, pdf)
            assert pdf.isascii(), (row.id, pdf)  # every symbol reached LaTeX as LaTeX
    assert with_math > len(report.rows)
    sign = report.row("gd-loss-change-sign").result.detail
    derivative = next(p for p in sign.parts if not isinstance(p, str))
    assert derivative.has(sp.Derivative)  # an expression, not a pre-rendered string
