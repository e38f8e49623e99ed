"""Age rule function: an `aws:rmq` batch in, one verdict per ticket recorded in MySQL."""

from __future__ import annotations

from typing import Any

from rule import judge

from credit.rule_function import RuleFunction

FUNCTION = RuleFunction(rule="age", judge=judge)


def handler(event: dict[str, Any], context: Any) -> dict[str, Any]:
    return FUNCTION.handle(event)
