"""Reading MySQL, the record, to count lost, stuck, double-counted and wrong tickets."""

from __future__ import annotations

import contextlib
import logging
import re
import threading
import time
from collections import Counter
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from decimal import ROUND_HALF_UP, Decimal, InvalidOperation

import pymysql

from credit.domain import decide
from tests.faults.load import UNKNOWN, Accepted, Attempt

LOGGER = logging.getLogger(__name__)
MIN_AGE = 18
MAX_VALUE = Decimal(100000)
POLL_SECONDS = 1.0
WRONG_REQUEST = "stored request is not the one sent"
WRONG_VERDICT = "a verdict the rule does not give"
WRONG_DECISION = "decision the rules do not give"
STORED_UNSENT = "stored, but no client sent its request"
STORED_REFUSED = "stored, but every request for it was refused"
CENT = Decimal("0.01")
CONSUMING = re.compile(r" local_runtime\.mapping: (\S+): consuming ")

Connect = Callable[[], pymysql.Connection]
Decision = tuple[str, datetime | None]


@dataclass(frozen=True)
class Row:
    """A ticket as MySQL holds it, with its recorded verdicts."""

    age: int
    value: Decimal
    status: str
    required: tuple[str, ...]
    verdicts: dict[str, list[bool]]
    latency: float | None = None  # seconds from created_at to decided_at


def describe(ticket: str, row: Row | None, sent: Accepted | None) -> str:
    """A ticket as sent and as stored, for a person chasing a failure."""
    asked = f"sent age={sent.age} value={sent.value}" if sent else "never got a 202"
    if row is None:
        return f"{ticket} ({asked}; no row)"
    return (
        f"{ticket} ({asked}; stored age={row.age} value={row.value} status={row.status} "
        f"required={','.join(row.required)} verdicts={row.verdicts})"
    )


def expected_verdicts(age: int, value: Decimal) -> dict[str, bool]:
    """What the rules say, recomputed here from the stored request."""
    return {"age": age >= MIN_AGE, "value": value <= MAX_VALUE}


def expected_status(age: int, value: Decimal) -> str:
    return "APPROVED" if all(expected_verdicts(age, value).values()) else "NOT_APPROVED"


@dataclass
class Audit:
    """The verdict on one scenario's tickets; `samples` keeps a few ids per failure kind."""

    accepted: int = 0
    decided: int = 0
    lost: int = 0
    stuck: int = 0
    double: int = 0
    wrong: int = 0
    wrong_kinds: Counter[str] = field(default_factory=Counter)
    unaccepted_stored: int = 0  # stored, but the client never got the 202 (it retried)
    unaccepted_pending: int = 0  # of those, still PENDING: stored half-way or stranded
    stored_unsent: int = 0  # no request a client sent has its age and value: a hidden request
    stored_refused: int = 0  # every request with its age and value was refused (503, 4xx)
    samples: dict[str, list[str]] = field(default_factory=dict)

    def note(
        self, kind: str, ticket: str, row: Row | None = None, sent: Accepted | None = None
    ) -> None:
        """Keep the first few tickets of each failure kind, with what was sent and stored."""
        found = self.samples.setdefault(kind, [])
        if len(found) < 3:
            found.append(describe(ticket, row, sent))

    @property
    def failures(self) -> int:
        return self.lost + self.stuck + self.double + self.wrong


class DecisionWatch:
    """Reads every decided ticket each second; a decision that ever changes is double-counted.

    Survives MySQL being down (it is, on purpose, in some scenarios): a failed read is retried.
    """

    def __init__(self, connect: Connect) -> None:
        self._connect = connect
        self._conn: pymysql.Connection | None = None
        self.first: dict[str, Decision] = {}
        self.changed: dict[str, tuple[Decision, Decision]] = {}
        self.statuses: dict[str, str] = {}
        self._lock = threading.Lock()
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="decision-watch", daemon=True)

    def start(self) -> None:
        self._thread.start()

    def stop(self) -> None:
        self._stop.set()
        self._thread.join()
        self._close()

    def _run(self) -> None:
        while not self._stop.wait(POLL_SECONDS):
            self.poll()

    def poll(self) -> bool:
        """One read of every ticket's status; False when MySQL could not be read."""
        with self._lock:
            return self._poll()

    def _poll(self) -> bool:
        try:
            if self._conn is None:
                self._conn = self._connect()
            with self._conn.cursor() as cursor:
                cursor.execute("SELECT id, status, decided_at FROM tickets")
                rows = cursor.fetchall()
        except (pymysql.MySQLError, OSError) as exc:
            LOGGER.debug("decision watch: MySQL read failed: %s", exc)
            self._close()
            return False
        statuses: dict[str, str] = {}
        for ticket, status, decided_at in rows:
            statuses[ticket] = status
            if status != "PENDING":
                self._seen(ticket, (status, decided_at))
        self.statuses = statuses
        return True

    def _seen(self, ticket: str, decision: Decision) -> None:
        first = self.first.setdefault(ticket, decision)
        if first != decision and ticket not in self.changed:
            LOGGER.error("ticket %s decision changed from %s to %s", ticket, first, decision)
            self.changed[ticket] = (first, decision)

    def _close(self) -> None:
        if self._conn is not None:
            with contextlib.suppress(Exception):
                self._conn.close()
            self._conn = None

    def wait_settled(self, tickets: Iterable[str], deadline: float) -> float | None:
        """Poll until every ticket is decided; the monotonic time it happened, or None."""
        wanted = list(tickets)
        while True:
            if self.poll() and all(self.statuses.get(t, "PENDING") != "PENDING" for t in wanted):
                return time.monotonic()
            if time.monotonic() >= deadline:
                return None
            time.sleep(0.25)


def read_rows(conn: pymysql.Connection) -> dict[str, Row]:
    """Every ticket with its verdicts (a list per rule: more than one would be a double).

    Both tables are read from one snapshot: a ticket still being decided (one no client was
    told about, so nothing waited for it) would otherwise show a decision without the verdict
    committed with it."""
    with conn.cursor() as cursor:
        cursor.execute("START TRANSACTION WITH CONSISTENT SNAPSHOT")
        try:
            return _read_rows(cursor)
        finally:
            cursor.execute("COMMIT")


def _read_rows(cursor: pymysql.cursors.Cursor) -> dict[str, Row]:
    cursor.execute("SELECT ticket_id, rule, passed FROM rule_results")
    verdicts: dict[str, dict[str, list[bool]]] = {}
    for ticket, rule, passed in cursor.fetchall():
        verdicts.setdefault(ticket, {}).setdefault(rule, []).append(bool(passed))
    cursor.execute(
        "SELECT id, age, value, status, required_rules, created_at, decided_at FROM tickets"
    )
    return {
        ticket: Row(
            int(age),
            Decimal(value),
            status,
            tuple(rules.split(",")),
            verdicts.get(ticket, {}),
            (decided - created).total_seconds() if decided else None,
        )
        for ticket, age, value, status, rules, created, decided in cursor.fetchall()
    }


def latency_summary(rows: Mapping[str, Row], tickets: Iterable[str]) -> str:
    """Decision latency (created_at to decided_at) of the given tickets: p50, p99, max."""
    found = sorted(r.latency for t in tickets if (r := rows.get(t)) and r.latency is not None)
    if not found:
        return "decision latency: no decided ticket"

    def at(share: float) -> float:
        return found[min(len(found) - 1, int(share * len(found)))]

    return f"decision latency p50 {at(0.5):.2f}s, p99 {at(0.99):.2f}s, max {found[-1]:.2f}s"


def audit(
    accepted: Sequence[Accepted],
    rows: Mapping[str, Row],
    changed: Iterable[str],
    attempts: Sequence[Attempt] | None = None,
) -> Audit:
    """Count lost and stuck among accepted tickets; double and wrong among every stored one.

    Given every attempt the clients made, a stored ticket that no 202 named is explained only
    by an attempt whose answer never came; one whose every attempt was refused, or that no
    client sent at all, is counted (`stored_refused`, `stored_unsent`)."""
    result = Audit(accepted=len(accepted))
    sent = {a.ticket: a for a in accepted}
    unaccepted = set(rows) - set(sent)
    result.unaccepted_stored = len(unaccepted)
    result.unaccepted_pending = sum(rows[t].status == "PENDING" for t in unaccepted)
    for ticket in sent:
        row = rows.get(ticket)
        if row is None:
            result.lost += 1
            result.note("lost", ticket, None, sent[ticket])
        elif row.status == "PENDING":
            result.stuck += 1
            result.note("stuck", ticket, row, sent[ticket])
        else:
            result.decided += 1
    if attempts is not None:
        _untold(result, {t: rows[t] for t in unaccepted}, attempts)
    doubles = set(changed) | {t for t, row in rows.items() if _inconsistent(row)}
    result.double = len(doubles)
    for ticket in sorted(doubles):
        result.note("double", ticket, rows.get(ticket), sent.get(ticket))
    for ticket, row in rows.items():
        kind = _wrong(row, sent.get(ticket))
        if kind:
            result.wrong += 1
            result.wrong_kinds[kind] += 1
            result.note(f"wrong ({kind})", ticket, row, sent.get(ticket))
    return result


def money_key(age: int, value: Decimal) -> tuple[int, Decimal] | None:
    """Age and value as MySQL stores them (DECIMAL(15, 2) rounds half up); None if it cannot."""
    try:
        return age, value.quantize(CENT, rounding=ROUND_HALF_UP)
    except InvalidOperation:  # more digits than any stored value holds
        return None


def _untold(result: Audit, unaccepted: Mapping[str, Row], attempts: Sequence[Attempt]) -> None:
    """Sort the stored tickets no 202 named by what their clients were told."""
    told: dict[tuple[int, Decimal], set[str]] = {}
    for attempt in attempts:
        key = money_key(attempt.age, attempt.value)
        if key is not None:
            told.setdefault(key, set()).add(attempt.outcome)
    for ticket, row in sorted(unaccepted.items()):
        outcomes = told.get((row.age, row.value), set())
        if not outcomes:
            result.stored_unsent += 1
            result.note(STORED_UNSENT, ticket, row)
        elif UNKNOWN not in outcomes:
            result.stored_refused += 1
            answers = ", ".join(sorted(outcomes))
            result.note(f"{STORED_REFUSED} ({answers})", ticket, row)


def consumer_connections(log_lines: Iterable[str]) -> Counter[str]:
    """How often each function's consumer (re)connected, from the runtime's `consuming` lines."""
    return Counter(m.group(1) for line in log_lines if (m := CONSUMING.search(line)))


def _inconsistent(row: Row) -> bool:
    """More verdicts than required rules, or a decided status its verdicts do not give."""
    if any(len(v) > 1 for v in row.verdicts.values()) or set(row.verdicts) - set(row.required):
        return True
    if row.status == "PENDING":
        return False
    latest = {rule: v[-1] for rule, v in row.verdicts.items()}
    return decide(row.required, latest).value != row.status


def _wrong(row: Row, sent: Accepted | None) -> str | None:
    """Why the ticket is wrong, or None: the stored request is not the one the client sent, or
    a verdict or the decision is not what the rules give for the stored request."""
    if sent is not None and (row.age, row.value) != (sent.age, sent.value):
        return WRONG_REQUEST
    expected = expected_verdicts(row.age, row.value)
    if any(passed != [expected[rule]] for rule, passed in row.verdicts.items() if rule in expected):
        return WRONG_VERDICT
    if row.status != "PENDING" and row.status != expected_status(row.age, row.value):
        return WRONG_DECISION
    return None
