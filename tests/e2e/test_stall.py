"""The running system with its MySQL stalled: FLUSH TABLES WITH READ LOCK held longer than a
request's wait while POSTs arrive. Every 503 left no ticket, every 202 exactly one.

The system runs against a private MariaDB, so the lock stalls nobody else; its waits are
configured short (environment), and the lock is held 12 s, longer than the 10 s a request
used to wait before answering 503 with its transaction still pending.
"""

import threading
import time
from decimal import Decimal

import pytest

from credit import mysql
from tests.e2e.conftest import System
from tests.helpers import TEST_VHOST, delete_vhost

pytestmark = [pytest.mark.e2e, pytest.mark.slow]
pytest_plugins = ["tests.support.fixtures"]

LOCK_SECONDS = 12.0
WAITS = {
    "TICKET_WRITE_TIMEOUT_SECONDS": "2",
    "MYSQL_LOCK_WAIT_TIMEOUT_SECONDS": "1",
    "MYSQL_READ_TIMEOUT_SECONDS": "4",
    "MYSQL_OUTCOME_CHECK_SECONDS": "5",
}


@pytest.fixture(scope="module")
def stalled_system(tmp_path_factory, private_mariadb_module):
    mysql.migrate(private_mariadb_module.url)
    running = System(
        vhost=f"{TEST_VHOST}-stall",
        environment={"MYSQL_URL": private_mariadb_module.url, **WAITS},
    )
    running.start(tmp_path_factory.mktemp("stall") / "runtime.log")
    yield running, private_mariadb_module
    try:
        assert running.stop() == 0
    finally:
        delete_vhost(running.vhost)


def stored_by_value(db) -> dict[Decimal, list[str]]:
    conn = db.connect()
    try:
        with conn.cursor() as cursor:
            cursor.execute("SELECT value, id FROM tickets")
            found: dict[Decimal, list[str]] = {}
            for value, ticket in cursor.fetchall():
                found.setdefault(Decimal(value), []).append(ticket)
            return found
    finally:
        conn.close()


def test_a_stall_longer_than_the_wait_leaves_every_answer_true(stalled_system):
    system, db = stalled_system
    answers: list[tuple[Decimal, int, dict]] = []
    lock = threading.Lock()
    counter = iter(range(1, 10**6))
    done = threading.Event()

    def client():
        while not done.is_set():
            with lock:
                value = Decimal(1000 + next(counter))  # one value per request: countable
            status, _, body = system.post(f'{{"age": 30, "value": {value}}}', timeout=60)
            with lock:
                answers.append((value, status, body))

    clients = [threading.Thread(target=client) for _ in range(4)]
    holder = db.connect()
    try:
        with holder.cursor() as cursor:
            cursor.execute("FLUSH TABLES WITH READ LOCK")
        for thread in clients:
            thread.start()
        time.sleep(LOCK_SECONDS)
    finally:
        with holder.cursor() as cursor:
            cursor.execute("UNLOCK TABLES")
        holder.close()
    time.sleep(0.5)  # and a moment after the lock lifts
    done.set()
    for thread in clients:
        thread.join(60)

    statuses = [status for _, status, _ in answers]
    assert set(statuses) <= {202, 503}, statuses
    assert 503 in statuses, "the stall was never felt"
    assert 202 in statuses, "nothing was stored once the lock lifted"
    lies = []
    stored = stored_by_value(db)
    for value, status, body in answers:
        tickets = stored.get(value, [])
        if status == 503 and tickets:
            lies.append(f"value {value}: answered 503, stored as {tickets}")
        if status == 202 and tickets != [body["ticket"]]:
            lies.append(f"value {value}: answered 202 {body['ticket']}, stored as {tickets}")
    assert lies == [], lies
