"""Connections made once per process, lazily, from settings; tests may install others.

On Lambda an execution environment serves one request at a time and may be frozen between
them, so the service publishes synchronously with confirms and commits each ticket alone.
A long-lived process serving many requests at once (the local runtime's API process, which
sets LOCAL_RUNTIME_API_THREADS) wires the same use cases for that instead: tickets from
concurrent requests share one commit, messages are pipelined over one confirm channel without
holding the request, and confirmed messages leave the outbox in batches. Both paths keep the
same promise: a 202 means the ticket and its messages are committed; the relay publishes
whatever the broker did not confirm.
"""

from __future__ import annotations

import atexit
import os
import threading

from credit import settings
from credit.async_publisher import PipelinedPublisher
from credit.cache import TicketCache, client
from credit.mysql import TicketStore
from credit.outbox import OutboxCleaner
from credit.publisher import ConfirmingPublisher
from credit.service import CreditService
from credit.ticket_writer import BatchingTicketWriter

LONG_LIVED_VARIABLE = "LOCAL_RUNTIME_API_THREADS"

_LOCK = threading.Lock()
_SERVICE: CreditService | None = None


def service() -> CreditService:
    """The process's CreditService, built from settings on first use."""
    global _SERVICE
    if _SERVICE is None:
        with _LOCK:
            if _SERVICE is None:
                long_lived = bool(os.environ.get(LONG_LIVED_VARIABLE))
                _SERVICE = long_lived_service() if long_lived else lambda_service()
    return _SERVICE


def lambda_service() -> CreditService:
    """One request at a time: confirms awaited in the request, one commit per ticket."""
    return CreditService(
        store=TicketStore(),
        cache=TicketCache(client()),
        publisher=ConfirmingPublisher(),
        rules=settings.get_list(settings.RULES),
    )


def long_lived_service() -> CreditService:
    """Many requests at once in a process that outlives them: group commit, pipelined
    confirms, the outbox cleared in batches; closed cleanly when the process exits."""
    store = TicketStore()
    cleaner = OutboxCleaner(store)
    # The ticket and its messages are committed to the outbox before publishing, so the
    # request need not wait for the broker: the relay sends whatever is not confirmed.
    publisher = PipelinedPublisher(on_confirmed=cleaner.confirmed, wait=False)
    views = TicketCache(client())
    writer = BatchingTicketWriter(store, views)
    for close in (publisher.close, cleaner.close, writer.close):
        atexit.register(close)  # run last-registered first: the writer, then the cleaner
    return CreditService(
        store=store,
        cache=views,
        publisher=publisher,
        rules=settings.get_list(settings.RULES),
        clear_outbox=False,
        writer=writer,
    )


def install(replacement: CreditService | None) -> None:
    """Use another service (tests, other wiring); None goes back to building from settings."""
    global _SERVICE
    _SERVICE = replacement
