"""Connections made once per process, lazily, from settings; tests may install others."""

from __future__ import annotations

import threading

from credit import settings
from credit.cache import TicketCache, client
from credit.mysql import TicketStore
from credit.publisher import ConfirmingPublisher
from credit.service import CreditService

_LOCK = threading.Lock()
_SERVICE: CreditService | None = None


def service() -> CreditService:
    """The process's CreditService, built from settings on first use."""
    global _SERVICE
    if _SERVICE is None:
        with _LOCK:
            if _SERVICE is None:
                _SERVICE = CreditService(
                    store=TicketStore(),
                    cache=TicketCache(client()),
                    publisher=ConfirmingPublisher(),
                    rules=settings.get_list(settings.RULES),
                )
    return _SERVICE


def install(replacement: CreditService | None) -> None:
    """Use another service (tests, other wiring); None goes back to building from settings."""
    global _SERVICE
    _SERVICE = replacement
