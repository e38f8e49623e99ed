"""EventBridge schedule expressions: `rate(5 minutes)` and `cron(0 3 * * ? *)`, with their times.

EventBridge's cron has six fields (minutes, hours, day of month, month, day of week, year),
`?` in one of the two day fields, days of the week numbered 1 (SUN) to 7 (SAT), `L`, `W` and
`#`. croniter computes the times once the expression is put in its five-field dialect; the year
field is checked here. Times are UTC, as EventBridge's rules fire.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

from croniter import croniter

_RATE = re.compile(r"^rate\((\d+) (minute|minutes|hour|hours|day|days)\)$")
_CRON = re.compile(r"^cron\((.*)\)$")
_UNIT_SECONDS = {"minute": 60, "hour": 3600, "day": 86400}
_DAY_NAMES = ("SUN", "MON", "TUE", "WED", "THU", "FRI", "SAT")
_YEARS = (1970, 2199)


class ScheduleError(ValueError):
    """The expression is not one EventBridge accepts; the message says what is wrong."""


@dataclass(frozen=True)
class Rate:
    """Every `seconds`, counted from when the rule was created (here: when the runtime starts)."""

    seconds: int

    def next_after(self, moment: datetime, started: datetime) -> datetime:
        elapsed = (moment - started).total_seconds()
        periods = int(elapsed // self.seconds) + 1
        return started + timedelta(seconds=periods * self.seconds)


@dataclass(frozen=True)
class Cron:
    """A cron expression in croniter's dialect, plus EventBridge's year field."""

    expression: str
    years: frozenset[int] | None  # None: every year

    def next_after(self, moment: datetime, started: datetime) -> datetime:
        times = croniter(self.expression, moment.astimezone(UTC))
        for _ in range(10_000):
            candidate: datetime = times.get_next(datetime)
            if self.years is None or candidate.year in self.years:
                return candidate
            if candidate.year > max(self.years):
                break
        raise ScheduleError("the schedule never fires again")


def parse(expression: str) -> Rate | Cron:
    """Rate or Cron for an EventBridge expression; ScheduleError saying why it is refused."""
    text = expression.strip()
    rate = _RATE.match(text)
    if rate:
        return _rate(int(rate.group(1)), rate.group(2))
    cron = _CRON.match(text)
    if cron:
        return _cron(cron.group(1).split())
    raise ScheduleError(
        f"{expression!r} is neither rate(<n> <unit>) nor cron(<6 fields>) "
        "(one-time at() schedules are EventBridge Scheduler's, not a rule's)"
    )


def _rate(value: int, unit: str) -> Rate:
    if value < 1:
        raise ScheduleError("a rate must be a positive whole number")
    singular = not unit.endswith("s")
    if singular != (value == 1):
        expected = unit.rstrip("s") if value == 1 else unit.rstrip("s") + "s"
        raise ScheduleError(f"rate({value} {unit}) must be written rate({value} {expected})")
    return Rate(value * _UNIT_SECONDS[unit.rstrip("s")])


def _cron(fields: list[str]) -> Cron:
    if len(fields) != 6:
        raise ScheduleError(f"cron takes 6 fields (minutes to year), got {len(fields)}")
    minutes, hours, day_of_month, month, day_of_week, year = fields
    if (day_of_month == "?") == (day_of_week == "?"):
        raise ScheduleError("exactly one of day-of-month and day-of-week must be '?'")
    if "LW" in day_of_month.upper():
        raise ScheduleError("'LW' is not supported locally")
    expression = " ".join(
        (minutes, hours, _any(day_of_month), month, _any(_day_of_week(day_of_week)))
    )
    if not croniter.is_valid(expression):
        raise ScheduleError(f"cron({' '.join(fields)}) is not a valid cron expression")
    return Cron(expression, _years(year))


def _any(field: str) -> str:
    return "*" if field == "?" else field


def _day_of_week(field: str) -> str:
    """EventBridge numbers days 1 (SUN) to 7 (SAT); croniter reads names, and `nL` as `L<n-1>`."""
    last = re.fullmatch(r"([1-7])L", field, re.IGNORECASE)
    if last:
        return f"L{int(last.group(1)) - 1}"

    def name(match: re.Match[str]) -> str:
        number = int(match.group(0))
        if not 1 <= number <= 7:
            raise ScheduleError(f"day-of-week {number} is outside 1 (SUN) to 7 (SAT)")
        return _DAY_NAMES[number - 1]

    # Numbers before '#' are days, after it the week of the month (FRI#3 stays 3).
    day, sep, nth = field.partition("#")
    return re.sub(r"\d+", name, day) + sep + nth


def _years(field: str) -> frozenset[int] | None:
    if field in ("*", "?"):
        return None
    years: set[int] = set()
    for part in field.split(","):
        span, _, step = part.partition("/")
        first, _, last = span.partition("-")
        try:
            low = _YEARS[0] if first == "*" else int(first)
            high = int(last) if last else (_YEARS[1] if step or first == "*" else low)
            years.update(range(low, high + 1, int(step) if step else 1))
        except ValueError:
            raise ScheduleError(f"year field {field!r} is not valid") from None
    if not years or min(years) < _YEARS[0] or max(years) > _YEARS[1]:
        raise ScheduleError(f"years must lie in {_YEARS[0]}-{_YEARS[1]}, got {field!r}")
    return frozenset(years)
