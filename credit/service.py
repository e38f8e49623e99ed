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
from credit.errors import (
    IdempotencyKeyInUse,
    IdempotencyKeyReused,
    StoreUnavailable,
    TicketNotFound,
    ValidationError,
)
from credit.idempotency import KeyClaim, KeyInUse, KeyRecord, KeysInFlight, fingerprint
from credit.messages import RuleMessage, split_request
from credit.mysql import NewTicket, Stored, TicketStore
from credit.publisher import Publisher
from credit.ticket_writer import DirectTicketWriter

LOGGER = logging.getLogger(__name__)


class TicketWriter(Protocol):
    """Stores a new ticket with its outbox messages and Idempotency-Key, durably, and caches
    its view, before saying what became of it (see TicketStore.create_tickets).

    Raises StoreUnavailable only when nothing was stored, and OutcomeUnknown when that could
    not be learnt: so a 503 is always the truth.
    """

    def create_ticket(self, new: NewTicket) -> Stored: ...


@dataclass(frozen=True)
class Accepted:
    """What a POST answers: the ticket, and whether an earlier request with the same
    Idempotency-Key created it (a replay, answered exactly as that request was)."""

    ticket: str
    replayed: bool = False


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
    writer: TicketWriter | None = None  # writes and caches new tickets; default: one by one
    final_views: FinalViews = field(default_factory=lambda: FinalViews())
    keys_in_flight: KeysInFlight = field(default_factory=KeysInFlight)

    def __post_init__(self) -> None:
        self._writer: TicketWriter = self.writer or DirectTicketWriter(self.store, self.cache)

    def submit(self, payload: object, idempotency_key: str | None = None) -> Accepted:
        """Accept a request: nothing is stored or published unless every field is valid.

        The ticket and its messages are committed together; a publish that fails leaves the
        messages in the outbox for the relay, so the ticket is still accepted. With an
        Idempotency-Key, a request whose key already names a ticket gets that ticket again
        (the same body) or IdempotencyKeyReused (another body); while a request with the key
        is still in progress, IdempotencyKeyInUse.
        """
        request = validate_request(payload)
        ticket = new_ticket_id()
        messages = split_request(ticket, request, self.rules)
        if idempotency_key is None:  # the usual case, kept free of the key's bookkeeping
            stored = self._writer.create_ticket(NewTicket(ticket, request, tuple(messages)))
        else:
            claim = KeyClaim(idempotency_key, fingerprint(request))
            with self.keys_in_flight.hold(idempotency_key):
                stored = self._writer.create_ticket(
                    NewTicket(ticket, request, tuple(messages), claim)
                )
        if isinstance(stored, TicketView):
            self._publish(ticket, messages)
            return Accepted(stored.ticket)
        assert idempotency_key is not None  # only a key can keep a ticket from being stored
        return _answer_for_key(idempotency_key, request, stored)

    def _publish(self, ticket: str, messages: Sequence[RuleMessage]) -> None:
        try:
            self.publisher.publish(messages)
        except StoreUnavailable as exc:
            LOGGER.warning("ticket %s left in the outbox for the relay: %s", ticket, exc)
            return
        if not self.clear_outbox:
            return
        try:
            self.store.outbox_confirmed(messages)
        except StoreUnavailable as exc:
            LOGGER.warning(
                "outbox not cleared for %s, the relay will publish again: %s", ticket, exc
            )

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


def _answer_for_key(key: str, request: CreditRequest, earlier: KeyRecord | KeyInUse) -> Accepted:
    """The answer to a request whose key kept its ticket from being stored: the ticket the
    key names when the request is the same, else the reason."""
    if isinstance(earlier, KeyInUse):
        raise IdempotencyKeyInUse(key)
    if earlier.fingerprint != fingerprint(request):
        raise IdempotencyKeyReused(key)
    return Accepted(earlier.ticket, replayed=True)


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
