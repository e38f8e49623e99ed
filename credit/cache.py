"""Redis, the speed layer: the ticket view as GET serves it, written through with a TTL.

Each ticket is a hash holding its view's JSON and version (how many rules have reported).
Writers race: two rule functions commit verdicts on one ticket in one order and may reach
Redis in the other. So a write never replaces a view with an older one; one Lua script
checks and writes a whole batch atomically.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterable
from typing import Protocol

import redis

from credit import settings
from credit.domain import TicketView
from credit.errors import StoreUnavailable

LOGGER = logging.getLogger(__name__)
KEY_PREFIX = "credit:view:"
VIEW_FIELD = "view"
# KEYS[i] is a view's key; ARGV[3i-2], ARGV[3i-1], ARGV[3i] are its version, JSON and TTL.
# A view of the same version is written again (the same content) to renew its TTL.
PUT_SCRIPT = b"""
local written = 0
for i, key in ipairs(KEYS) do
  local version = tonumber(ARGV[3 * i - 2])
  local current = tonumber(redis.call('HGET', key, 'version'))
  if current == nil or current <= version then
    redis.call('HSET', key, 'version', version, 'view', ARGV[3 * i - 1])
    redis.call('EXPIRE', key, ARGV[3 * i])
    written = written + 1
  end
end
return written
"""


class RedisLike(Protocol):
    """The slice of redis.Redis the cache uses, so a fake can stand in for unit tests."""

    connection_pool: redis.ConnectionPool

    def hget(self, name: str, key: str) -> bytes | str | None: ...
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
    """Ticket views keyed by id; final views live long, the others briefly."""

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
            value = self._redis.hget(KEY_PREFIX + ticket, VIEW_FIELD)
        except redis.RedisError as exc:
            raise StoreUnavailable(f"Redis failed: {exc}") from exc
        return value.encode() if isinstance(value, str) else value

    def put(self, views: Iterable[TicketView]) -> int:
        """Write views through in one round trip, each with the TTL that fits it, unless
        Redis holds a newer view of its ticket. Returns how many were written."""
        views = list(views)
        if not views:
            return 0
        try:
            return _eval(self._redis.connection_pool, _put_command(views, self._ttl_of))
        except (redis.RedisError, OSError) as exc:
            raise StoreUnavailable(f"Redis failed: {exc}") from exc

    def _ttl_of(self, view: TicketView) -> int:
        # A decided view still waiting for a rule's verdict changes again: it lives briefly,
        # like a pending one, so nothing stale can outlast the short TTL.
        return self._ttl if view.final else self._pending_ttl

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


def _put_command(views: list[TicketView], ttl_of: Callable[[TicketView], int]) -> bytes:
    """`EVAL PUT_SCRIPT n key... version json ttl...` in RESP, packed by hand: redis-py spends
    about three times the CPU of the round trip itself on packing and reply bookkeeping."""
    arguments = [b"EVAL", PUT_SCRIPT, b"%d" % len(views)]
    arguments += [(KEY_PREFIX + view.ticket).encode() for view in views]
    for view in views:
        arguments += [b"%d" % view.version, view.to_json(), b"%d" % ttl_of(view)]
    return b"*%d\r\n%b" % (
        len(arguments),
        b"".join(b"$%d\r\n%b\r\n" % (len(argument), argument) for argument in arguments),
    )


def _eval(pool: redis.ConnectionPool, command: bytes) -> int:
    """Send one packed command on a pooled connection and read its integer reply.

    Any failure drops the connection, so no unread reply is left for its next user.
    """
    connection = pool.get_connection()
    try:
        connection.send_packed_command([command])
        reply = connection.read_response()  # raises ResponseError for an error reply
    except BaseException:
        connection.disconnect()
        raise
    finally:
        pool.release(connection)
    return int(reply)
