"""MySQL and Redis for real: one decision per ticket, idempotent results, Redis only a cache."""

import threading
import uuid
from datetime import timedelta
from decimal import Decimal

import pytest

from credit.domain import CreditRequest, RuleResult, TicketStatus
from credit.errors import StoreUnavailable
from credit.messages import split_request
from credit.mysql import NewTicket, Rejected
from credit.service import CreditService, relay_outbox
from tests.fakes import FakePublisher

pytestmark = pytest.mark.integration


def _new(store, age=20, value=100000):
    ticket = str(uuid.uuid4())
    request = CreditRequest(age, Decimal(value))
    store.create_ticket(ticket, request, split_request(ticket, request, ("age", "value")))
    return ticket


def test_ticket_and_outbox_are_written_together(store):
    ticket = _new(store, value="1234.56")
    assert store.get_request(ticket) == CreditRequest(20, Decimal("1234.56"))
    due = [
        e
        for e in store.outbox_due(__import__("datetime").timedelta(0), 100000)
        if e.message.ticket == ticket
    ]
    assert sorted(e.message.rule for e in due) == ["age", "value"]
    store.outbox_confirmed([e.message for e in due])
    assert not [
        e
        for e in store.outbox_due(__import__("datetime").timedelta(0), 100000)
        if e.message.ticket == ticket
    ]


def test_results_decide_and_a_decided_ticket_never_changes(store):
    ticket = _new(store)
    store.record_results([RuleResult(ticket, "age", True, "ok")])
    assert store.get_view(ticket).status is TicketStatus.PENDING
    views, _ = store.record_results([RuleResult(ticket, "value", False, "too much")])
    assert views[0].status is TicketStatus.NOT_APPROVED
    decided_at = views[0].decided_at
    store.record_results([RuleResult(ticket, "value", True, "changed my mind")])
    view = store.get_view(ticket)
    assert view.status is TicketStatus.NOT_APPROVED and view.decided_at == decided_at
    assert view.rules["value"][1] == "too much"


def test_two_rules_finishing_at_once_decide_exactly_once(store, services_ready):
    from credit.mysql import TicketStore

    tickets = [_new(store) for _ in range(40)]
    barrier = threading.Barrier(2)
    errors = []

    def record(rule):
        own = TicketStore(services_ready["MYSQL_URL"])
        barrier.wait()
        try:
            for ticket in tickets:
                own.record_results([RuleResult(ticket, rule, True, "ok")])
        except Exception as exc:  # pragma: no cover - reported below
            errors.append(exc)

    threads = [threading.Thread(target=record, args=(rule,)) for rule in ("age", "value")]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert errors == []
    assert all(store.get_view(t).status is TicketStatus.APPROVED for t in tickets)


def test_results_for_unknown_tickets_come_back_as_orphans(store):
    stranger = str(uuid.uuid4())
    views, orphans = store.record_results([RuleResult(stranger, "age", True, "ok")])
    assert views == [] and orphans == [RuleResult(stranger, "age", True, "ok")]


def test_set_aside_messages_are_kept_once_with_their_reason(store):
    body = f"garbage {uuid.uuid4()}".encode()
    store.set_aside([Rejected("rule.age", None, body, "body is not JSON")])
    store.set_aside([Rejected("rule.age", None, body, "body is not JSON")])
    kept = [r for r in store.rejected_messages("rule.age") if r.body == body]
    assert len(kept) == 1 and kept[0].reason == "body is not JSON"


def test_flushing_redis_changes_no_answer(store, cache, redis_client):
    service = CreditService(store, cache, FakePublisher(), ("age", "value"))
    view = service.submit({"age": 17, "value": 5})
    service.store.record_results([RuleResult(view.ticket, "age", False, "too young")])
    redis_client.flushdb()
    answer = service.view_json(view.ticket)
    assert b'"NOT_APPROVED"' in answer
    assert cache.get(view.ticket) == answer  # refilled from MySQL


def test_views_that_can_still_change_expire_quickly_and_final_ones_live_long(
    store, cache, redis_client
):
    from credit.cache import KEY_PREFIX

    ticket = _new(store)
    cache.put([store.get_view(ticket)])
    assert 0 < redis_client.ttl(KEY_PREFIX + ticket) <= 5
    # Decided, but the age rule has yet to report: the view changes once more.
    views, _ = store.record_results([RuleResult(ticket, "value", False, "no")])
    assert views[0].decided and not views[0].final
    cache.put(views)
    assert 0 < redis_client.ttl(KEY_PREFIX + ticket) <= 5
    views, _ = store.record_results([RuleResult(ticket, "age", True, "ok")])
    assert views[0].final
    cache.put(views)
    assert redis_client.ttl(KEY_PREFIX + ticket) > 3600


def test_one_put_writes_every_view_with_the_ttl_it_needs(store, cache, redis_client):
    from credit.cache import KEY_PREFIX

    pending = [_new(store) for _ in range(3)]
    decided = [_new(store) for _ in range(3)]
    views, _ = store.record_results([RuleResult(t, "age", True, "ok") for t in decided])
    views += store.record_results([RuleResult(t, "value", True, "ok") for t in decided])[0]
    final_views = [v for v in views if v.final]
    assert len(final_views) == 3
    assert cache.put([store.get_view(t) for t in pending] + final_views) == 6
    for ticket in pending:
        assert cache.get(ticket) == store.get_view(ticket).to_json()
        assert 0 < redis_client.ttl(KEY_PREFIX + ticket) <= 5
    for view in final_views:
        assert cache.get(view.ticket) == view.to_json()
        assert redis_client.ttl(KEY_PREFIX + view.ticket) > 3600


def test_a_late_write_of_an_older_view_never_replaces_a_newer_one(store, cache, redis_client):
    """Two rule functions commit in one order and may reach Redis in the other."""
    from credit.cache import KEY_PREFIX

    ticket = _new(store, age=17, value=500000)
    created = store.get_view(ticket)
    first, _ = store.record_results([RuleResult(ticket, "value", False, "too much")])
    second, _ = store.record_results([RuleResult(ticket, "age", False, "too young")])
    assert (first[0].decided, first[0].final, second[0].final) == (True, False, True)
    assert cache.put(second) == 1
    assert cache.put(first) == 0
    assert cache.put([created]) == 0  # the API's PENDING view, arriving last of all
    assert cache.get(ticket) == second[0].to_json()
    assert redis_client.ttl(KEY_PREFIX + ticket) > 3600
    # The same view again is written (renewing its TTL); in one batch, each view is judged alone.
    other = _new(store)
    assert cache.put([store.get_view(other), *second, *first]) == 2
    assert cache.get(ticket) == second[0].to_json()


def test_two_rule_functions_racing_leave_every_cached_view_final(store, services_ready):
    """Each rule records its verdicts and writes its views with its own connections, as two
    rule functions do; whatever order they reach Redis in, the last view standing is final."""
    from credit.cache import TicketCache, client
    from credit.mysql import TicketStore

    tickets = [_new(store, age=17 + i % 2, value=100000 + i % 3) for i in range(200)]
    verdicts = {
        "age": lambda t: RuleResult(t, "age", tickets.index(t) % 2 == 1, "age"),
        "value": lambda t: RuleResult(t, "value", tickets.index(t) % 3 != 1, "value"),
    }
    caches = []

    def rule_function(rule):
        own_store = TicketStore(services_ready["MYSQL_URL"])
        own_cache = TicketCache(client(services_ready["REDIS_URL"]))
        caches.append(own_cache)
        for start in range(0, len(tickets), 10):
            batch = [verdicts[rule](t) for t in tickets[start : start + 10]]
            views, _ = own_store.record_results(batch)
            own_cache.put(views)

    threads = [threading.Thread(target=rule_function, args=(rule,)) for rule in verdicts]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    for ticket in tickets:
        view = store.get_view(ticket)
        assert view.final
        assert caches[0].get(ticket) == view.to_json()


def test_a_view_read_from_mysql_is_one_consistent_moment(store, services_ready):
    """While verdicts land, every view read agrees with itself: the ticket is decided
    exactly when its verdicts decide it."""
    from credit.domain import decide
    from credit.mysql import TicketStore

    tickets = [_new(store, age=17, value=500000) for _ in range(60)]
    other = TicketStore(services_ready["MYSQL_URL"])
    done = threading.Event()
    seen = []

    def read():
        while not done.is_set():
            seen.extend(other.get_view(t) for t in tickets)

    reader = threading.Thread(target=read)
    reader.start()
    try:
        for ticket in tickets:
            store.record_results([RuleResult(ticket, "value", False, "too much")])
            store.record_results([RuleResult(ticket, "age", False, "too young")])
    finally:
        done.set()
        reader.join()
    assert len(seen) > len(tickets)
    for view in seen:
        verdicts = {
            rule: status.value == "PASSED"
            for rule, (status, _) in view.rules.items()
            if status.value != "PENDING"
        }
        assert view.status is decide(view.rules, verdicts), view


def test_an_error_reply_fails_the_put_and_leaves_no_reply_behind(store, cache, redis_client):
    from credit.errors import StoreUnavailable

    first, second = _new(store), _new(store)
    redis_client.config_set("maxmemory", "1")  # every write now answers with an OOM error
    try:
        with pytest.raises(StoreUnavailable):
            cache.put([store.get_view(first), store.get_view(second)])
    finally:
        redis_client.config_set("maxmemory", "0")
    # The connection that saw the error is gone, so no stale reply answers the next command.
    assert redis_client.ping()
    cache.put([store.get_view(second)])
    assert cache.get(second) == store.get_view(second).to_json()


def test_a_put_survives_redis_dropping_its_pooled_connection(store, services_ready, redis_client):
    from credit.cache import TicketCache, client

    own = client(services_ready["REDIS_URL"])
    cache = TicketCache(own)
    first, second = _new(store), _new(store)
    cache.put([store.get_view(first)])  # leaves one connection in the pool
    killed = redis_client.client_kill_filter(_type="normal", skipme=True)
    assert killed >= 1
    cache.put([store.get_view(second)])
    assert cache.get(second) == store.get_view(second).to_json()
    own.close()


def test_the_batching_writer_commits_concurrent_tickets_and_each_gets_its_own(store):
    from concurrent.futures import ThreadPoolExecutor

    from credit.ticket_writer import BatchingTicketWriter

    writer = BatchingTicketWriter(store)
    requests = {str(uuid.uuid4()): CreditRequest(age, Decimal(age * 10)) for age in range(100)}

    def create(ticket):
        request = requests[ticket]
        messages = tuple(split_request(ticket, request, ("age",)))
        return writer.create_ticket(NewTicket(ticket, request, messages))

    with ThreadPoolExecutor(16) as pool:
        views = list(pool.map(create, requests))
    writer.close()
    assert [view.ticket for view in views] == list(requests)
    for ticket, request in requests.items():
        assert store.get_request(ticket) == request


def test_the_batching_writer_fails_every_ticket_of_a_failed_commit():
    from credit.errors import StoreUnavailable
    from credit.mysql import TicketStore
    from credit.ticket_writer import BatchingTicketWriter

    writer = BatchingTicketWriter(TicketStore("mysql://root@127.0.0.1:1/credit"))
    ticket = str(uuid.uuid4())
    with pytest.raises(StoreUnavailable):
        writer.create_ticket(NewTicket(ticket, CreditRequest(20, Decimal(1)), ()))
    writer.close()


def test_a_deadlocked_transaction_is_retried_from_the_start(store):
    import pymysql

    calls = []

    def work(cursor):
        calls.append(1)
        cursor.execute("SELECT 1")
        if len(calls) == 1:
            raise pymysql.err.OperationalError(1213, "Deadlock found when trying to get lock")
        return "done"

    assert store._transaction(work) == "done"
    assert len(calls) == 2


def test_other_mysql_errors_are_not_retried(store):
    import pymysql

    from credit.errors import StoreUnavailable

    calls = []

    def work(cursor):
        calls.append(1)
        raise pymysql.err.OperationalError(2013, "Lost connection")

    with pytest.raises(StoreUnavailable):
        store._transaction(work)
    assert len(calls) == 1


def test_sessions_read_committed(store):
    with store._cursor() as cursor:
        cursor.execute("SELECT @@tx_isolation")
        assert cursor.fetchone()[0] == "READ-COMMITTED"


def _waiting(store, ticket):
    due = store.outbox_due(timedelta(0), 100000)
    return {e.message.rule: e for e in due if e.message.ticket == ticket}


def test_the_relay_counts_failed_attempts_then_clears_what_it_published(store):
    ticket = _new(store)
    # Other tests leave outbox rows behind; dating this ticket's first puts them in the
    # relay's first page (oldest first), however many there are.
    with store._cursor() as cursor:
        cursor.execute(
            "UPDATE outbox SET created_at = '2000-01-01' WHERE ticket_id = %s", (ticket,)
        )
    publisher = FakePublisher()
    publisher.down = True
    with pytest.raises(StoreUnavailable):
        relay_outbox(store, publisher, grace=timedelta(0))
    waiting = _waiting(store, ticket)
    assert {rule: e.attempts for rule, e in waiting.items()} == {"age": 1, "value": 1}

    publisher.down = False
    relay_outbox(store, publisher, grace=timedelta(0))
    assert _waiting(store, ticket) == {}
    assert sorted(m.rule for m in publisher.published if m.ticket == ticket) == ["age", "value"]
