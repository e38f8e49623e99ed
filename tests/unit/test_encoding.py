"""The hand-built JSON of views and rule messages is byte for byte what json.dumps writes."""

import json
import threading
import uuid
from datetime import UTC, datetime, timedelta, timezone
from decimal import Decimal

from hypothesis import given
from hypothesis import strategies as st

from credit.domain import RuleStatus, TicketStatus, TicketView, iso, json_number, new_ticket_id
from credit.messages import rule_body
from credit.oneshot import OneShot

names = st.text(min_size=1, max_size=12)
reasons = st.text(max_size=60)  # quotes, backslashes, control characters and non-ASCII too
moments = st.datetimes(
    min_value=datetime(2000, 1, 1), max_value=datetime(2100, 1, 1), timezones=st.just(UTC)
)


@given(
    ticket=st.one_of(st.builds(lambda: new_ticket_id()), st.text(max_size=40)),
    status=st.sampled_from(TicketStatus),
    rules=st.dictionaries(names, st.tuples(st.sampled_from(RuleStatus), reasons), max_size=4),
    created=moments,
    decided=st.none() | moments,
)
def test_a_view_encodes_exactly_like_json_dumps(ticket, status, rules, created, decided):
    view = TicketView(ticket, status, rules, created, decided)
    assert view.to_json() == json.dumps(view.to_dict(), separators=(",", ":")).encode()


def test_iso_is_utc_with_milliseconds_and_z():
    moment = datetime(2026, 11, 27, 7, 39, 38, 788_999, tzinfo=UTC)
    assert iso(moment) == "2026-11-27T07:39:38.788Z"
    assert iso(moment.replace(tzinfo=None)) == "2026-11-27T07:39:38.788Z"
    assert iso(moment.astimezone(timezone(timedelta(hours=-3)))) == "2026-11-27T07:39:38.788Z"
    assert iso(moment.replace(microsecond=0)) == "2026-11-27T07:39:38.000Z"


@given(
    rule=names.filter(lambda name: name != "ticket"),  # a rule is a request field, never this
    amount=st.integers(min_value=0, max_value=10**12)
    | st.decimals(min_value=Decimal("0.01"), max_value=Decimal(10**12), places=2),
)
def test_a_rule_body_encodes_exactly_like_json_dumps(rule, amount):
    ticket = new_ticket_id()
    expected = {"ticket": ticket, rule: json_number(amount)}
    assert rule_body(ticket, rule, amount) == json.dumps(expected, separators=(",", ":")).encode()


def test_ticket_ids_are_canonical_uuid4_strings():
    ids = {new_ticket_id() for _ in range(2000)}
    assert len(ids) == 2000
    for ticket in ids:
        parsed = uuid.UUID(ticket)
        assert str(parsed) == ticket
        assert parsed.version == 4
        assert parsed.variant == uuid.RFC_4122


def test_a_one_shot_signal_times_out_until_set_then_stays_set():
    signal = OneShot()
    assert not signal.is_set()
    assert signal.wait(0.01) is False
    signal.set()
    signal.set()  # a second set is harmless
    assert signal.is_set()
    assert signal.wait(0) is True
    assert signal.wait() is True


def test_a_one_shot_signal_wakes_every_waiting_thread():
    signal = OneShot()
    woken: list[bool] = []
    waiters = [threading.Thread(target=lambda: woken.append(signal.wait(5))) for _ in range(3)]
    for waiter in waiters:
        waiter.start()
    signal.set()
    for waiter in waiters:
        waiter.join(5)
    assert woken == [True, True, True]
