"""Checks of command-line options shared by several commands."""

from __future__ import annotations

from scaleinv.errors import SpecError

__all__ = ["check_count"]


def check_count(option: str, value: int | None, low: int, limit: int | None, what: str) -> None:
    """A :class:`SpecError` naming ``option`` when ``value`` (if given) is below ``low`` or
    above ``limit``."""
    if value is None:
        return
    if value < low:
        kind = "non-negative" if low == 0 else "positive"
        raise SpecError("", option, f"must be a {kind} integer, got {value}")
    if limit is not None and value > limit:
        raise SpecError("", option, f"{value} {what} is more than the limit of {limit}")
