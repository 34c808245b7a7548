"""The claims ledger: every checkable statement of the chapter, each an executable check.

The package's public names are importable from here (``from scaleinv.analysis.claims import
run_ledger``); the modules hold one concept each:

- :mod:`~scaleinv.analysis.claims.ledger`: :class:`Claim`, :data:`CLAIMS`, :func:`run_ledger`
  and the verdicts (:class:`ClaimVerdict`, :class:`LedgerReport`);
- :mod:`~scaleinv.analysis.claims.table`: the entries (section, quote, statement, check);
- :mod:`~scaleinv.analysis.claims.statement`: statements as text and LaTeX (:class:`Statement`);
- :mod:`~scaleinv.analysis.claims.checks` (GD, quasi-Newton, IG) and
  :mod:`~scaleinv.analysis.claims.checks_pg` (PG): the checks;
- :mod:`~scaleinv.analysis.claims.pg_identities` (and its 1-D part
  :mod:`~scaleinv.analysis.claims.pg_identities_1d`): PG's exactness, its agreement with IG,
  the average gradient, the quotient remainder and the local inverse's limit.
"""

from __future__ import annotations

from scaleinv.analysis.claims.ledger import (
    CLAIMS,
    LEDGER_BUDGET,
    Claim,
    ClaimResult,
    ClaimVerdict,
    LedgerReport,
    LedgerRow,
    claim,
    run_ledger,
)
from scaleinv.analysis.claims.pg_identities import (
    average_gradient,
    local_inverse_limit,
    pg_exactness,
    pg_ig_agreement,
    quotient_remainder,
)
from scaleinv.analysis.claims.statement import Statement

__all__ = ["ClaimVerdict", "ClaimResult", "Claim", "CLAIMS", "LedgerRow", "LedgerReport"]
__all__ += ["run_ledger", "claim", "LEDGER_BUDGET", "Statement"]
__all__ += ["pg_exactness", "pg_ig_agreement", "average_gradient", "quotient_remainder"]
__all__ += ["local_inverse_limit"]
