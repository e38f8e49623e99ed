"""MySQL, the system of record: tickets, rule results, the outbox and set-aside messages."""

from __future__ import annotations

import hashlib
import logging
import queue
import time
from collections.abc import Callable, Iterable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
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
from credit.errors import StoreUnavailable
from credit.messages import RuleMessage

Verdicts = tuple[bool, str]  # a recorded rule result: passed, reason
LOGGER = logging.getLogger(__name__)
T = TypeVar("T")

Connection = pymysql.connections.Connection
ConnectionFactory = Callable[[], Connection]

DRIVER_ERRORS = (pymysql.err.OperationalError, pymysql.err.InterfaceError, OSError)


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

    @property
    def rules(self) -> tuple[str, ...]:
        return tuple(message.rule for message in self.messages)


@dataclass(frozen=True)
class OutboxEntry:
    message: RuleMessage
    attempts: int


def connect_kwargs(url: str | None = None) -> dict[str, Any]:
    """Translate mysql://user:password@host:port/database into pymysql.connect arguments."""
    parts = urlsplit(settings.get(settings.MYSQL_URL, url))
    if parts.scheme not in ("mysql", "mariadb"):
        raise settings.SettingsError(f"{settings.MYSQL_URL} must start with mysql://, got {url!r}")
    host = parts.hostname or "127.0.0.1"
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
        # No gap locks: concurrent multi-row inserts and deletes on the outbox would deadlock
        # on them, and every decision locks the rows it reads explicitly (FOR UPDATE).
        "init_command": "SET SESSION TRANSACTION ISOLATION LEVEL READ COMMITTED",
        "connect_timeout": 3,
        "read_timeout": 30,
        "write_timeout": 30,
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
RETRYABLE_CODES = frozenset({1205, 1213})  # lock wait timeout, deadlock


def _is_retryable(exc: BaseException | None) -> bool:
    return isinstance(exc, pymysql.err.OperationalError) and exc.args[:1] in {
        (code,) for code in RETRYABLE_CODES
    }


def describe(url: str | None = None) -> str:
    """The URL with any password hidden, for messages a person reads."""
    kwargs = connect_kwargs(url)
    return f"mysql://{kwargs['user']}@{kwargs['host']}:{kwargs['port']}/{kwargs['database']}"


def connect(url: str | None = None, database: bool = True) -> Connection:
    """Open one connection; a failure names the URL tried, without the password."""
    kwargs = connect_kwargs(url)
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
    """Reads and writes tickets; one lazily opened connection per thread, reopened after errors."""

    def __init__(
        self, url: str | None = None, factory: ConnectionFactory | None = None, pool_size: int = 16
    ) -> None:
        self._url = url
        self._factory = factory or (lambda: connect(url))
        # Connections for transactions run with autocommit off, so a transaction starts with
        # its first statement instead of costing a BEGIN round trip; the others autocommit.
        self._pools: dict[bool, queue.LifoQueue[Connection]] = {
            False: queue.LifoQueue(),
            True: queue.LifoQueue(),
        }
        self._pool_size = pool_size

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
                    conn.autocommit(False)
            with conn.cursor() as cursor:
                yield cursor
            # Commit unless the work already did, in its last round trip.
            if transaction and _in_transaction(conn):
                conn.commit()
        except DRIVER_ERRORS as exc:
            if transaction and conn is not None and _is_retryable(exc):
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
        """Insert the ticket and its outbox messages in one transaction."""
        return self.create_tickets([NewTicket(ticket, request, tuple(messages))])[0]

    def _transaction(self, work: Callable[[Any], T]) -> T:
        """Run work(cursor) in a transaction, again from the start after a deadlock."""
        for attempt in range(1, TRANSACTION_ATTEMPTS + 1):
            try:
                with self._cursor(transaction=True) as cursor:
                    return work(cursor)
            except StoreUnavailable as exc:
                if attempt == TRANSACTION_ATTEMPTS or not _is_retryable(exc.__cause__):
                    raise
                LOGGER.info("MySQL transaction retried after: %s", exc)
                time.sleep(0.005 * attempt)
        raise AssertionError("unreachable")  # pragma: no cover

    def create_tickets(self, tickets: Sequence[NewTicket]) -> list[TicketView]:
        """Insert tickets and their outbox messages in one transaction: all or none.

        One round trip: both inserts and the COMMIT travel together.
        """
        now = utcnow()
        stamp = _db_text(now)
        ticket_rows = [
            (t.ticket, t.request.age, t.request.value, ",".join(t.rules), stamp) for t in tickets
        ]
        outbox_rows = [(m.ticket, m.rule, m.body, stamp) for t in tickets for m in t.messages]
        # Only placeholders are repeated into the SQL; the driver escapes every value.
        sql = (
            "INSERT INTO tickets (id, age, value, status, required_rules, created_at) VALUES "  # noqa: S608  # nosec B608
            + _values(len(ticket_rows), "(%s, %s, %s, 'PENDING', %s, %s)")
            + ";"
        )
        if outbox_rows:
            sql += (
                "INSERT INTO outbox (ticket_id, rule, body, created_at) VALUES "  # noqa: S608  # nosec B608
                + _values(len(outbox_rows), "(%s, %s, %s, %s)")
                + ";"
            )
        args = [value for row in (*ticket_rows, *outbox_rows) for value in row]
        self._transaction(lambda cursor: _run(cursor, sql + "COMMIT", args))
        return [
            TicketView(t.ticket, TicketStatus.PENDING, rule_statuses(t.rules, {}), now)
            for t in tickets
        ]

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
    if not name.replace("_", "").isalnum():
        raise settings.SettingsError(f"database name {name!r} must be letters, digits and _")
    return name


def _statements(script: str) -> list[str]:
    lines = [line for line in script.splitlines() if not line.lstrip().startswith("--")]
    return [s.strip() for s in "\n".join(lines).split(";") if s.strip()]
