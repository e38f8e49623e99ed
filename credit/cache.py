"""Redis, the speed layer: the ticket view as GET serves it, written through with a TTL."""

from __future__ import annotations

import logging
from collections.abc import Iterable
from typing import Protocol

import redis

from credit import settings
from credit.domain import TicketView
from credit.errors import StoreUnavailable

LOGGER = logging.getLogger(__name__)
KEY_PREFIX = "credit:ticket:"


class RedisLike(Protocol):
    """The slice of redis.Redis the cache uses, so a fake can stand in for unit tests."""

    def get(self, name: str) -> bytes | None: ...
    def set(self, name: str, value: bytes, ex: int | None = None) -> bool | None: ...
    def pipeline(self, transaction: bool = True) -> redis.client.Pipeline: ...
    def ping(self) -> bool: ...


def client(url: str | None = None) -> redis.Redis:
    """A Redis client with short timeouts, so a dead Redis slows nothing down for long."""
    return redis.Redis.from_url(
        settings.get(settings.REDIS_URL, url),
        socket_timeout=0.5,
        socket_connect_timeout=0.5,
        health_check_interval=30,
    )


class TicketCache:
    """Ticket views keyed by id; decided views live long, pending ones briefly."""

    def __init__(
        self,
        redis_client: RedisLike,
        ttl: int | None = None,
        pending_ttl: int | None = None,
    ) -> None:
        self._redis = redis_client
        self._ttl = settings.get_int(settings.TICKET_TTL, ttl)
        self._pending_ttl = settings.get_int(settings.PENDING_TTL, pending_ttl)

    def get(self, ticket: str) -> bytes | None:
        """The cached view as JSON bytes, or None on a miss."""
        try:
            return self._redis.get(KEY_PREFIX + ticket)
        except redis.RedisError as exc:
            raise StoreUnavailable(f"Redis failed: {exc}") from exc

    def put(self, views: Iterable[TicketView]) -> None:
        """Write views through, with the TTL that fits their status."""
        views = list(views)
        if len(views) == 1:  # one round trip either way; a pipeline costs more CPU
            view = views[0]
            try:
                self._redis.set(KEY_PREFIX + view.ticket, view.to_json(), ex=self._ttl_of(view))
            except redis.RedisError as exc:
                raise StoreUnavailable(f"Redis failed: {exc}") from exc
            return
        pipe = self._redis.pipeline(transaction=False)
        count = 0
        for view in views:
            pipe.set(KEY_PREFIX + view.ticket, view.to_json(), ex=self._ttl_of(view))
            count += 1
        if not count:
            return
        try:
            pipe.execute()
        except redis.RedisError as exc:
            raise StoreUnavailable(f"Redis failed: {exc}") from exc

    def _ttl_of(self, view: TicketView) -> int:
        return self._ttl if view.decided else self._pending_ttl

    def put_quietly(self, views: Iterable[TicketView]) -> bool:
        """Write views through, logging instead of raising: the cache is never the truth."""
        try:
            self.put(views)
        except StoreUnavailable as exc:
            LOGGER.warning("ticket cache not refreshed: %s", exc)
            return False
        return True

    def ping(self) -> None:
        try:
            self._redis.ping()
        except redis.RedisError as exc:
            raise StoreUnavailable(f"Redis failed: {exc}") from exc
