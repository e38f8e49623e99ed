"""Small in-memory stand-ins for the stores and the publisher, for unit tests only."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import UTC, datetime

from credit.domain import (
    CreditRequest,
    RuleResult,
    TicketStatus,
    TicketView,
    decide,
    rule_statuses,
)
from credit.errors import PublishError, StoreUnavailable
from credit.idempotency import KeyRecord
from credit.messages import RuleMessage
from credit.mysql import NewTicket, Rejected, Stored, Timeouts


class FakeStore:
    def __init__(self) -> None:
        self.timeouts = Timeouts(lock_wait=1, read=1, outcome_check=1)
        self.tickets: dict[str, tuple[CreditRequest, tuple[str, ...], TicketStatus]] = {}
        self.results: dict[tuple[str, str], RuleResult] = {}
        self.outbox: list[RuleMessage] = []
        self.rejected: list[Rejected] = []
        self.keys: dict[str, KeyRecord] = {}
        self.down = False

    def _check(self) -> None:
        if self.down:
            raise StoreUnavailable("MySQL failed: fake outage")

    def ping(self) -> None:
        self._check()

    def create_ticket(
        self, ticket: str, request: CreditRequest, messages: Sequence[RuleMessage]
    ) -> TicketView:
        stored = self.create_tickets([NewTicket(ticket, request, tuple(messages))])[0]
        assert isinstance(stored, TicketView)
        return stored

    def create_tickets(self, tickets: Sequence[NewTicket]) -> list[Stored]:
        self._check()
        outcomes: list[Stored] = []
        for new in tickets:
            if new.key is not None and new.key.key in self.keys:
                outcomes.append(self.keys[new.key.key])
                continue
            self.tickets[new.ticket] = (new.request, new.rules, TicketStatus.PENDING)
            self.outbox.extend(new.messages)
            if new.key is not None:
                self.keys[new.key.key] = KeyRecord(new.ticket, new.key.fingerprint)
            outcomes.append(self._view(new.ticket))
        return outcomes

    def outbox_confirmed(self, messages) -> None:
        self.outbox = [m for m in self.outbox if m not in list(messages)]

    def get_view(self, ticket: str) -> TicketView | None:
        self._check()
        return self._view(ticket) if ticket in self.tickets else None

    def record_results(self, results, rejected=()):
        self._check()
        orphans = [r for r in results if r.ticket not in self.tickets]
        for result in results:
            if result.ticket in self.tickets:
                self.results.setdefault((result.ticket, result.rule), result)
        touched = sorted({r.ticket for r in results if r.ticket in self.tickets})
        for ticket in touched:
            request, rules, status = self.tickets[ticket]
            if status is TicketStatus.PENDING:
                verdicts = {rule: r.passed for (t, rule), r in self.results.items() if t == ticket}
                self.tickets[ticket] = (request, rules, decide(rules, verdicts))
        self.rejected.extend(rejected)
        return [self._view(t) for t in touched], orphans

    def set_aside(self, rejected) -> None:
        self.rejected.extend(rejected)

    def _view(self, ticket: str) -> TicketView:
        _, rules, status = self.tickets[ticket]
        verdicts = {
            rule: (r.passed, r.reason) for (t, rule), r in self.results.items() if t == ticket
        }
        return TicketView(ticket, status, rule_statuses(rules, verdicts), datetime.now(UTC))


class FakeCache:
    def __init__(self) -> None:
        self.views: dict[str, bytes] = {}
        self.versions: dict[str, int] = {}
        self.down = False

    def get(self, ticket: str) -> bytes | None:
        if self.down:
            raise StoreUnavailable("Redis failed: fake outage")
        return self.views.get(ticket)

    def put_quietly(self, views) -> bool:
        if self.down:
            return False
        for view in views:  # like Redis: never replace a view with an older one
            if self.versions.get(view.ticket, -1) <= view.version:
                self.views[view.ticket] = view.to_json()
                self.versions[view.ticket] = view.version
        return True

    def ping(self) -> None:
        if self.down:
            raise StoreUnavailable("Redis failed: fake outage")


class FakePublisher:
    def __init__(self) -> None:
        self.published: list[RuleMessage] = []
        self.down = False

    def publish(self, messages: Sequence[RuleMessage]) -> None:
        if self.down:
            raise PublishError("RabbitMQ failed: fake outage")
        self.published.extend(messages)

    def ping(self) -> None:
        if self.down:
            raise PublishError("RabbitMQ failed: fake outage")
