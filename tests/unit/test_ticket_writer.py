"""What a request is told when its ticket's commit is slow or fails: only ever the truth."""

import threading
import time
import uuid
from decimal import Decimal

import pytest

from credit.domain import CreditRequest, TicketView
from credit.errors import OutcomeUnknown, StoreUnavailable
from credit.messages import split_request
from credit.mysql import NewTicket, Timeouts
from credit.ticket_writer import BatchingTicketWriter, DirectTicketWriter
from tests.fakes import FakeCache, FakeStore


class GatedStore(FakeStore):
    """A MySQL stalled mid-commit: create_tickets waits for the gate, then does `then`."""

    def __init__(self, then=None) -> None:
        super().__init__()
        self.gate = threading.Event()
        self.sent: list[list[str]] = []
        self.then = then

    def create_tickets(self, tickets):
        self.sent.append([t.ticket for t in tickets])
        self.gate.wait(10)
        if self.then is not None:
            raise self.then
        return super().create_tickets(tickets)


def new_ticket() -> NewTicket:
    ticket = str(uuid.uuid4())
    request = CreditRequest(30, Decimal(100))
    return NewTicket(ticket, request, tuple(split_request(ticket, request, ("age", "value"))))


class Call:
    """create_ticket in a thread of its own, as a request thread calls it."""

    def __init__(self, writer, new):
        self.new, self.result, self.error = new, None, None
        self.thread = threading.Thread(target=self._run, args=(writer,))
        self.thread.start()

    def _run(self, writer):
        try:
            self.result = writer.create_ticket(self.new)
        except Exception as exc:
            self.error = exc

    def join(self, timeout=10):
        self.thread.join(timeout)
        assert not self.thread.is_alive()
        return self


def wait_until(condition, timeout=5.0):
    deadline = time.monotonic() + timeout
    while not condition():
        assert time.monotonic() < deadline, "condition never held"
        time.sleep(0.005)


def test_a_ticket_still_queued_when_its_request_gives_up_is_withdrawn_never_stored():
    store = GatedStore()
    writer = BatchingTicketWriter(store, wait=0.2)
    first = Call(writer, new_ticket())
    wait_until(lambda: store.sent)  # the first batch is in flight, stalled
    second = Call(writer, new_ticket()).join()
    assert isinstance(second.error, StoreUnavailable)  # 503: and it is the truth
    assert "withdrawn" in str(second.error)
    store.gate.set()
    first.join()
    writer.close()
    assert [second.new.ticket] not in store.sent
    assert second.new.ticket not in store.tickets


def test_a_request_whose_batch_is_in_flight_waits_for_the_outcome_past_its_wait():
    store = GatedStore()
    writer = BatchingTicketWriter(store, wait=0.1)
    call = Call(writer, new_ticket())
    wait_until(lambda: store.sent)
    time.sleep(0.3)  # well past the request's wait
    assert call.thread.is_alive()  # not answered 503 while the commit may still happen
    store.gate.set()
    call.join()
    assert isinstance(call.result, TicketView) and call.new.ticket in store.tickets
    writer.close()


def test_a_batch_that_failed_for_sure_fails_each_request_with_store_unavailable():
    store = GatedStore(then=StoreUnavailable("MySQL failed: lock wait timeout"))
    store.gate.set()
    writer = BatchingTicketWriter(store, wait=1)
    call = Call(writer, new_ticket()).join()
    assert isinstance(call.error, StoreUnavailable)
    writer.close()


@pytest.mark.parametrize(
    "failure", [OutcomeUnknown("no reply to the COMMIT", ("x",)), RuntimeError("a bug")]
)
def test_a_batch_whose_fate_is_not_known_is_never_answered_as_not_stored(failure):
    store = GatedStore(then=failure)
    store.gate.set()
    writer = BatchingTicketWriter(store, wait=1)
    calls = [Call(writer, new_ticket()) for _ in range(3)]
    for call in calls:
        call.join()
        assert isinstance(call.error, OutcomeUnknown)
        assert not isinstance(call.error, StoreUnavailable)
        assert call.error.tickets == (call.new.ticket,)  # each request names its own
    writer.close()


def test_a_store_that_never_answers_is_an_unknown_outcome_after_its_bound():
    store = GatedStore()
    store.timeouts = Timeouts(lock_wait=1, read=0.02, outcome_check=0.05)
    writer = BatchingTicketWriter(store, wait=0.05)
    started = time.monotonic()
    call = Call(writer, new_ticket()).join()
    assert isinstance(call.error, OutcomeUnknown)
    assert time.monotonic() - started >= store.timeouts.write_bound
    store.gate.set()
    writer.close()


def test_the_direct_writer_stores_and_caches_each_ticket_itself():
    store, cache = FakeStore(), FakeCache()
    new = new_ticket()
    stored = DirectTicketWriter(store, cache).create_ticket(new)
    assert isinstance(stored, TicketView)
    assert new.ticket in store.tickets and new.ticket in cache.views
