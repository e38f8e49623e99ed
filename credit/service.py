"""The use cases behind the API: accept a credit request, show a ticket, relay the outbox."""

from __future__ import annotations

import logging
import threading
from collections import OrderedDict
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import timedelta
from typing import Protocol

from credit.cache import TicketCache
from credit.domain import (
    CreditRequest,
    TicketView,
    is_ticket_id,
    new_ticket_id,
    validate_request,
)
from credit.errors import StoreUnavailable, TicketNotFound, ValidationError
from credit.messages import RuleMessage, split_request
from credit.mysql import TicketStore
from credit.publisher import Publisher

LOGGER = logging.getLogger(__name__)


class TicketWriter(Protocol):
    """Stores a new ticket with its outbox messages, durably, and caches its view, before
    returning that view."""

    def create_ticket(
        self, ticket: str, request: CreditRequest, messages: Sequence[RuleMessage]
    ) -> TicketView: ...


class FinalViews:
    """Views that can no longer change, kept in the process: a decided ticket whose every
    rule has reported. Polling a finished ticket then costs no round trip at all."""

    def __init__(self, capacity: int = 10_000) -> None:
        self._capacity = capacity
        self._views: OrderedDict[str, bytes] = OrderedDict()
        self._lock = threading.Lock()

    def get(self, ticket: str) -> bytes | None:
        with self._lock:
            return self._views.get(ticket)

    def remember(self, ticket: str, view_json: bytes) -> None:
        # Canonical JSON from TicketView.to_json: any "PENDING" is the ticket's or a rule's.
        if b'"PENDING"' in view_json:
            return
        with self._lock:
            self._views[ticket] = view_json
            if len(self._views) > self._capacity:
                self._views.popitem(last=False)


@dataclass
class CreditService:
    """Validates, stores (MySQL, then Redis), then publishes; reads Redis first, MySQL second."""

    store: TicketStore
    cache: TicketCache
    publisher: Publisher
    rules: tuple[str, ...]
    clear_outbox: bool = True  # False when the publisher clears confirmed messages itself
    writer: TicketWriter | None = None  # writes and caches new tickets; default: store, cache
    final_views: FinalViews = field(default_factory=lambda: FinalViews())

    def submit(self, payload: object) -> TicketView:
        """Accept a request: nothing is stored or published unless every field is valid.

        The ticket and its messages are committed together; a publish that fails leaves the
        messages in the outbox for the relay, so the ticket is still accepted.
        """
        request = validate_request(payload)
        ticket = new_ticket_id()
        messages = split_request(ticket, request, self.rules)
        if self.writer is not None:
            view = self.writer.create_ticket(ticket, request, messages)
        else:
            view = self.store.create_ticket(ticket, request, messages)
            self.cache.put_quietly([view])
        try:
            self.publisher.publish(messages)
        except StoreUnavailable as exc:
            LOGGER.warning("ticket %s left in the outbox for the relay: %s", ticket, exc)
            return view
        if not self.clear_outbox:
            return view
        try:
            self.store.outbox_confirmed(messages)
        except StoreUnavailable as exc:
            LOGGER.warning(
                "outbox not cleared for %s, the relay will publish again: %s", ticket, exc
            )
        return view

    def view_json(self, ticket: str) -> bytes:
        """The ticket view as JSON: from Redis when cached, else from MySQL (refilling Redis)."""
        if not is_ticket_id(ticket):
            raise ValidationError(
                {"ticket": "must be a UUID such as 6826e88b-dc6d-4c27-b480-eb529511357c"}
            )
        final = self.final_views.get(ticket)
        if final is not None:
            return final
        try:
            cached = self.cache.get(ticket)
        except StoreUnavailable as exc:
            LOGGER.warning("reading ticket %s from MySQL, Redis failed: %s", ticket, exc)
            cached = None
        if cached is None:
            view = self.store.get_view(ticket)
            if view is None:
                raise TicketNotFound(ticket)
            self.cache.put_quietly([view])
            cached = view.to_json()
        self.final_views.remember(ticket, cached)
        return cached


def relay_outbox(
    store: TicketStore,
    publisher: Publisher,
    grace: timedelta = timedelta(seconds=2),
    limit: int = 500,
) -> int:
    """Publish outbox messages that are older than the grace period; return how many went out.

    Messages published by the request itself are usually gone before the grace period ends;
    what remains was never confirmed (broker down, nacked, unroutable) and is sent again.
    A duplicate is harmless: rule results are keyed by (ticket, rule).
    """
    entries = store.outbox_due(grace, limit)
    if not entries:
        return 0
    messages = [entry.message for entry in entries]
    try:
        publisher.publish(messages)
    except StoreUnavailable as exc:
        store.outbox_failed(entries, str(exc))
        raise
    store.outbox_confirmed(messages)
    LOGGER.info("relayed %d outbox message(s)", len(messages))
    return len(messages)
