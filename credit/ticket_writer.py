"""Writing new tickets: each request in its own transaction, or many sharing a group commit."""

from __future__ import annotations

import logging
import queue
import threading
from dataclasses import dataclass, field

from credit import settings
from credit.cache import TicketCache
from credit.domain import TicketView
from credit.errors import CreditError, OutcomeUnknown, StoreUnavailable
from credit.mysql import NewTicket, Stored, TicketStore
from credit.oneshot import OneShot

LOGGER = logging.getLogger(__name__)
MAX_BATCH = 500


class DirectTicketWriter:
    """Each request commits its own ticket, then caches its view: the writer of a process
    that serves one request at a time (AWS Lambda), with nobody to share a commit with."""

    def __init__(self, store: TicketStore, cache: TicketCache | None = None) -> None:
        self._store = store
        self._cache = cache

    def create_ticket(self, new: NewTicket) -> Stored:
        stored = self._store.create_tickets([new])[0]
        if self._cache is not None and isinstance(stored, TicketView):
            self._cache.put_quietly([stored])
        return stored


@dataclass(eq=False)
class _Pending:
    ticket: NewTicket
    # Acquired once, by whichever comes first: the writer taking the ticket into a batch, or
    # the request withdrawing it after waiting too long. A C lock: a test-and-set for free.
    taken: threading.Lock = field(default_factory=threading.Lock)
    done: OneShot = field(default_factory=OneShot)
    stored: Stored | None = None
    error: CreditError | None = None


class BatchingTicketWriter:
    """create_ticket() for many threads at once, committed together by one writer thread.

    A request waits for the commit that holds its ticket, so a 202 still means durable in
    MySQL. While one transaction commits, the next requests gather for the following one:
    under load, many tickets share a commit; alone, a ticket waits for nobody. If the
    transaction fails, every ticket in it fails the same way: StoreUnavailable when the
    store knows nothing was stored (503), OutcomeUnknown when it could not learn. Given a
    cache, the writer also caches the batch's views after the commit.

    A request that waits longer than `wait` seconds withdraws its ticket if no batch has
    taken it yet (then nothing is stored, and 503 is the truth); once its batch is sent, it
    waits for the store's answer, which the store's timeouts bound.
    """

    def __init__(
        self,
        store: TicketStore,
        cache: TicketCache | None = None,
        max_batch: int = MAX_BATCH,
        wait: float | None = None,
    ) -> None:
        self._store = store
        self._cache = cache
        self._max_batch = max_batch
        self._wait = settings.get_float(settings.TICKET_WRITE_TIMEOUT, wait)
        self._queue: queue.SimpleQueue[_Pending | None] = queue.SimpleQueue()
        self._thread = threading.Thread(target=self._run, name="ticket-writer", daemon=True)
        self._thread.start()

    def create_ticket(self, new: NewTicket) -> Stored:
        pending = _Pending(new)
        self._queue.put(pending)
        if not pending.done.wait(self._wait):
            if pending.taken.acquire(blocking=False):
                raise StoreUnavailable(
                    f"MySQL did not take the ticket within {self._wait:g}s;"
                    " it was withdrawn and nothing was stored"
                )
            self._await_batch(pending)
        if pending.error is not None:
            raise pending.error
        assert pending.stored is not None
        return pending.stored

    def _await_batch(self, pending: _Pending) -> None:
        """Wait for the outcome of a batch already sent. The store answers within its
        timeouts; should it not, the ticket's fate is unknown, never "not stored"."""
        bound = self._store.timeouts.write_bound
        if not pending.done.wait(bound):
            LOGGER.error("no outcome for ticket %s after %gs", pending.ticket.ticket, bound)
            pending.error = OutcomeUnknown(
                f"MySQL gave no outcome within {bound:g}s", (pending.ticket.ticket,)
            )

    def close(self) -> None:
        self._queue.put(None)
        self._thread.join(self._wait)

    def _run(self) -> None:
        while True:
            batch: list[_Pending] = []
            stop = self._gather(batch)
            if batch:
                self._write(batch)
            if stop:
                return

    def _gather(self, batch: list[_Pending]) -> bool:
        """Fill a batch: block for the first ticket, then take whatever else is queued.
        Tickets their requests withdrew are skipped. True when the writer is to stop."""
        item = self._queue.get()
        while True:
            if item is None:
                return True
            if item.taken.acquire(blocking=False):
                batch.append(item)
            if len(batch) >= self._max_batch:
                return False
            try:
                item = self._queue.get_nowait()
            except queue.Empty:
                return False

    def _write(self, batch: list[_Pending]) -> None:
        try:
            stored = self._store.create_tickets([pending.ticket for pending in batch])
        except Exception as exc:  # the writer thread must survive anything
            if not isinstance(exc, StoreUnavailable | OutcomeUnknown):
                LOGGER.exception("writing %d ticket(s) failed", len(batch))
            for pending in batch:
                pending.error = _error_for(exc, pending.ticket.ticket)
                pending.done.set()
            return
        if self._cache is not None:
            # One pipelined round trip for the batch, before any of its requests publishes:
            # a rule's decided view can then never be overwritten by this pending one.
            self._cache.put_quietly([s for s in stored if isinstance(s, TicketView)])
        for pending, outcome in zip(batch, stored, strict=True):
            pending.stored = outcome
            pending.done.set()


def _error_for(exc: Exception, ticket: str) -> CreditError:
    """What the request of a ticket in a failed batch is told: StoreUnavailable only when the
    store says nothing was stored; anything unforeseen leaves the ticket's fate unknown."""
    if isinstance(exc, StoreUnavailable):
        return exc
    if isinstance(exc, OutcomeUnknown):
        return OutcomeUnknown(str(exc), (ticket,))
    return OutcomeUnknown(f"MySQL write failed: {exc!r}", (ticket,))
