"""The age rule: pure, no I/O. Passes when the applicant is at least the minimum age."""

from __future__ import annotations

import os

from credit import settings
from credit.domain import Verdict, validate_age


def min_age(explicit: int | None = None) -> int:
    """The threshold: explicit argument, else MIN_AGE from the environment, else 18."""
    return settings.get_int(settings.MIN_AGE, explicit, os.environ)


def check_age(age: int, minimum: int) -> Verdict:
    if age >= minimum:
        return Verdict(True, f"age {age} is at least the minimum {minimum}")
    return Verdict(False, f"age {age} is below the minimum {minimum}")


def judge(raw: object, minimum: int | None = None) -> Verdict:
    """Validate the raw field (ValueError when it is not an age) and apply the rule."""
    return check_age(validate_age(raw), min_age(minimum))
