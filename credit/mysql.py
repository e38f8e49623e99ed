"""MySQL, the system of record: tickets, rule results, the outbox and set-aside messages."""

from __future__ import annotations

import hashlib
import logging
import queue
import re
import time
import weakref
from collections.abc import Callable, Iterable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from importlib import resources
from typing import Any, TypeVar
from urllib.parse import parse_qs, unquote, urlsplit

import pymysql
import pymysql.cursors
from pymysql.constants import CLIENT, SERVER_STATUS

from credit import settings
from credit.domain import (
    CreditRequest,
    RuleResult,
    TicketStatus,
    TicketView,
    decide,
    rule_statuses,
    utcnow,
)
from credit.errors import OutcomeUnknown, StoreUnavailable
from credit.idempotency import KeyClaim, KeyInUse, KeyRecord
from credit.messages import RuleMessage

Verdicts = tuple[bool, str]  # a recorded rule result: passed, reason
LOGGER = logging.getLogger(__name__)
T = TypeVar("T")

Connection = pymysql.connections.Connection
ConnectionFactory = Callable[[], Connection]

# Every error of the driver: a refused statement (a duplicate key, say) is the store's failure
# too, and must never escape as a driver exception the layers above do not know.
DRIVER_ERRORS = (pymysql.err.MySQLError, OSError)


@dataclass(frozen=True)
class Rejected:
    """A message no ticket can be found for, kept with the reason for a person to inspect."""

    source: str
    message_id: str | None
    body: bytes
    reason: str


@dataclass(frozen=True)
class NewTicket:
    """A validated request about to be stored, with the messages that split it."""

    ticket: str
    request: CreditRequest
    messages: tuple[RuleMessage, ...]
    key: KeyClaim | None = None  # the request's Idempotency-Key, stored with the ticket

    @property
    def rules(self) -> tuple[str, ...]:
        return tuple(message.rule for message in self.messages)


# What create_tickets says of each ticket: stored now (its view), or not stored because its
# Idempotency-Key already names a ticket (KeyRecord) or is held by a running transaction.
Stored = TicketView | KeyRecord | KeyInUse


@dataclass(frozen=True)
class Timeouts:
    """How long a session may wait, so every write ends in a known outcome in bounded time.

    MySQL itself refuses a statement that waits longer than `lock_wait` for a lock (a stalled
    server, FLUSH TABLES WITH READ LOCK, a row held by another transaction): an error, and a
    known rollback. `read` is the driver's backstop for a server that answers nothing; then
    the outcome of a COMMIT already sent is looked for during `outcome_check`.
    """

    lock_wait: int = field(default_factory=lambda: settings.get_int(settings.MYSQL_LOCK_WAIT))
    read: float = field(default_factory=lambda: settings.get_float(settings.MYSQL_READ_TIMEOUT))
    outcome_check: float = field(
        default_factory=lambda: settings.get_float(settings.MYSQL_OUTCOME_CHECK)
    )

    def session_sql(self) -> str:
        """The session's bounds. max_statement_time is MariaDB's (10.1+); MySQL skips the
        executable comment that sets it."""
        seconds = max(1, self.lock_wait)
        return (
            f"SET SESSION lock_wait_timeout = {seconds}, innodb_lock_wait_timeout = {seconds}"
            f" /*M!100100 , max_statement_time = {seconds} */"
        )

    @property
    def write_bound(self) -> float:
        """The longest create_tickets can take: every attempt's round trips, each bounded by
        the read timeout, then the outcome check."""
        return TRANSACTION_ATTEMPTS * 3 * self.read + self.outcome_check


@dataclass(frozen=True)
class OutboxEntry:
    message: RuleMessage
    attempts: int


def connect_kwargs(url: str | None = None, timeouts: Timeouts | None = None) -> dict[str, Any]:
    """Translate mysql://user:password@host:port/database into pymysql.connect arguments;
    with timeouts, every session is bounded by them."""
    parts = urlsplit(settings.get(settings.MYSQL_URL, url))
    if parts.scheme not in ("mysql", "mariadb"):
        raise settings.SettingsError(f"{settings.MYSQL_URL} must start with mysql://, got {url!r}")
    host = parts.hostname or "127.0.0.1"
    # No gap locks: concurrent multi-row inserts and deletes on the outbox would deadlock
    # on them, and every decision locks the rows it reads explicitly (FOR UPDATE).
    session = "SET SESSION TRANSACTION ISOLATION LEVEL READ COMMITTED"
    if timeouts is not None:
        session += ";" + timeouts.session_sql()
    reply_seconds = timeouts.read if timeouts is not None else 30
    return {
        **_tls(host, parse_qs(parts.query)),
        "host": host,
        "port": parts.port or 3306,
        "user": unquote(parts.username or "root"),
        "password": unquote(parts.password or ""),
        "database": parts.path.lstrip("/") or "credit",
        "charset": "utf8mb4",
        "autocommit": True,
        # Several statements per round trip: a transaction's statements and its COMMIT go
        # together. Every value is still escaped by the driver (no SQL is built from input).
        "client_flag": CLIENT.MULTI_STATEMENTS,
        "init_command": session,
        "connect_timeout": 3,
        "read_timeout": reply_seconds,
        "write_timeout": reply_seconds,
    }


def _tls(host: str, query: dict[str, list[str]]) -> dict[str, Any]:
    """TLS from the URL's query: ?ssl=disabled|preferred|required|verify-identity, &ssl_ca=PATH.

    Default: off on the loopback interface (no wire to protect, and pymysql builds a fresh
    TLS context per connection otherwise), the driver's "preferred" elsewhere.
    """
    mode = query.get("ssl", ["disabled" if host in LOOPBACK else "preferred"])[-1].lower()
    ca = query.get("ssl_ca", [None])[-1]
    if mode == "disabled":
        return {"ssl_disabled": True}
    if mode == "preferred":
        return {"ssl_ca": ca} if ca else {}
    if mode in ("required", "verify-identity"):
        # Encrypted always; the server's certificate is checked when a CA is given.
        return {"ssl": {"ca": ca, "check_hostname": mode == "verify-identity" and bool(ca)}}
    raise settings.SettingsError(
        f"{settings.MYSQL_URL}: ssl must be disabled, preferred, required or verify-identity"
    )


LOOPBACK = frozenset({"127.0.0.1", "localhost", "::1"})
TRANSACTION_ATTEMPTS = 4
LOCK_WAIT_TIMEOUT, DEADLOCK, DUPLICATE_KEY, NO_SUCH_THREAD = 1205, 1213, 1062, 1094
LOCK_NOWAIT = 3572  # MySQL 8's NOWAIT refusal; MariaDB answers LOCK_WAIT_TIMEOUT
RETRYABLE_CODES = frozenset({LOCK_WAIT_TIMEOUT, DEADLOCK})
# A new ticket waited lock_wait seconds already: it is refused, not tried again. A duplicate
# key is another process storing the same Idempotency-Key first: the next attempt reads it.
TICKET_RETRYABLE_CODES = frozenset({DEADLOCK, DUPLICATE_KEY})


def _error_code(exc: BaseException | None) -> int | None:
    """The error number of a reply the server sent; None for anything else.

    pymysql raises server errors with the server's number, and its own client-side failures
    (lost connection, timeout, gone away: CR_* codes 2000-2999) as OperationalError too, or
    as InterfaceError, OSError and others; only the former are the server's word.
    """
    if not isinstance(exc, pymysql.err.MySQLError) or isinstance(exc, pymysql.err.InterfaceError):
        return None
    code = exc.args[0] if exc.args else None
    if not isinstance(code, int) or code < 1000 or 2000 <= code < 3000:
        return None
    return code


def _is_retryable(exc: BaseException | None, codes: frozenset[int] = RETRYABLE_CODES) -> bool:
    return _error_code(exc) in codes


class _CommitUnknown(Exception):
    """The round trip that held a COMMIT ended without the server saying what became of it.
    Only create_tickets raises it, and it finds out before answering."""

    def __init__(self, thread_id: int) -> None:
        super().__init__(f"no reply to the COMMIT of MySQL session {thread_id}")
        self.thread_id = thread_id
        self.boot: float | None = None  # when the server that ran the session started


def describe(url: str | None = None) -> str:
    """The URL with any password hidden, for messages a person reads."""
    kwargs = connect_kwargs(url)
    return f"mysql://{kwargs['user']}@{kwargs['host']}:{kwargs['port']}/{kwargs['database']}"


def connect(
    url: str | None = None, database: bool = True, timeouts: Timeouts | None = None
) -> Connection:
    """Open one connection; a failure names the URL tried, without the password."""
    kwargs = connect_kwargs(url, timeouts)
    if not database:
        kwargs.pop("database")
    try:
        return pymysql.connect(**kwargs)
    except DRIVER_ERRORS as exc:
        raise StoreUnavailable(f"MySQL is not reachable at {describe(url)}: {exc}") from exc


def migrate(url: str | None = None) -> list[str]:
    """Create the database if missing and apply every migration not applied yet; idempotent."""
    name = connect_kwargs(url)["database"]
    server = connect(url, database=False)
    try:
        with server.cursor() as cursor:
            cursor.execute(f"CREATE DATABASE IF NOT EXISTS `{_identifier(name)}`")
    finally:
        server.close()
    conn = connect(url)
    applied: list[str] = []
    try:
        with conn.cursor() as cursor:
            cursor.execute(
                "CREATE TABLE IF NOT EXISTS schema_migrations ("
                " name VARCHAR(255) NOT NULL PRIMARY KEY, applied_at DATETIME(6) NOT NULL)"
            )
            cursor.execute("SELECT name FROM schema_migrations")
            done = {row[0] for row in cursor.fetchall()}
            for script in sorted(
                resources.files("credit.migrations").iterdir(), key=lambda p: p.name
            ):
                if not script.name.endswith(".sql") or script.name in done:
                    continue
                for statement in _statements(script.read_text()):
                    cursor.execute(statement)
                cursor.execute(
                    "INSERT INTO schema_migrations (name, applied_at) VALUES (%s, %s)",
                    (script.name, _db_time(utcnow())),
                )
                applied.append(script.name)
                LOGGER.info("applied migration %s", script.name)
    finally:
        conn.close()
    return applied


class TicketStore:
    """Reads and writes tickets; one lazily opened connection per thread, reopened after errors.

    Every session is bounded by `timeouts`, so a write ends in a known outcome: stored, or
    StoreUnavailable (nothing stored), or, when MySQL cannot be asked, OutcomeUnknown.
    """

    def __init__(
        self,
        url: str | None = None,
        factory: ConnectionFactory | None = None,
        pool_size: int = 16,
        timeouts: Timeouts | None = None,
        key_ttl: timedelta | None = None,
    ) -> None:
        self._url = url
        self.timeouts = timeouts or Timeouts()
        self.key_ttl = key_ttl or timedelta(seconds=settings.get_int(settings.IDEMPOTENCY_TTL))
        self._factory = factory or (lambda: connect(url, timeouts=self.timeouts))
        # Connections for transactions run with autocommit off, so a transaction starts with
        # its first statement instead of costing a BEGIN round trip; the others autocommit.
        self._pools: dict[bool, queue.LifoQueue[Connection]] = {
            False: queue.LifoQueue(),
            True: queue.LifoQueue(),
        }
        self._pool_size = pool_size
        # When the server of each transaction connection started, so a session is never
        # looked for (and killed) on a server restarted since: thread ids start again at 1.
        self._boots: weakref.WeakKeyDictionary[Connection, float] = weakref.WeakKeyDictionary()

    @contextmanager
    def _cursor(self, transaction: bool = False) -> Iterator[pymysql.cursors.Cursor]:
        """A cursor on a pooled connection; any thread may use the store.

        Connections are reused rather than opened per thread, since a server-side thread per
        client connection would otherwise open one MySQL connection each. A connection that
        failed is closed, never returned to the pool.
        """
        conn: Connection | None = None
        pool = self._pools[transaction]
        try:
            try:
                conn = pool.get_nowait()
            except queue.Empty:
                conn = self._factory()
                if transaction:
                    self._boots[conn] = _server_boot(conn)
                    conn.autocommit(False)
            with conn.cursor() as cursor:
                yield cursor
            # Commit unless the work already did, in its last round trip.
            if transaction and _in_transaction(conn):
                conn.commit()
        except _CommitUnknown as unknown:
            unknown.boot = self._boots.get(conn) if conn is not None else None
            self._discard(conn)  # its transaction's fate is being looked up: never reuse it
            raise
        except DRIVER_ERRORS as exc:
            if transaction and conn is not None and _error_code(exc) is not None:
                # The server refused a statement: the connection itself is sound.
                try:
                    conn.rollback()
                except DRIVER_ERRORS:
                    self._discard(conn)
                else:
                    self._release(pool, conn)
            else:
                self._discard(conn)
            raise StoreUnavailable(f"MySQL failed: {exc}") from exc
        except BaseException:
            if transaction and conn is not None:
                try:
                    conn.rollback()
                except DRIVER_ERRORS:
                    self._discard(conn)
                    raise
            self._release(pool, conn)
            raise
        self._release(pool, conn)

    def _release(self, pool: queue.LifoQueue[Connection], conn: Connection | None) -> None:
        if conn is None:
            return
        if pool.qsize() < self._pool_size:
            pool.put(conn)
        else:
            self._discard(conn)

    def _discard(self, conn: Connection | None) -> None:
        if conn is not None:
            try:
                conn.close()
            except Exception:
                LOGGER.debug("closing a broken MySQL connection failed", exc_info=True)

    def ping(self) -> None:
        with self._cursor() as cursor:
            cursor.execute("SELECT 1")

    def create_ticket(
        self, ticket: str, request: CreditRequest, messages: Sequence[RuleMessage]
    ) -> TicketView:
        """Insert the ticket and its outbox messages in one transaction (no Idempotency-Key)."""
        stored = self.create_tickets([NewTicket(ticket, request, tuple(messages))])[0]
        assert isinstance(stored, TicketView)  # only a key can make a ticket not be stored
        return stored

    def _transaction(
        self, work: Callable[[Any], T], retryable: frozenset[int] = RETRYABLE_CODES
    ) -> T:
        """Run work(cursor) in a transaction, again from the start after a deadlock."""
        for attempt in range(1, TRANSACTION_ATTEMPTS + 1):
            try:
                with self._cursor(transaction=True) as cursor:
                    return work(cursor)
            except StoreUnavailable as exc:
                if attempt == TRANSACTION_ATTEMPTS or not _is_retryable(exc.__cause__, retryable):
                    raise
                LOGGER.info("MySQL transaction retried after: %s", exc)
                time.sleep(0.005 * attempt)
        raise AssertionError("unreachable")  # pragma: no cover

    def create_tickets(self, tickets: Sequence[NewTicket]) -> list[Stored]:
        """Insert tickets, their outbox messages and their keys in one transaction: all or none.

        Says for each ticket, in order, what became of it: its view (stored now), or, for a
        key that already names a ticket or that a running transaction holds, that record or
        KeyInUse (that ticket is not stored). Raises StoreUnavailable only when nothing was
        stored, and OutcomeUnknown when a COMMIT got no reply and MySQL could not be asked.
        Without keys it is one round trip: the inserts and the COMMIT travel together.
        """
        batch = _TicketBatch(tickets, utcnow(), self.key_ttl)
        try:
            return self._transaction(batch.run, TICKET_RETRYABLE_CODES)
        except _CommitUnknown as unknown:
            if not batch.inserted or self._committed(unknown, batch.inserted):
                return batch.outcomes
            raise StoreUnavailable(
                "MySQL lost the connection before the tickets were committed; nothing was stored"
            ) from unknown

    def _committed(self, unknown: _CommitUnknown, tickets: Sequence[str]) -> bool:
        """Whether the transaction of a session whose COMMIT got no reply committed.

        From a fresh connection: KILL the session, so that a transaction still running can
        never commit later; wait until it is gone from the process list, its transaction
        ended one way or the other; then look for its tickets. (On a server restarted since,
        the session is gone already, and its thread id may be another's: no KILL.) MySQL is
        asked again until the outcome check's time is up, then OutcomeUnknown.
        """
        thread_id = unknown.thread_id
        deadline = time.monotonic() + self.timeouts.outcome_check
        delay = 0.05
        while True:
            try:
                return self._look_for(unknown, tickets, deadline)
            except (StoreUnavailable, *DRIVER_ERRORS) as exc:
                if time.monotonic() + delay >= deadline:
                    raise OutcomeUnknown(
                        f"MySQL could not be asked whether session {thread_id} committed"
                        f" within {self.timeouts.outcome_check:g}s: {exc}",
                        tuple(tickets),
                    ) from exc
                LOGGER.warning("asking again whether session %s committed: %s", thread_id, exc)
                time.sleep(delay)
                delay = min(delay * 2, 1.0)

    def _look_for(self, unknown: _CommitUnknown, tickets: Sequence[str], deadline: float) -> bool:
        thread_id = unknown.thread_id
        conn = self._factory()
        try:
            restarted = unknown.boot is not None and abs(_server_boot(conn) - unknown.boot) >= 1
            with conn.cursor() as cursor:
                if restarted:
                    LOGGER.warning("MySQL restarted since session %s began", thread_id)
                else:
                    _end_session(cursor, thread_id, deadline, tickets)
                cursor.execute("SELECT COUNT(*) FROM tickets WHERE id IN %s", (list(tickets),))
                (found,) = cursor.fetchone() or (0,)
        finally:
            self._discard(conn)
        LOGGER.warning(
            "session %s %s its %d ticket(s)",
            thread_id,
            "committed" if found else "did not commit",
            len(tickets),
        )
        if found not in (0, len(tickets)):  # pragma: no cover - one transaction: all or none
            raise OutcomeUnknown(f"{found} of {len(tickets)} tickets found", tuple(tickets))
        return bool(found)

    def purge_idempotency_keys(self, limit: int = 1000) -> int:
        """Forget up to `limit` Idempotency-Keys older than their time to live; how many."""
        cutoff = _db_time(utcnow() - self.key_ttl)
        with self._cursor() as cursor:
            cursor.execute(
                "DELETE FROM idempotency_keys WHERE created_at < %s ORDER BY created_at LIMIT %s",
                (cutoff, limit),
            )
            return int(cursor.rowcount)

    def get_view(self, ticket: str) -> TicketView | None:
        with self._cursor() as cursor:
            views = self._views(cursor, [ticket])
        return views.get(ticket)

    def get_request(self, ticket: str) -> CreditRequest | None:
        """The stored age and value of a ticket, to check a decision against the rules."""
        with self._cursor() as cursor:
            cursor.execute("SELECT age, value FROM tickets WHERE id = %s", (ticket,))
            row = cursor.fetchone()
        return CreditRequest(age=int(row[0]), value=Decimal(row[1])) if row else None

    def record_results(
        self, results: Sequence[RuleResult], rejected: Sequence[Rejected] = ()
    ) -> tuple[list[TicketView], list[RuleResult]]:
        """Record verdicts and decide their tickets in one transaction with the tickets locked.

        Returns the views of the touched tickets and the results whose ticket does not exist.
        A verdict already recorded for (ticket, rule) is kept; a decided ticket never changes.
        """
        tickets = sorted({result.ticket for result in results})
        # Inserted in key order, so two batches holding the same verdicts cannot deadlock.
        ordered = sorted(results, key=lambda r: (r.ticket, r.rule))
        moment = _db_time(utcnow())
        now = _db_text(moment)

        def record(cursor: Any) -> tuple[list[TicketView], list[RuleResult]]:
            if rejected:
                self._set_aside(cursor, rejected)
            if not tickets:
                return [], []
            # Round trip 1: record the verdicts, then lock their tickets and read every
            # verdict. Each transaction inserts before it locks, so whichever holds a
            # ticket's lock last sees every verdict committed before it, its own included.
            verdict_rows = [(r.ticket, r.rule, r.passed, r.reason[:512], now) for r in ordered]
            sql = (  # only placeholders are repeated into the SQL
                "INSERT IGNORE INTO rule_results (ticket_id, rule, passed, reason, recorded_at)"  # noqa: S608  # nosec B608
                " VALUES " + _values(len(verdict_rows), "(%s, %s, %s, %s, %s)") + ";"  # nosec B608
                "SELECT id, status, required_rules, created_at, decided_at FROM tickets"
                " WHERE id IN %s ORDER BY id FOR UPDATE;"
                "SELECT ticket_id, rule, passed, reason FROM rule_results WHERE ticket_id IN %s"
            )
            _, locked, recorded = _run(
                cursor,
                sql,
                [*(value for row in verdict_rows for value in row), tickets, tickets],
            )
            rows = {row[0]: row for row in locked}
            verdicts = _group_verdicts(recorded)
            orphans = [r for r in results if r.ticket not in rows]
            # Round trip 2: remove verdicts of unknown tickets, decide, commit.
            statements: list[str] = []
            args: list[Any] = []
            if orphans:
                statements.append("DELETE FROM rule_results WHERE (ticket_id, rule) IN %s")
                args.append([(r.ticket, r.rule) for r in orphans])
            views, decided = _decide(rows, verdicts, moment)
            for status, decided_tickets in decided.items():  # one statement per outcome
                statements.append(
                    "UPDATE tickets SET status = %s, decided_at = %s"
                    " WHERE id IN %s AND status = 'PENDING'"
                )
                args.extend([status.value, now, decided_tickets])
            _run(cursor, ";".join([*statements, "COMMIT"]), args)
            return views, orphans

        return self._transaction(record)

    def set_aside(self, rejected: Sequence[Rejected]) -> None:
        if rejected:
            with self._cursor(transaction=True) as cursor:
                self._set_aside(cursor, rejected)

    def rejected_messages(self, source: str | None = None) -> list[Rejected]:
        with self._cursor() as cursor:
            if source is None:
                cursor.execute("SELECT source, message_id, body, reason FROM rejected_messages")
            else:
                cursor.execute(
                    "SELECT source, message_id, body, reason FROM rejected_messages"
                    " WHERE source = %s",
                    (source,),
                )
            return [Rejected(row[0], row[1], bytes(row[2]), row[3]) for row in cursor.fetchall()]

    def outbox_due(self, older_than: timedelta, limit: int = 500) -> list[OutboxEntry]:
        """Outbox messages older than the grace period: published late or never confirmed."""
        cutoff = _db_time(utcnow() - older_than)
        with self._cursor() as cursor:
            cursor.execute(
                "SELECT ticket_id, rule, body, attempts FROM outbox"
                " WHERE created_at <= %s ORDER BY created_at LIMIT %s",
                (cutoff, limit),
            )
            return [
                OutboxEntry(RuleMessage(row[0], row[1], bytes(row[2])), row[3])
                for row in cursor.fetchall()
            ]

    def outbox_confirmed(self, messages: Iterable[RuleMessage]) -> None:
        """Forget outbox messages the broker confirmed."""
        keys = [(m.ticket, m.rule) for m in messages]
        if keys:
            with self._cursor() as cursor:
                cursor.execute("DELETE FROM outbox WHERE (ticket_id, rule) IN %s", (keys,))

    def outbox_failed(self, entries: Iterable[OutboxEntry], error: str) -> None:
        keys = [(entry.message.ticket, entry.message.rule) for entry in entries]
        if keys:
            with self._cursor() as cursor:
                cursor.execute(
                    "UPDATE outbox SET attempts = attempts + 1, last_error = %s"
                    " WHERE (ticket_id, rule) IN %s",
                    (error[:512], keys),
                )

    def _set_aside(self, cursor: Any, rejected: Sequence[Rejected]) -> None:
        now = _db_time(utcnow())
        cursor.executemany(
            "INSERT IGNORE INTO rejected_messages"
            " (source, message_id, body_sha256, body, reason, received_at)"
            " VALUES (%s, %s, %s, %s, %s, %s)",
            [
                (
                    r.source,
                    r.message_id,
                    hashlib.sha256(r.body).digest(),
                    r.body,
                    r.reason[:1024],
                    now,
                )
                for r in rejected
            ],
        )

    def _views(self, cursor: Any, tickets: Sequence[str]) -> dict[str, TicketView]:
        """The views of tickets, read in one statement: one consistent snapshot, so a view
        never pairs a ticket's status with verdicts from another moment."""
        if not tickets:
            return {}
        cursor.execute(
            "SELECT t.id, t.status, t.required_rules, t.created_at, t.decided_at,"
            " r.rule, r.passed, r.reason"
            " FROM tickets t LEFT JOIN rule_results r ON r.ticket_id = t.id WHERE t.id IN %s",
            (list(tickets),),
        )
        joined = cursor.fetchall()
        verdicts = _group_verdicts(row[0:1] + row[5:] for row in joined if row[5] is not None)
        rows = {row[0]: row[1:5] for row in joined}
        return {
            ticket: _view(ticket, TicketStatus(status), required, verdicts, created_at, decided_at)
            for ticket, (status, required, created_at, decided_at) in rows.items()
        }


def _decide(
    rows: dict[str, tuple[Any, ...]], verdicts: dict[str, dict[str, Verdicts]], now: datetime
) -> tuple[list[TicketView], dict[TicketStatus, list[str]]]:
    """The views of locked tickets, deciding the pending ones that can be; and which
    tickets each outcome decides now."""
    decided: dict[TicketStatus, list[str]] = {}
    views = []
    for ticket, status_text, required_text, created_at, decided_at in rows.values():
        required = required_text.split(",")
        found = verdicts.get(ticket, {})
        status = TicketStatus(status_text)
        if status is TicketStatus.PENDING:
            status = decide(required, {rule: passed for rule, (passed, _) in found.items()})
            if status is not TicketStatus.PENDING:
                decided.setdefault(status, []).append(ticket)
                decided_at = now
        views.append(_view(ticket, status, required_text, verdicts, created_at, decided_at))
    return views, decided


def _group_verdicts(rows: Iterable[Sequence[Any]]) -> dict[str, dict[str, Verdicts]]:
    """(ticket, rule, passed, reason) rows as {ticket: {rule: (passed, reason)}}."""
    verdicts: dict[str, dict[str, Verdicts]] = {}
    for ticket, rule, passed, reason in rows:
        verdicts.setdefault(ticket, {})[rule] = (bool(passed), reason)
    return verdicts


def _view(
    ticket: str,
    status: TicketStatus,
    required_text: str,
    verdicts: dict[str, dict[str, Verdicts]],
    created_at: datetime,
    decided_at: datetime | None,
) -> TicketView:
    """A ticket's view from its stored columns (naive UTC datetimes) and its verdicts."""
    return TicketView(
        ticket=ticket,
        status=status,
        rules=rule_statuses(required_text.split(","), verdicts.get(ticket, {})),
        created_at=created_at.replace(tzinfo=UTC),
        decided_at=decided_at.replace(tzinfo=UTC) if decided_at else None,
    )


def _in_transaction(conn: Connection) -> bool:
    return bool(conn.server_status & SERVER_STATUS.SERVER_STATUS_IN_TRANS)  # type: ignore[attr-defined]


@dataclass
class _TicketBatch:
    """One attempt at storing new tickets: what each came to, and which tickets the attempt
    inserts, to look for them when its COMMIT gets no reply."""

    tickets: Sequence[NewTicket]
    now: datetime
    key_ttl: timedelta
    outcomes: list[Stored] = field(default_factory=list)
    inserted: list[str] = field(default_factory=list)

    def run(self, cursor: Any) -> list[Stored]:
        """Read the keys (only when there are some, a round trip of its own), then insert
        and commit in one round trip."""
        keys = [t.key.key.encode() for t in self.tickets if t.key is not None]
        stamp = _db_text(self.now)
        if keys:
            fresh, expired = self._plan(*_held_keys(cursor, keys))
            key_rows = [
                (t.key.key.encode(), t.key.fingerprint, t.ticket, stamp)
                for t in fresh
                if t.key is not None
            ]
        else:  # the usual case: every ticket is inserted
            fresh, expired, key_rows = list(self.tickets), [], []
            self.inserted = [new.ticket for new in fresh]
            self.outcomes = [self._view(new) for new in fresh]
        _commit(cursor, *_insert_statements(fresh, key_rows, expired, stamp))
        return self.outcomes

    def _plan(
        self, records: dict[bytes, tuple[Any, ...]], busy: set[bytes]
    ) -> tuple[list[NewTicket], list[bytes]]:
        """Which tickets to insert, and which expired keys to forget first."""
        cutoff = _db_time(self.now - self.key_ttl)
        self.outcomes, self.inserted = [], []
        fresh: list[NewTicket] = []
        expired: list[bytes] = []
        for new in self.tickets:
            key = new.key.key.encode() if new.key is not None else None
            record = records.get(key) if key is not None else None
            if new.key is not None and key in busy:
                self.outcomes.append(KeyInUse(new.key.key))
                continue
            if record is not None and record[3] >= cutoff:
                self.outcomes.append(KeyRecord(ticket=record[2], fingerprint=bytes(record[1])))
                continue
            if record is not None and key is not None:
                expired.append(key)
            fresh.append(new)
            self.inserted.append(new.ticket)
            self.outcomes.append(self._view(new))
        return fresh, expired

    def _view(self, new: NewTicket) -> TicketView:
        return TicketView(new.ticket, TicketStatus.PENDING, rule_statuses(new.rules, {}), self.now)


# Keys read with a shared lock that does not wait: a key another transaction has inserted and
# not committed yet is refused at once (that request is still in progress), never waited for.
# MySQL 8 runs the first executable comment and MariaDB (10.3+) the second; MariaDB ignores
# MySQL's /*!80000 comments.
_KEYS_SQL = (
    "SELECT idempotency_key, fingerprint, ticket_id, created_at FROM idempotency_keys"
    " WHERE idempotency_key IN %s"
    " /*!80000 FOR SHARE NOWAIT */ /*M!100300 LOCK IN SHARE MODE NOWAIT */"
)


def _held_keys(cursor: Any, keys: list[bytes]) -> tuple[dict[bytes, tuple[Any, ...]], set[bytes]]:
    """The stored records of keys (by key), and the keys a running transaction holds."""
    try:
        return _key_rows(cursor, keys), set()
    except pymysql.err.MySQLError as exc:
        if _error_code(exc) not in (LOCK_WAIT_TIMEOUT, LOCK_NOWAIT):
            raise
    records: dict[bytes, tuple[Any, ...]] = {}
    busy: set[bytes] = set()
    for key in keys:  # some key is held: which, one at a time (a rare case)
        try:
            records.update(_key_rows(cursor, [key]))
        except pymysql.err.MySQLError as exc:
            if _error_code(exc) not in (LOCK_WAIT_TIMEOUT, LOCK_NOWAIT):
                raise
            busy.add(key)
    return records, busy


def _key_rows(cursor: Any, keys: list[bytes]) -> dict[bytes, tuple[Any, ...]]:
    cursor.execute(_KEYS_SQL, (keys,))
    return {bytes(row[0]): row for row in cursor.fetchall()}


def _insert_statements(
    fresh: Sequence[NewTicket],
    key_rows: Sequence[tuple[bytes, bytes, str, str]],
    expired: Sequence[bytes],
    stamp: str,
) -> tuple[list[str], list[Any]]:
    """The statements (placeholders only: the driver escapes every value) and arguments that
    store new tickets, their outbox messages and keys, after forgetting expired keys."""
    statements: list[str] = []
    args: list[Any] = []
    if expired:
        statements.append("DELETE FROM idempotency_keys WHERE idempotency_key IN %s")
        args.append(list(expired))
    if key_rows:
        statements.append(
            "INSERT INTO idempotency_keys (idempotency_key, fingerprint, ticket_id, created_at)"  # noqa: S608  # nosec B608
            " VALUES " + _values(len(key_rows), "(%s, %s, %s, %s)")
        )
    ticket_rows = [
        (t.ticket, t.request.age, t.request.value, ",".join(t.rules), stamp) for t in fresh
    ]
    if ticket_rows:
        statements.append(
            "INSERT INTO tickets (id, age, value, status, required_rules, created_at) VALUES "  # noqa: S608  # nosec B608
            + _values(len(ticket_rows), "(%s, %s, %s, 'PENDING', %s, %s)")
        )
    outbox_rows = [(m.ticket, m.rule, m.body, stamp) for t in fresh for m in t.messages]
    if outbox_rows:
        statements.append(
            "INSERT INTO outbox (ticket_id, rule, body, created_at) VALUES "  # noqa: S608  # nosec B608
            + _values(len(outbox_rows), "(%s, %s, %s, %s)")
        )
    args += [value for row in (*key_rows, *ticket_rows, *outbox_rows) for value in row]
    return statements, args


def _commit(cursor: Any, statements: Sequence[str], args: Sequence[Any]) -> None:
    """Run the statements and COMMIT in one round trip.

    The server stops at the first statement it refuses, so an error for any statement but the
    last means the COMMIT never ran; so does a lock wait refusing the COMMIT itself (it waits
    for FLUSH TABLES WITH READ LOCK, and rolls back when refused): those errors propagate,
    and nothing was stored. Anything else (no reply at all, a lost connection, an interrupted
    COMMIT) raises _CommitUnknown: the COMMIT may have happened.
    """
    done = 0
    try:
        cursor.execute(";".join([*statements, "COMMIT"]), args)
        done = 1
        while cursor.nextset():
            done += 1
    except BaseException as exc:
        code = _error_code(exc)
        if code is not None and (done < len(statements) or code == LOCK_WAIT_TIMEOUT):
            raise
        raise _CommitUnknown(cursor.connection.thread_id()) from exc


def _end_session(cursor: Any, thread_id: int, deadline: float, tickets: Sequence[str]) -> None:
    """KILL a session and wait until it has left the process list: its transaction has then
    ended, committed or rolled back, for good."""
    try:
        cursor.execute("KILL %s", (thread_id,))
    except pymysql.err.MySQLError as exc:
        if _error_code(exc) != NO_SUCH_THREAD:  # gone already: nothing to stop
            raise
    while _session_alive(cursor, thread_id):
        if time.monotonic() >= deadline:
            raise OutcomeUnknown(
                f"MySQL session {thread_id} was still ending after KILL", tuple(tickets)
            )
        time.sleep(0.02)


def _server_boot(conn: Connection) -> float:
    """When the server started, by its own clock (to within its uptime's second)."""
    with conn.cursor() as cursor:
        cursor.execute("SELECT UNIX_TIMESTAMP(NOW(6))")
        now = cursor.fetchone()
        cursor.execute("SHOW GLOBAL STATUS LIKE 'Uptime'")
        uptime = cursor.fetchone()
    assert now is not None and uptime is not None
    return float(now[0]) - float(uptime[1])


def _session_alive(cursor: Any, thread_id: int) -> bool:
    cursor.execute(
        "SELECT COUNT(*) FROM information_schema.PROCESSLIST WHERE ID = %s", (thread_id,)
    )
    return bool(cursor.fetchone()[0])


def _values(rows: int, row: str) -> str:
    """The VALUES list of a multi-row INSERT: `row` (placeholders) `rows` times."""
    return ", ".join([row] * rows)


def _run(cursor: Any, sql: str, args: Sequence[Any]) -> list[tuple[tuple[Any, ...], ...]]:
    """Run several statements in one round trip; every statement's rows (empty for those
    that return none). All results are read, so the connection is ready for the next query."""
    cursor.execute(sql, args)
    results = [cursor.fetchall()]
    while cursor.nextset():
        results.append(cursor.fetchall())
    return results


def _db_text(moment: datetime) -> str:
    """A DATETIME(6) literal: the driver quotes a string far faster than it formats a
    datetime, and a batch repeats one stamp in every row."""
    return _db_time(moment).isoformat(sep=" ", timespec="microseconds")


def _db_time(moment: datetime) -> datetime:
    return moment.astimezone(UTC).replace(tzinfo=None)


def _identifier(name: str) -> str:
    """A database name safe to quote in backticks: MySQL's own limit of 64 characters, and
    only ASCII letters, digits, _, $ and - (test databases such as credit_test_a-b)."""
    if not _DATABASE_NAME.fullmatch(name):
        raise settings.SettingsError(
            f"database name {name!r} must be 1 to 64 ASCII letters, digits, _, $ or -"
        )
    return name


_DATABASE_NAME = re.compile(r"[A-Za-z0-9_$-]{1,64}")


def _statements(script: str) -> list[str]:
    lines = [line for line in script.splitlines() if not line.lstrip().startswith("--")]
    return [s.strip() for s in "\n".join(lines).split(";") if s.strip()]
