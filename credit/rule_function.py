"""The body every rule function shares: decode the batch, judge each message, record at once."""

from __future__ import annotations

import logging
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

from credit import cache as cache_module
from credit.cache import TicketCache
from credit.domain import RuleResult, Verdict
from credit.messages import UndecodableMessage, decode_rule_body
from credit.mysql import Rejected, TicketStore
from credit.rmq_event import RabbitMQRecord, records

LOGGER = logging.getLogger(__name__)

Judge = Callable[[object], Verdict]


@dataclass
class BatchOutcome:
    """What one invocation did, returned to the caller (and logged by the runtime)."""

    recorded: int = 0
    rejected: int = 0
    decided: list[str] = field(default_factory=list)

    def as_dict(self) -> dict[str, Any]:
        return {"recorded": self.recorded, "rejected": self.rejected, "decided": self.decided}


@dataclass
class RuleFunction:
    """A rule bound to its field: `judge` receives the raw field and returns a Verdict.

    `judge` raises ValueError for a field of the wrong type or range; that becomes a FAILED
    verdict with the error as reason. A message with no usable ticket id, or one the rule
    raises on, is set aside in MySQL with its reason, so one bad message never fails the
    batch it shares with good ones (a failed batch is retried whole, as on AWS). Errors
    talking to MySQL propagate, so the batch is retried.
    """

    rule: str
    judge: Judge
    store: TicketStore | None = None
    cache: TicketCache | None = None

    def _store(self) -> TicketStore:
        if self.store is None:
            self.store = TicketStore()
        return self.store

    def _cache(self) -> TicketCache:
        if self.cache is None:
            self.cache = TicketCache(cache_module.client())
        return self.cache

    def handle(self, event: Mapping[str, Any]) -> dict[str, Any]:
        results: list[RuleResult] = []
        rejected: list[Rejected] = []
        sources: dict[str, RabbitMQRecord] = {}
        for record in records(event):
            try:
                result = self.evaluate(record)
            except UndecodableMessage as exc:
                rejected.append(self._reject(record, str(exc)))
                continue
            except Exception as exc:
                LOGGER.exception("%s: rule raised on message %s", self.rule, record.message_id)
                rejected.append(self._reject(record, f"rule raised {type(exc).__name__}: {exc}"))
                continue
            results.append(result)
            sources[result.ticket] = record
        views, orphans = self._store().record_results(results, rejected)
        if orphans:
            self._store().set_aside(
                [self._reject(sources[o.ticket], f"unknown ticket {o.ticket}") for o in orphans]
            )
        self._cache().put_quietly(views)
        outcome = BatchOutcome(
            recorded=len(results) - len(orphans),
            rejected=len(rejected) + len(orphans),
            decided=[view.ticket for view in views if view.decided],
        )
        if outcome.rejected:
            LOGGER.warning("%s: set aside %d message(s)", self.rule, outcome.rejected)
        return outcome.as_dict()

    def evaluate(self, record: RabbitMQRecord) -> RuleResult:
        """Judge one message; raises UndecodableMessage when no ticket can be read from it."""
        ticket, payload = decode_rule_body(record.body)
        if self.rule not in payload:
            return RuleResult(ticket, self.rule, False, f"invalid message: {self.rule} is missing")
        try:
            verdict = self.judge(payload[self.rule])
        except ValueError as exc:
            return RuleResult(ticket, self.rule, False, f"invalid {self.rule}: {exc}")
        return RuleResult(ticket, self.rule, verdict.passed, verdict.reason)

    def _reject(self, record: RabbitMQRecord, reason: str) -> Rejected:
        LOGGER.warning("%s: setting aside message %s: %s", self.rule, record.message_id, reason)
        return Rejected(record.queue, record.message_id, record.body, reason)
