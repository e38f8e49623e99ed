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

    connection_pool: redis.ConnectionPool

    def get(self, name: str) -> bytes | str | None: ...
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
            value = self._redis.get(KEY_PREFIX + ticket)
        except redis.RedisError as exc:
            raise StoreUnavailable(f"Redis failed: {exc}") from exc
        return value.encode() if isinstance(value, str) else value

    def put(self, views: Iterable[TicketView]) -> None:
        """Write views through, with the TTL that fits their status, in one round trip."""
        commands = [
            _set_command(KEY_PREFIX + view.ticket, view.to_json(), self._ttl_of(view))
            for view in views
        ]
        if not commands:
            return
        try:
            _send_all(self._redis.connection_pool, b"".join(commands), len(commands))
        except (redis.RedisError, OSError) as exc:
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


def _set_command(key: str, value: bytes, ttl: int) -> bytes:
    """`SET key value EX ttl` in RESP, packed by hand: redis-py's pipeline spends about three
    times the CPU of the round trip itself on packing, callbacks and per-reply bookkeeping."""
    key_bytes = key.encode()
    ttl_bytes = b"%d" % ttl
    return b"*5\r\n$3\r\nSET\r\n$%d\r\n%b\r\n$%d\r\n%b\r\n$2\r\nEX\r\n$%d\r\n%b\r\n" % (
        len(key_bytes),
        key_bytes,
        len(value),
        value,
        len(ttl_bytes),
        ttl_bytes,
    )


def _send_all(pool: redis.ConnectionPool, payload: bytes, replies: int) -> None:
    """Send packed commands on one pooled connection and read every reply.

    Any failure drops the connection, so no unread reply is left for its next user.
    """
    connection = pool.get_connection()
    try:
        connection.send_packed_command([payload])
        for _ in range(replies):
            connection.read_response()  # raises ResponseError for an error reply
    except BaseException:
        connection.disconnect()
        raise
    finally:
        pool.release(connection)
