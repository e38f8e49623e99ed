"""Idempotency-Key records in MySQL: stored with the ticket, one ticket per key however many
retries race, another body refused, a key still in a transaction reported, expiry."""

import random
import threading
import time
import uuid
from concurrent.futures import ThreadPoolExecutor
from datetime import timedelta
from decimal import Decimal

import pytest

from credit import mysql
from credit.domain import CreditRequest, TicketView
from credit.errors import IdempotencyKeyInUse, IdempotencyKeyReused, StoreUnavailable
from credit.idempotency import KeyClaim, KeyInUse, KeyRecord, fingerprint
from credit.messages import split_request
from credit.mysql import NewTicket, TicketStore
from credit.service import CreditService
from credit.ticket_writer import BatchingTicketWriter
from tests.fakes import FakePublisher

pytestmark = pytest.mark.integration


def unique_request() -> CreditRequest:
    """A request no other test (or earlier run) sends, so its tickets can be counted."""
    return CreditRequest(random.randint(18, 150), Decimal(random.randint(1, 10**11)) / 100)


def keyed(request: CreditRequest, key: str, other_body: bool = False) -> NewTicket:
    ticket = str(uuid.uuid4())
    claimed = CreditRequest(request.age, request.value + 1) if other_body else request
    messages = tuple(split_request(ticket, claimed, ("age", "value")))
    return NewTicket(ticket, claimed, messages, KeyClaim(key, fingerprint(claimed)))


def tickets_like(store: TicketStore, request: CreditRequest) -> int:
    with store._cursor() as cursor:
        cursor.execute(
            "SELECT COUNT(*) FROM tickets WHERE age = %s AND value = %s",
            (request.age, request.value),
        )
        return int(cursor.fetchone()[0])


def service_of(store, cache, writer=None) -> CreditService:
    return CreditService(store, cache, FakePublisher(), ("age", "value"), writer=writer)


def test_a_key_is_stored_with_its_ticket_and_names_it_afterwards(store):
    request, key = unique_request(), f"k-{uuid.uuid4()}"
    first = keyed(request, key)
    [created] = store.create_tickets([first])
    assert isinstance(created, TicketView) and created.ticket == first.ticket
    [again] = store.create_tickets([keyed(request, key)])
    assert again == KeyRecord(first.ticket, fingerprint(request))
    assert tickets_like(store, request) == 1


def test_keys_are_compared_byte_for_byte(store):
    request = unique_request()
    base = f"Case-{uuid.uuid4()}"
    for key in (base, base.lower(), base + " "):  # no case folding, no space padding
        assert isinstance(store.create_tickets([keyed(request, key)])[0], TicketView)
    assert tickets_like(store, request) == 3


def test_one_batch_stores_keyed_and_unkeyed_tickets_and_reports_known_keys(store):
    request, key = unique_request(), f"k-{uuid.uuid4()}"
    earlier = keyed(request, key)
    store.create_tickets([earlier])
    plain = NewTicket(str(uuid.uuid4()), request, ())
    outcomes = store.create_tickets([plain, keyed(request, key), keyed(request, f"{key}-2")])
    assert isinstance(outcomes[0], TicketView) and outcomes[0].ticket == plain.ticket
    assert outcomes[1] == KeyRecord(earlier.ticket, fingerprint(request))
    assert isinstance(outcomes[2], TicketView)
    assert tickets_like(store, request) == 3


def test_a_key_held_by_an_open_transaction_is_reported_in_use_at_once(store, services_ready):
    request, key = unique_request(), f"k-{uuid.uuid4()}"
    holder = mysql.connect(services_ready["MYSQL_URL"])
    holder.autocommit(False)
    try:
        with holder.cursor() as cursor:
            cursor.execute(
                "INSERT INTO idempotency_keys VALUES (%s, %s, %s, UTC_TIMESTAMP(6))",
                (key.encode(), b"\0" * 32, str(uuid.uuid4())),
            )
        started = time.monotonic()
        outcomes = store.create_tickets([keyed(request, key), keyed(request, f"{key}-free")])
        assert time.monotonic() - started < 1  # not a lock wait
        assert outcomes[0] == KeyInUse(key)
        assert isinstance(outcomes[1], TicketView)
    finally:
        holder.rollback()
        holder.close()
    assert tickets_like(store, request) == 1
    assert isinstance(store.create_tickets([keyed(request, key)])[0], TicketView)


def test_the_same_key_with_another_body_is_refused_by_the_service(store, cache):
    service = service_of(store, cache)
    key = f"k-{uuid.uuid4()}"
    first = service.submit({"age": 30, "value": 10}, key)
    assert service.submit({"value": Decimal("10.00"), "age": 30}, key) == type(first)(
        first.ticket, replayed=True
    )
    with pytest.raises(IdempotencyKeyReused):
        service.submit({"age": 30, "value": 11}, key)


@pytest.mark.parametrize("writer_kind", ["direct", "batching"])
def test_concurrent_retries_with_one_key_create_exactly_one_ticket(
    store, cache, services_ready, writer_kind
):
    """16 clients send one request with one key at once, to 4 processes' worth of services
    (each its own store, so they meet only in MySQL)."""
    request, key = unique_request(), f"k-{uuid.uuid4()}"
    stores = [TicketStore(services_ready["MYSQL_URL"]) for _ in range(4)]
    writers = [BatchingTicketWriter(s) if writer_kind == "batching" else None for s in stores]
    services = [service_of(s, cache, w) for s, w in zip(stores, writers, strict=True)]
    barrier = threading.Barrier(16)

    def send(index):
        barrier.wait()
        try:
            return services[index % 4].submit({"age": request.age, "value": request.value}, key)
        except IdempotencyKeyInUse:
            return "in use"

    with ThreadPoolExecutor(16) as pool:
        answers = list(pool.map(send, range(16)))
    again = services[1].submit({"age": request.age, "value": request.value}, key)
    for writer in writers:
        if writer is not None:
            writer.close()
    accepted = [a for a in answers if a != "in use"]
    assert accepted, answers
    assert len({a.ticket for a in accepted}) == 1
    assert sum(not a.replayed for a in accepted) <= 1
    assert tickets_like(store, request) == 1
    assert again.ticket == accepted[0].ticket and again.replayed


def test_an_expired_key_is_a_new_request_and_the_purge_forgets_it(services_ready):
    store = TicketStore(services_ready["MYSQL_URL"], key_ttl=timedelta(seconds=1))
    request, key = unique_request(), f"k-{uuid.uuid4()}"
    first = keyed(request, key)
    store.create_tickets([first])
    time.sleep(1.1)
    # Another body: within the time to live a 422, after it a new request.
    [second] = store.create_tickets([keyed(request, key, other_body=True)])
    assert isinstance(second, TicketView) and second.ticket != first.ticket
    with store._cursor() as cursor:
        cursor.execute(
            "SELECT ticket_id FROM idempotency_keys WHERE idempotency_key = %s", (key.encode(),)
        )
        assert cursor.fetchall() == ((second.ticket,),)
    time.sleep(1.1)
    assert store.purge_idempotency_keys(limit=100000) >= 1
    with store._cursor() as cursor:
        cursor.execute(
            "SELECT COUNT(*) FROM idempotency_keys WHERE idempotency_key = %s", (key.encode(),)
        )
        assert cursor.fetchone()[0] == 0


def test_a_key_row_is_never_stored_without_its_ticket(store, services_ready):
    """A batch whose insert fails stores neither its tickets nor its keys."""
    request, key = unique_request(), f"k-{uuid.uuid4()}"
    clash = keyed(request, key)
    store.create_tickets([NewTicket(clash.ticket, request, ())])  # the same ticket id, unkeyed
    with pytest.raises(StoreUnavailable):  # the duplicate ticket id fails the batch
        store.create_tickets([clash])
    with store._cursor() as cursor:
        cursor.execute(
            "SELECT COUNT(*) FROM idempotency_keys WHERE idempotency_key = %s", (key.encode(),)
        )
        assert cursor.fetchone()[0] == 0
