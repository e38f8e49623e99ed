"""A stalled or vanished MySQL never makes an answer lie: a request told "not stored"
(StoreUnavailable, the API's 503) left no ticket, and one told "stored" left exactly one.

Runs against a private MariaDB, so FLUSH TABLES WITH READ LOCK and SIGSTOP stall nobody else.
"""

import threading
import time
import uuid
from decimal import Decimal

import pymysql
import pytest

from credit import mysql
from credit.domain import CreditRequest, TicketView
from credit.errors import OutcomeUnknown, StoreUnavailable
from credit.messages import split_request
from credit.mysql import NewTicket, TicketStore, Timeouts
from credit.ticket_writer import BatchingTicketWriter

pytestmark = [pytest.mark.integration, pytest.mark.slow]
pytest_plugins = ["tests.support.fixtures"]

STALL_TIMEOUTS = Timeouts(lock_wait=1, read=3, outcome_check=5)


@pytest.fixture
def db(private_mariadb):
    mysql.migrate(private_mariadb.url)
    return private_mariadb


def new_ticket(index: int = 0) -> NewTicket:
    ticket = str(uuid.uuid4())
    request = CreditRequest(30, Decimal(1000 + index))
    return NewTicket(ticket, request, tuple(split_request(ticket, request, ("age", "value"))))


def stored(db, ticket: str) -> int:
    conn = db.connect()
    try:
        with conn.cursor() as cursor:
            cursor.execute("SELECT COUNT(*) FROM tickets WHERE id = %s", (ticket,))
            return int(cursor.fetchone()[0])
    finally:
        conn.close()


class ReadLock:
    """FLUSH TABLES WITH READ LOCK held from a connection of its own, released in any case."""

    def __init__(self, db):
        self.conn = db.connect()

    def __enter__(self):
        with self.conn.cursor() as cursor:
            cursor.execute("FLUSH TABLES WITH READ LOCK")
        return self

    def __exit__(self, *exc_info):
        try:
            with self.conn.cursor() as cursor:
                cursor.execute("UNLOCK TABLES")
        finally:
            self.conn.close()


def attempt(create, new):
    try:
        return create(new)
    except (StoreUnavailable, OutcomeUnknown) as exc:
        return exc


def assert_truthful(db, outcomes):
    """Every "not stored" left no ticket, every "stored" exactly one."""
    for new, outcome in outcomes:
        if isinstance(outcome, StoreUnavailable):
            assert stored(db, new.ticket) == 0, f"{new.ticket} answered 503 but stored"
        elif isinstance(outcome, TicketView):
            assert stored(db, new.ticket) == 1, f"{new.ticket} answered 202 but not stored"


def test_a_stalled_mysql_refuses_a_direct_write_itself_and_nothing_is_stored(db):
    store = TicketStore(db.url, timeouts=STALL_TIMEOUTS)
    store.create_tickets([new_ticket()])  # a pooled connection, ready
    new = new_ticket(1)
    with ReadLock(db):
        started = time.monotonic()
        outcome = attempt(lambda n: store.create_tickets([n])[0], new)
        waited = time.monotonic() - started
        time.sleep(max(0.0, 2.0 - waited))  # the lock outlives the request's wait
    assert isinstance(outcome, StoreUnavailable)
    assert waited < STALL_TIMEOUTS.read  # MySQL itself said no, after its lock wait
    assert stored(db, new.ticket) == 0
    assert isinstance(store.create_tickets([new_ticket(2)])[0], TicketView)  # and recovers


def test_a_stall_longer_than_the_requests_wait_leaves_every_answer_true(db):
    """Requests keep coming while FLUSH TABLES WITH READ LOCK is held longer than their
    wait: batches in flight are refused by MySQL after its lock wait, tickets still queued
    are withdrawn; after the lock lifts, tickets are stored again."""
    store = TicketStore(db.url, timeouts=STALL_TIMEOUTS)
    writer = BatchingTicketWriter(store, wait=1.5)
    outcomes: list[tuple[NewTicket, object]] = []
    lock = threading.Lock()

    def client(index):
        new = new_ticket(index)
        outcome = attempt(writer.create_ticket, new)
        with lock:
            outcomes.append((new, outcome))

    threads = []
    with ReadLock(db):
        for index in range(16):
            threads.append(threading.Thread(target=client, args=(index,)))
            threads[-1].start()
            time.sleep(0.2)  # 3.2 s of arrivals under a 3.2 s lock
    for index in range(16, 20):  # and a few once it is lifted
        threads.append(threading.Thread(target=client, args=(index,)))
        threads[-1].start()
    for thread in threads:
        thread.join(30)
    writer.close()
    assert len(outcomes) == 20
    assert_truthful(db, outcomes)
    refused = [o for _, o in outcomes if isinstance(o, StoreUnavailable)]
    assert refused, "the stall was never felt"
    assert any(isinstance(o, TicketView) for _, o in outcomes)
    assert not any(isinstance(o, OutcomeUnknown) for _, o in outcomes)  # MySQL answered


def test_a_commit_sent_before_mysql_froze_is_found_not_answered_503(db, monkeypatch):
    """The driver's read timeout fires after the COMMIT went out; MySQL, resumed, runs it.
    The request must learn that before answering (it used to answer 503, stored)."""
    monkeypatch.setenv("MYSQL_OUTCOME_CHECK_SECONDS", "10")
    kwargs = {**mysql.connect_kwargs(db.url), "read_timeout": 1}
    store = TicketStore(db.url, factory=lambda: pymysql.connect(**kwargs))
    store.create_ticket(*ticket_args(new_ticket()))  # a pooled connection, ready
    new = new_ticket(1)
    outcome: list[object] = []
    db.pause()
    try:
        thread = threading.Thread(
            target=lambda: outcome.append(
                attempt(lambda n: store.create_ticket(*ticket_args(n)), new)
            )
        )
        thread.start()
        time.sleep(2.0)  # past the read timeout: the request has given up reading
    finally:
        db.resume()
    thread.join(20)
    assert outcome and not isinstance(outcome[0], OutcomeUnknown)
    assert_truthful(db, [(new, outcome[0])])


def test_a_mysql_that_stays_frozen_after_the_commit_was_sent_is_an_unknown_outcome(db):
    store = TicketStore(db.url, timeouts=Timeouts(lock_wait=1, read=1, outcome_check=2))
    store.create_tickets([new_ticket()])
    new = new_ticket(1)
    db.pause()
    try:
        started = time.monotonic()
        outcome = attempt(lambda n: store.create_tickets([n])[0], new)
        waited = time.monotonic() - started
    finally:
        db.resume()
    assert isinstance(outcome, OutcomeUnknown)  # never StoreUnavailable: it may be stored
    assert outcome.tickets == (new.ticket,)
    assert waited < 1 + 2 + 3 + 1  # read timeout, outcome check, one connect attempt


def ticket_args(new: NewTicket):
    return new.ticket, new.request, new.messages


def test_a_session_of_a_server_restarted_since_is_never_killed(db):
    """Thread ids start again at 1 after a restart: the old session's id may now be another
    connection's (another application's, on a shared server). It is left alone."""
    store = TicketStore(db.url, timeouts=STALL_TIMEOUTS)
    new = new_ticket()
    assert isinstance(store.create_tickets([new])[0], TicketView)
    with store._cursor(transaction=True) as cursor:
        old_boot = store._boots[cursor.connection]
    db.restart()
    bystander = db.connect()
    try:
        with bystander.cursor() as cursor:
            cursor.execute("SELECT CONNECTION_ID()")
            (reused_id,) = cursor.fetchone()
        unknown = mysql._CommitUnknown(reused_id)
        unknown.boot = old_boot
        assert store._committed(unknown, [new.ticket])  # found, without a KILL
        with bystander.cursor() as cursor:
            cursor.execute("SELECT 1")  # still alive
        unknown.boot = None  # a session whose server is not known: killed, as it must be
        store._committed(unknown, [new.ticket])
        with pytest.raises(pymysql.err.OperationalError), bystander.cursor() as cursor:
            cursor.execute("SELECT 1")
    finally:
        bystander.close()
