"""EventBridge schedule expressions and the times they fire."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest

from declarations.schedules import ScheduleError, parse

START = datetime(2026, 12, 4, 12, 0, 30, tzinfo=UTC)  # a Friday


@pytest.mark.parametrize(
    ("expression", "expected"),
    [
        ("rate(1 minute)", datetime(2026, 12, 4, 12, 1, 30, tzinfo=UTC)),
        ("rate(5 minutes)", datetime(2026, 12, 4, 12, 5, 30, tzinfo=UTC)),
        ("rate(2 hours)", datetime(2026, 12, 4, 14, 0, 30, tzinfo=UTC)),
        ("cron(0 3 * * ? *)", datetime(2026, 12, 5, 3, 0, tzinfo=UTC)),
        ("cron(0/15 * * * ? *)", datetime(2026, 12, 4, 12, 15, tzinfo=UTC)),
        ("cron(0 18 ? * MON-FRI *)", datetime(2026, 12, 4, 18, 0, tzinfo=UTC)),
        ("cron(0 10 ? * 2 *)", datetime(2026, 12, 7, 10, 0, tzinfo=UTC)),  # 2 is MON
        ("cron(0 10 ? * 6#3 *)", datetime(2026, 12, 18, 10, 0, tzinfo=UTC)),  # 3rd FRI
        ("cron(0 10 ? * 6L *)", datetime(2026, 12, 25, 10, 0, tzinfo=UTC)),  # last FRI
        ("cron(0 10 L * ? *)", datetime(2026, 12, 31, 10, 0, tzinfo=UTC)),
        ("cron(0 0 1 1 ? 2028)", datetime(2028, 1, 1, 0, 0, tzinfo=UTC)),
    ],
)
def test_each_expression_fires_when_eventbridge_would(expression, expected):
    assert parse(expression).next_after(START, START) == expected


@pytest.mark.parametrize(
    ("expression", "problem"),
    [
        ("rate(1 minutes)", "rate(1 minute)"),
        ("rate(5 minute)", "rate(5 minutes)"),
        ("rate(0 minutes)", "positive"),
        ("rate(30 seconds)", "neither"),
        ("cron(0 3 * * *)", "6 fields"),
        ("cron(0 3 * * * *)", "exactly one of"),
        ("cron(0 3 ? * 9 *)", "outside 1 (SUN) to 7 (SAT)"),
        ("cron(0 3 ? * * 1900)", "1970-2199"),
        ("at(2026-12-04T12:00:00)", "neither"),
    ],
)
def test_expressions_eventbridge_refuses_are_refused_with_the_reason(expression, problem):
    with pytest.raises(ScheduleError, match=__import__("re").escape(problem)):
        parse(expression)
