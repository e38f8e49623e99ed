"""Lambda's event filtering for Amazon MQ mappings: FilterCriteria patterns matched on `data`.

An Amazon MQ mapping filters on the `data` key only. A message whose body is a JSON object is
matched field by field (`{"data": {"kind": ["order"]}}`); any other body is matched as the
string it is (`{"data": [{"prefix": "ABC"}]}`). A message that matches no filter is acknowledged
and dropped without an invocation, as Lambda does. The rule syntax is EventBridge's, as
Lambda's documentation lists it: exact values and null, the empty string, `prefix`, `suffix`,
`equals-ignore-case`, `numeric` comparisons and ranges, `exists`, `anything-but` (a value, a
list, or a prefix, suffix or equals-ignore-case), and `$or`; fields AND, a list's values OR.
"""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

_MISSING = object()
_NUMERIC = {
    "=": lambda a, b: a == b,
    "<": lambda a, b: a < b,
    "<=": lambda a, b: a <= b,
    ">": lambda a, b: a > b,
    ">=": lambda a, b: a >= b,
}


class FilterError(ValueError):
    """A pattern Lambda would refuse; the message says which part."""


@dataclass(frozen=True)
class Filters:
    """A mapping's FilterCriteria: a message passes when any one filter matches it."""

    patterns: tuple[Mapping[str, Any], ...]

    @classmethod
    def parse(cls, texts: Sequence[str]) -> Filters:
        patterns = []
        for text in texts:
            pattern = json.loads(text)
            if not isinstance(pattern, dict):
                raise FilterError("a filter pattern is a JSON object")
            unknown = sorted(set(pattern) - {"data", "$or"})
            if unknown:
                raise FilterError(f"Amazon MQ mappings filter on data only, not {unknown[0]!r}")
            _check(pattern)
            patterns.append(pattern)
        return cls(tuple(patterns))

    def __bool__(self) -> bool:
        return bool(self.patterns)

    def matches(self, body: bytes) -> bool:
        """Whether a message with this body reaches the function."""
        if not self.patterns:
            return True
        document = {"data": _data(body)}
        return any(_object_matches(pattern, document) for pattern in self.patterns)


def _data(body: bytes) -> Any:
    """The data field as filters see it: the JSON object the body holds, else its text."""
    try:
        text = body.decode("utf-8")
    except UnicodeDecodeError:
        return body.decode("utf-8", errors="replace")
    try:
        parsed = json.loads(text)
    except ValueError:
        return text
    return parsed if isinstance(parsed, dict) else text


def _check(pattern: Any) -> None:
    """Refuse shapes no event can match: a leaf must be a list of conditions."""
    if isinstance(pattern, dict):
        for key, value in pattern.items():
            if key == "$or":
                if not isinstance(value, list) or len(value) < 2:
                    raise FilterError("$or takes a list of at least two patterns")
                for option in value:
                    _check(option)
            elif isinstance(value, dict):
                _check(value)
            elif not isinstance(value, list) or not value:
                raise FilterError(f"{key!r} must hold a list of values or a nested pattern")


def _object_matches(pattern: Mapping[str, Any], document: Any) -> bool:
    for key, expected in pattern.items():
        if key == "$or":
            if not any(_object_matches(option, document) for option in expected):
                return False
            continue
        actual = document.get(key, _MISSING) if isinstance(document, dict) else _MISSING
        if isinstance(expected, dict):
            if actual is _MISSING or not _object_matches(expected, actual):
                return False
        elif not _leaf_matches(expected, actual):
            return False
    return True


def _leaf_matches(conditions: list[Any], actual: Any) -> bool:
    """A field matches when any condition matches it (any element, for an array)."""
    for condition in conditions:
        if isinstance(condition, dict) and "exists" in condition:
            if (actual is not _MISSING) == bool(condition["exists"]):
                return True
            continue
        if actual is _MISSING:
            continue
        values = actual if isinstance(actual, list) else [actual]
        if any(_condition_matches(condition, value) for value in values):
            return True
    return False


def _condition_matches(condition: Any, value: Any) -> bool:
    if not isinstance(condition, dict):
        return _equal(condition, value)
    ((operator, operand),) = condition.items()
    if operator == "prefix":
        return isinstance(value, str) and value.startswith(operand)
    if operator == "suffix":
        return isinstance(value, str) and value.endswith(operand)
    if operator == "equals-ignore-case":
        return isinstance(value, str) and value.casefold() == str(operand).casefold()
    if operator == "numeric":
        return _numeric(operand, value)
    if operator == "anything-but":
        return not _anything_but_excludes(operand, value)
    raise FilterError(f"unknown filter operator {operator!r}")


def _equal(expected: Any, value: Any) -> bool:
    if isinstance(expected, bool) or isinstance(value, bool):
        return expected is value
    if isinstance(expected, int | float) and isinstance(value, int | float):
        return float(expected) == float(value)
    return bool(expected == value) and type(expected) is type(value)


def _numeric(operand: list[Any], value: Any) -> bool:
    if isinstance(value, bool) or not isinstance(value, int | float):
        return False
    if len(operand) % 2:
        raise FilterError("numeric takes operator, number pairs")
    for operator, bound in zip(operand[::2], operand[1::2], strict=True):
        if operator not in _NUMERIC:
            raise FilterError(f"unknown numeric operator {operator!r}")
        if not _NUMERIC[operator](value, bound):
            return False
    return True


def _anything_but_excludes(operand: Any, value: Any) -> bool:
    if isinstance(operand, dict):
        return _condition_matches(operand, value)
    excluded = operand if isinstance(operand, list) else [operand]
    return any(_equal(item, value) for item in excluded)
