"""Group commit: tickets from concurrent requests share one MySQL transaction."""

from __future__ import annotations

import logging
import queue
import threading
from collections.abc import Sequence
from dataclasses import dataclass, field

from credit.cache import TicketCache
from credit.domain import CreditRequest, TicketView
from credit.errors import StoreUnavailable
from credit.messages import RuleMessage
from credit.mysql import NewTicket, TicketStore
from credit.oneshot import OneShot

LOGGER = logging.getLogger(__name__)
MAX_BATCH = 500
WRITE_TIMEOUT_SECONDS = 10.0


@dataclass(eq=False)
class _Pending:
    ticket: NewTicket
    done: OneShot = field(default_factory=OneShot)
    view: TicketView | None = None
    error: StoreUnavailable | None = None


class BatchingTicketWriter:
    """create_ticket() for many threads at once, committed together by one writer thread.

    A request waits for the commit that holds its ticket, so a 202 still means durable in
    MySQL. While one transaction commits, the next requests gather for the following one:
    under load, many tickets share a commit; alone, a ticket waits for nobody. If the
    transaction fails, every ticket in it fails (and its request answers 503). Given a
    cache, the writer also caches the batch's views after the commit.
    """

    def __init__(
        self, store: TicketStore, cache: TicketCache | None = None, max_batch: int = MAX_BATCH
    ) -> None:
        self._store = store
        self._cache = cache
        self._max_batch = max_batch
        self._queue: queue.SimpleQueue[_Pending | None] = queue.SimpleQueue()
        self._thread = threading.Thread(target=self._run, name="ticket-writer", daemon=True)
        self._thread.start()

    def create_ticket(
        self, ticket: str, request: CreditRequest, messages: Sequence[RuleMessage]
    ) -> TicketView:
        pending = _Pending(NewTicket(ticket, request, tuple(messages)))
        self._queue.put(pending)
        if not pending.done.wait(WRITE_TIMEOUT_SECONDS):
            raise StoreUnavailable(f"MySQL did not commit within {WRITE_TIMEOUT_SECONDS}s")
        if pending.error is not None:
            raise pending.error
        assert pending.view is not None
        return pending.view

    def close(self) -> None:
        self._queue.put(None)
        self._thread.join(WRITE_TIMEOUT_SECONDS)

    def _run(self) -> None:
        while True:
            first = self._queue.get()
            if first is None:
                return
            batch = [first]
            stop = False
            while len(batch) < self._max_batch:
                try:
                    item = self._queue.get_nowait()
                except queue.Empty:
                    break
                if item is None:
                    stop = True
                    break
                batch.append(item)
            self._write(batch)
            if stop:
                return

    def _write(self, batch: list[_Pending]) -> None:
        try:
            views = self._store.create_tickets([pending.ticket for pending in batch])
        except StoreUnavailable as exc:
            for pending in batch:
                pending.error = exc
                pending.done.set()
            return
        except Exception as exc:  # the writer thread must survive anything
            LOGGER.exception("writing %d ticket(s) failed", len(batch))
            error = StoreUnavailable(f"MySQL write failed: {exc!r}")
            for pending in batch:
                pending.error = error
                pending.done.set()
            return
        if self._cache is not None:
            # One pipelined round trip for the batch, before any of its requests publishes:
            # a rule's decided view can then never be overwritten by this pending one.
            self._cache.put_quietly(views)
        for pending, view in zip(batch, views, strict=True):
            pending.view = view
            pending.done.set()
