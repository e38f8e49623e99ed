"""The rule messages: one per rule, each carrying the ticket and only that rule's field."""

from __future__ import annotations

import json
from dataclasses import dataclass
from decimal import Decimal
from typing import Any

from credit.domain import CreditRequest, is_ticket_id, json_number, json_string

CONTENT_TYPE = "application/json"
APP_ID = "credit-api"


class UndecodableMessage(ValueError):
    """The message cannot be tied to a ticket: not JSON, not an object, or no valid ticket id."""


@dataclass(frozen=True)
class RuleMessage:
    """An outgoing message for one rule, as stored in the outbox and published."""

    ticket: str
    rule: str
    body: bytes

    @property
    def message_id(self) -> str:
        return f"{self.ticket}:{self.rule}"


_DECODER = json.JSONDecoder(parse_float=Decimal)  # one instance: json.loads builds one per call


def split_request(ticket: str, request: CreditRequest, rules: tuple[str, ...]) -> list[RuleMessage]:
    """One message per rule, routing key = rule name, body = ticket plus that rule's field."""
    return [
        RuleMessage(ticket=ticket, rule=rule, body=rule_body(ticket, rule, request.field(rule)))
        for rule in rules
    ]


def rule_body(ticket: str, rule: str, amount: int | Decimal) -> bytes:
    """Exactly json.dumps({"ticket": ticket, rule: json_number(amount)}, separators=(",", ":")),
    without the generic encoder: two of these per request."""
    number = json_number(amount)
    text = str(number) if type(number) is int else json.dumps(number)
    return f'{{"ticket":{json_string(ticket)},{json_string(rule)}:{text}}}'.encode()


def decode_rule_body(body: bytes) -> tuple[str, dict[str, Any]]:
    """Return (ticket, fields) from a rule message body, or raise UndecodableMessage."""
    try:
        payload = _DECODER.decode(body.decode("utf-8") if isinstance(body, bytes) else body)
    except (ValueError, RecursionError) as exc:
        raise UndecodableMessage(f"body is not JSON: {exc}") from exc
    if not isinstance(payload, dict):
        raise UndecodableMessage("body is not a JSON object")
    ticket = payload.get("ticket")
    if not is_ticket_id(ticket):
        raise UndecodableMessage("body has no valid 'ticket' id")
    assert isinstance(ticket, str)
    return ticket, payload
