"""The value rule: pure, no I/O. Passes when the requested value is at most the maximum."""

from __future__ import annotations

import os
from decimal import Decimal

from credit import settings
from credit.domain import Verdict, validate_value


def max_value(explicit: Decimal | None = None) -> Decimal:
    """The threshold: explicit argument, else MAX_VALUE from the environment, else 100000."""
    if explicit is not None:
        return explicit
    raw = settings.get(settings.MAX_VALUE, environ=os.environ)
    try:
        return Decimal(raw)
    except ArithmeticError as exc:
        raise settings.SettingsError(f"{settings.MAX_VALUE} must be a number, got {raw!r}") from exc


def check_value(value: Decimal, maximum: Decimal) -> Verdict:
    if value <= maximum:
        return Verdict(True, f"value {value} is at most the maximum {maximum}")
    return Verdict(False, f"value {value} is above the maximum {maximum}")


def judge(raw: object, maximum: Decimal | None = None) -> Verdict:
    """Validate the raw field (ValueError when it is not a value) and apply the rule."""
    return check_value(validate_value(raw), max_value(maximum))
