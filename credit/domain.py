"""Tickets, rule verdicts and the decision: pure code, no I/O."""

from __future__ import annotations

import enum
import json
import os
import uuid
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from decimal import Decimal
from typing import Any

from credit.errors import ValidationError

MIN_AGE_LIMIT, MAX_AGE_LIMIT = 0, 150
MAX_VALUE_LIMIT = Decimal("1000000000000")
_MAX_INT_VALUE = int(MAX_VALUE_LIMIT)
_MAX_VALUE_DIGITS = len(str(_MAX_INT_VALUE))  # digits before the point of the largest value
REQUEST_FIELDS = ("age", "value")


class TicketStatus(enum.StrEnum):
    PENDING = "PENDING"
    APPROVED = "APPROVED"
    NOT_APPROVED = "NOT_APPROVED"


class RuleStatus(enum.StrEnum):
    PENDING = "PENDING"
    PASSED = "PASSED"
    FAILED = "FAILED"


@dataclass(frozen=True)
class Verdict:
    """What one rule said about one request."""

    passed: bool
    reason: str


@dataclass(frozen=True)
class RuleResult:
    """A verdict bound to its ticket and rule: the unit a rule function records."""

    ticket: str
    rule: str
    passed: bool
    reason: str


@dataclass(frozen=True)
class CreditRequest:
    """A validated request: age in years, value in money with at most two decimals."""

    age: int
    value: Decimal

    def field(self, name: str) -> int | Decimal:
        """Return the request field a rule of that name reads."""
        if name not in REQUEST_FIELDS:
            raise KeyError(f"no request field named {name!r}")
        value: int | Decimal = getattr(self, name)
        return value


@dataclass(frozen=True)
class TicketView:
    """The ticket as GET /credit-validation shows it."""

    ticket: str
    status: TicketStatus
    rules: Mapping[str, tuple[RuleStatus, str]]
    created_at: datetime
    decided_at: datetime | None = None
    extra: Mapping[str, Any] = field(default_factory=dict)

    def to_dict(self) -> dict[str, Any]:
        return {
            "ticket": self.ticket,
            "status": self.status.value,
            "rules": {
                name: {"status": status.value, "reason": reason}
                for name, (status, reason) in sorted(self.rules.items())
            },
            "created_at": iso(self.created_at),
            "decided_at": iso(self.decided_at) if self.decided_at else None,
        }

    def to_json(self) -> bytes:
        """Exactly json.dumps(self.to_dict(), separators=(",", ":")), built without the
        generic encoder: every view written to Redis passes through here."""
        rules = ",".join(
            f'{json_string(name)}:{{"status":"{status.value}","reason":{json_string(reason)}}}'
            for name, (status, reason) in sorted(self.rules.items())
        )
        decided = f'"{iso(self.decided_at)}"' if self.decided_at else "null"
        return (
            f'{{"ticket":{json_string(self.ticket)},"status":"{self.status.value}",'
            f'"rules":{{{rules}}},"created_at":"{iso(self.created_at)}","decided_at":{decided}}}'
        ).encode()

    @property
    def decided(self) -> bool:
        return self.status is not TicketStatus.PENDING

    @property
    def version(self) -> int:
        """How many rules have reported. Verdicts are only ever added, and the decision
        follows from them, so of two views of one ticket the higher version is the newer."""
        return sum(1 for status, _ in self.rules.values() if status is not RuleStatus.PENDING)

    @property
    def final(self) -> bool:
        """Decided with every rule reported: this view can no longer change."""
        return self.decided and self.version == len(self.rules)


def iso(moment: datetime) -> str:
    """Format a UTC datetime as ISO 8601 with a Z suffix and millisecond precision."""
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=UTC)
    elif moment.tzinfo is not UTC:
        moment = moment.astimezone(UTC)
    return moment.isoformat(timespec="milliseconds")[:-6] + "Z"


def utcnow() -> datetime:
    return datetime.now(UTC)


def new_ticket_id() -> str:
    """A random UUID4 in canonical form: 122 bits, so guessing a ticket id finds nothing.

    Same bits and text as str(uuid.uuid4()), without building a UUID object.
    """
    raw = bytearray(os.urandom(16))
    raw[6] = raw[6] & 0x0F | 0x40  # version 4
    raw[8] = raw[8] & 0x3F | 0x80  # RFC 4122 variant
    text = raw.hex()
    return f"{text[:8]}-{text[8:12]}-{text[12:16]}-{text[16:20]}-{text[20:]}"


def is_ticket_id(candidate: object) -> bool:
    """True when the value is a canonical lowercase UUID string."""
    if not isinstance(candidate, str) or len(candidate) != 36:
        return False
    try:
        return str(uuid.UUID(candidate)) == candidate
    except ValueError:
        return False


def decide(required: Iterable[str], results: Mapping[str, bool]) -> TicketStatus:
    """Any failed rule rejects at once; all required rules passed approves; else pending."""
    if any(passed is False for passed in results.values()):
        return TicketStatus.NOT_APPROVED
    if all(results.get(rule) is True for rule in required):
        return TicketStatus.APPROVED
    return TicketStatus.PENDING


def rule_statuses(
    required: Iterable[str], results: Mapping[str, tuple[bool, str]]
) -> dict[str, tuple[RuleStatus, str]]:
    """Per-rule status for the view: recorded verdicts, and PENDING for rules still running."""
    statuses: dict[str, tuple[RuleStatus, str]] = {}
    for rule in required:
        statuses[rule] = (RuleStatus.PENDING, "not evaluated yet")
    for rule, (passed, reason) in results.items():
        statuses[rule] = (RuleStatus.PASSED if passed else RuleStatus.FAILED, reason)
    return statuses


class JsonNumber(str):
    """A number of a JSON body exactly as the body spelled it ("100.00", "1e-3", "12345e-4").

    Money is judged on this text, never on a float or on a Decimal rounded to a context's
    precision, so no spelling can round its way past a limit.
    """

    __slots__ = ()


def validate_age(raw: object) -> int:
    """Return the age as an int, or raise ValueError saying what an age must be."""
    if type(raw) is JsonNumber:
        if len(raw) <= 3 and raw.isdigit() and int(raw) <= MAX_AGE_LIMIT:
            return int(raw)  # the usual case: a plain integer in range
        return _age_of_text(raw)
    if isinstance(raw, bool) or not isinstance(raw, int):
        raise ValueError(
            f"must be an integer from {MIN_AGE_LIMIT} to {MAX_AGE_LIMIT}, got {_shown(raw)}"
        )
    if not MIN_AGE_LIMIT <= raw <= MAX_AGE_LIMIT:
        raise ValueError(f"must be from {MIN_AGE_LIMIT} to {MAX_AGE_LIMIT}, got {_shown(raw)}")
    return raw


def _age_of_text(text: JsonNumber) -> int:
    digits = text[1:] if text.startswith("-") else text
    if not (digits.isascii() and digits.isdigit()):  # a fraction or an exponent: 20.0, 2e1
        raise ValueError(
            f"must be an integer from {MIN_AGE_LIMIT} to {MAX_AGE_LIMIT}, got {_shown(text)}"
        )
    # Thousands of digits are out of range without being converted.
    if len(digits) > 3 or not MIN_AGE_LIMIT <= int(text) <= MAX_AGE_LIMIT:
        raise ValueError(f"must be from {MIN_AGE_LIMIT} to {MAX_AGE_LIMIT}, got {_shown(text)}")
    return int(text)


def validate_value(raw: object) -> Decimal:
    """Return the value as a Decimal, or raise ValueError saying what a value must be.

    Judged on the number's exact digits (a JSON number's own text, or a Decimal's digits),
    never after rounding: 100000.0000000000000000000000001 has more than two decimals.
    """
    if type(raw) is int and 0 < raw <= _MAX_INT_VALUE:
        return Decimal(raw)  # the usual case: a whole amount in range
    if type(raw) is JsonNumber and len(raw) <= 13 and raw.isdigit():
        whole = int(raw)
        if 0 < whole <= _MAX_INT_VALUE:
            return Decimal(whole)  # the usual case of a JSON body
    negative, digits, exponent = _number_parts(raw)
    return _money(negative, digits, exponent, _shown(raw))


def _number_parts(raw: object) -> tuple[bool, str, int]:
    """(negative, digits, exponent) with raw == (-1 if negative) * int(digits) * 10**exponent."""
    if isinstance(raw, JsonNumber):
        return _text_parts(raw)
    if isinstance(raw, bool) or not isinstance(raw, int | float | Decimal):
        raise ValueError(f"must be a number greater than 0 and at most 1e12, got {_shown(raw)}")
    amount = Decimal(str(raw)) if isinstance(raw, float) else Decimal(raw)
    if not amount.is_finite():
        raise ValueError("must be a finite number")
    sign, digit_tuple, exponent = amount.as_tuple()
    assert isinstance(exponent, int)  # finite
    return bool(sign), "".join(map(str, digit_tuple)), exponent


def _text_parts(text: str) -> tuple[bool, str, int]:
    """The parts of a JSON number's text: -?int(.frac)?([eE][+-]?exp)?"""
    negative = text.startswith("-")
    unsigned = text[1:] if negative else text
    mantissa, marker, exponent_text = unsigned.replace("E", "e").partition("e")
    whole, _, fraction = mantissa.partition(".")
    digits = whole + fraction
    if not (digits.isascii() and digits.isdigit()):
        raise ValueError(f"must be a number, got {_shown(text)}")
    exponent = _exponent(exponent_text) if marker else 0
    return negative, digits, exponent - len(fraction)


def _exponent(text: str) -> int:
    """An exponent's value, clamped to +-10**9: a body holds at most 16 KiB of digits, so no
    larger exponent can change what the number is judged to be, and clamping keeps a
    thousand-digit exponent from costing a thousand-digit conversion."""
    negative = text.startswith("-")
    digits = text.lstrip("+-").lstrip("0") or "0"
    if not (digits.isascii() and digits.isdigit()):
        raise ValueError(f"has a malformed exponent {text[:20]!r}")
    magnitude = int(digits) if len(digits) <= 9 else 10**9
    return -magnitude if negative else magnitude


def _money(negative: bool, digits: str, exponent: int, shown: str) -> Decimal:
    """Check money given as its digits and exponent, in time linear in the digits."""
    significant = digits.lstrip("0")
    if negative or not significant:
        raise ValueError(f"must be greater than 0 and at most 1e12, got {shown}")
    kept = significant.rstrip("0")
    exponent += len(significant) - len(kept)  # trailing zeros never count as decimals
    if exponent < -2:
        raise ValueError(f"must have at most 2 decimal places, got {shown}")
    if len(kept) + exponent > _MAX_VALUE_DIGITS:
        raise ValueError(f"must be greater than 0 and at most 1e12, got {shown}")
    # At most 15 digits are left: exact in any Decimal context.
    if exponent >= 0:
        amount = Decimal(int(kept) * 10**exponent)
    else:
        amount = Decimal((0, tuple(map(int, kept)), exponent))
    if amount > MAX_VALUE_LIMIT:
        raise ValueError(f"must be greater than 0 and at most 1e12, got {shown}")
    return amount


def validate_request(payload: object) -> CreditRequest:
    """Check a decoded POST body against the contract, reporting every bad field at once."""
    if not isinstance(payload, dict):
        raise ValidationError({"body": f"must be a JSON object, got {_kind(payload)}"})
    problems: dict[str, str] = {}
    unknown = sorted(set(payload) - set(REQUEST_FIELDS))
    if unknown:
        problems["body"] = "has unknown field(s): " + ", ".join(unknown)
    checked: dict[str, Any] = {}
    for name, check in (("age", validate_age), ("value", validate_value)):
        if name not in payload:
            problems[name] = "is required"
            continue
        try:
            checked[name] = check(payload[name])
        except ValueError as exc:
            problems[name] = str(exc)
    if problems:
        raise ValidationError(problems)
    return CreditRequest(age=checked["age"], value=checked["value"])


def json_number(amount: int | Decimal) -> int | float:
    """Money as a JSON number: exact, since at most 15 significant digits survive a float."""
    if isinstance(amount, int):
        return amount
    return int(amount) if amount == amount.to_integral_value() else float(amount)


json_string = json.encoder.encode_basestring_ascii  # json.dumps' own string encoder (C)


def _kind(raw: object) -> str:
    return {dict: "an object", list: "an array", str: "a string", bool: "a boolean"}.get(
        type(raw), "null" if raw is None else "a number"
    )


def _shown(raw: object) -> str:
    if isinstance(raw, JsonNumber):  # as the client wrote it, cut short
        return raw if len(raw) <= 40 else f"{raw[:24]}... ({len(raw)} characters)"
    if isinstance(raw, int) and not isinstance(raw, bool) and raw.bit_length() > 128:
        return f"an integer of {raw.bit_length()} bits"  # str() refuses the very longest
    text = json.dumps(raw, default=str)
    return f"{_kind(raw)} {text[:40]}" if not isinstance(raw, int | float | Decimal) else text[:40]
