"""Clearing the outbox of confirmed messages in batches, off the request path."""

from __future__ import annotations

import logging
import threading
from collections.abc import Sequence

from credit.errors import StoreUnavailable
from credit.messages import RuleMessage
from credit.mysql import TicketStore

LOGGER = logging.getLogger(__name__)


class OutboxCleaner:
    """Collects confirmed messages and deletes their outbox rows every `interval` seconds.

    A row that is never deleted (crash, MySQL down) is only published again by the relay:
    harmless, since rule results are keyed by (ticket, rule).
    """

    def __init__(self, store: TicketStore, interval: float = 0.05, batch: int = 2000) -> None:
        self._store = store
        self._interval, self._batch = interval, batch
        self._confirmed: list[RuleMessage] = []
        self._lock = threading.Lock()
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="outbox-cleaner", daemon=True)
        self._thread.start()

    def confirmed(self, messages: Sequence[RuleMessage]) -> None:
        with self._lock:
            self._confirmed.extend(messages)

    def _run(self) -> None:
        while not self._stop.wait(self._interval):
            self.flush()
        self.flush()

    def flush(self) -> None:
        while True:
            with self._lock:
                taken, self._confirmed = (
                    self._confirmed[: self._batch],
                    self._confirmed[self._batch :],
                )
            if not taken:
                return
            try:
                self._store.outbox_confirmed(taken)
            except StoreUnavailable as exc:
                LOGGER.warning("outbox not cleared for %d message(s): %s", len(taken), exc)
                return

    def close(self) -> None:
        self._stop.set()
        self._thread.join(5)
