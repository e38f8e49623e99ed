"""The clients: a few threads POSTing credit requests at a steady rate, retrying until 202."""

from __future__ import annotations

import http.client
import itertools
import json
import logging
import random
import threading
import time
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field
from decimal import Decimal

LOGGER = logging.getLogger(__name__)
POST_TIMEOUT_SECONDS = 20.0
GIVE_UP_SECONDS = 180.0
BACKOFF_INITIAL, BACKOFF_CAP = 0.05, 2.0


@dataclass(frozen=True)
class Accepted:
    """A request that got its 202: the ticket and what was asked for."""

    ticket: str
    age: int
    value: Decimal
    at: float


OnAccepted = Callable[[Accepted], None]

UNKNOWN = "no answer"  # the outcome of an attempt whose answer never came: it may have stored


@dataclass(frozen=True)
class Attempt:
    """One request a client sent, and what it was told: `HTTP 202`, `HTTP 503`, ... or UNKNOWN.

    The audit ties a ticket that no 202 named to the attempts that sent its age and value:
    a ticket stored for a request that was answered with a refusal is a lie told to a client.
    """

    age: int
    value: Decimal
    outcome: str


class Ledger:
    """What every client of a scenario was told: the 202s (tickets) and every attempt."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self.accepted: list[Accepted] = []
        self.attempts: list[Attempt] = []

    def attempt(self, age: int, value: Decimal, outcome: str) -> None:
        with self._lock:
            self.attempts.append(Attempt(age, value, outcome))

    def accept(self, accepted: Accepted) -> None:
        with self._lock:
            self.accepted.append(accepted)
            self.attempts.append(Attempt(accepted.age, accepted.value, "HTTP 202"))


def request_for(seed: int, index: int) -> tuple[int, Decimal]:
    """The index-th request of a run: ages and values on both sides of the thresholds."""
    rng = random.Random(seed * 1_000_003 + index)
    age = rng.randint(10, 90)
    cents = rng.choice((0, 0, rng.randint(1, 99)))
    value = Decimal(rng.randint(1_000, 200_000)) + Decimal(cents) / 100
    return age, value


@dataclass
class LoadStats:
    """What the clients met on the way: one count per outcome, the slowest 503."""

    outcomes: Counter[str] = field(default_factory=Counter)
    slowest_503: float = 0.0
    gave_up: int = 0


class LoadGenerator:
    """`clients` threads share a schedule of `tickets` requests, `rate` per second (0: no pause).

    A POST that fails with a connection error, a timeout or a 5xx is sent again (a new ticket:
    the first attempt was not accepted); only a 202 with a ticket id counts as accepted.
    """

    def __init__(
        self,
        port: int,
        tickets: int,
        rate: float,
        clients: int = 6,
        seed: int = 1,
        on_accepted: OnAccepted | None = None,
    ) -> None:
        self.port, self.tickets, self.rate, self.seed = port, tickets, rate, seed
        self.on_accepted = on_accepted
        self.ledger = Ledger()
        self.stats = LoadStats()
        self.started_at = self.finished_at = 0.0
        self._indexes = itertools.count()
        self._lock = threading.Lock()
        self._stop = threading.Event()
        self._progress = threading.Condition(self._lock)
        self._threads = [
            threading.Thread(target=self._client, name=f"client-{n}", daemon=True)
            for n in range(clients)
        ]

    def start(self) -> None:
        self.started_at = time.monotonic()
        for thread in self._threads:
            thread.start()

    def join(self) -> None:
        for thread in self._threads:
            thread.join()
        self.finished_at = time.monotonic()

    def stop(self) -> None:
        self._stop.set()

    @property
    def accepted(self) -> list[Accepted]:
        return self.ledger.accepted

    @property
    def progress(self) -> float:
        """The share of the planned tickets accepted so far."""
        return len(self.accepted) / self.tickets if self.tickets else 1.0

    def wait_progress(self, share: float, timeout: float = 600) -> bool:
        """Block until `share` of the tickets are accepted (or the load ended / timeout)."""
        deadline = time.monotonic() + timeout
        with self._progress:
            while self.progress < share and any(t.is_alive() for t in self._threads):
                remaining = deadline - time.monotonic()
                if remaining <= 0:
                    return False
                self._progress.wait(min(remaining, 0.5))
        return self.progress >= share

    def _client(self) -> None:
        connection = http.client.HTTPConnection(
            "127.0.0.1", self.port, timeout=POST_TIMEOUT_SECONDS
        )
        try:
            while not self._stop.is_set():
                with self._lock:
                    index = next(self._indexes)
                if index >= self.tickets:
                    return
                if self.rate:
                    self._stop.wait(self.started_at + index / self.rate - time.monotonic())
                connection = self._post_until_accepted(connection, *request_for(self.seed, index))
        finally:
            connection.close()

    def _post_until_accepted(
        self, connection: http.client.HTTPConnection, age: int, value: Decimal
    ) -> http.client.HTTPConnection:
        body = f'{{"age": {age}, "value": {value}}}'.encode()
        give_up = time.monotonic() + GIVE_UP_SECONDS
        delay = BACKOFF_INITIAL
        while not self._stop.is_set() and time.monotonic() < give_up:
            began = time.monotonic()
            try:
                status, answer = _post(connection, body)
            except (OSError, http.client.HTTPException) as exc:
                connection.close()
                self._count(f"connection error ({type(exc).__name__})", age, value, UNKNOWN)
            else:
                if status == 202:
                    self._accept(json.loads(answer)["ticket"], age, value)
                    return connection
                self._count(f"HTTP {status}", age, value)
                if status == 503:
                    with self._lock:
                        self.stats.slowest_503 = max(
                            self.stats.slowest_503, time.monotonic() - began
                        )
                elif status < 500:
                    LOGGER.error("POST %s refused with %d: %s", body, status, answer[:200])
                    return connection
            self._stop.wait(delay)
            delay = min(BACKOFF_CAP, delay * 2)
        with self._lock:
            self.stats.gave_up += 1
        return connection

    def _accept(self, ticket: str, age: int, value: Decimal) -> None:
        accepted = Accepted(ticket, age, value, time.monotonic())
        with self._progress:
            self.ledger.accept(accepted)
            self.stats.outcomes["HTTP 202"] += 1
            self._progress.notify_all()
        if self.on_accepted is not None:
            self.on_accepted(accepted)

    def _count(self, outcome: str, age: int, value: Decimal, told: str | None = None) -> None:
        with self._lock:
            self.stats.outcomes[outcome] += 1
        self.ledger.attempt(age, value, told or outcome)


def _post(connection: http.client.HTTPConnection, body: bytes) -> tuple[int, bytes]:
    connection.request(
        "POST", "/credit-request", body=body, headers={"Content-Type": "application/json"}
    )
    response = connection.getresponse()
    return response.status, response.read()


def get_status(port: int, tickets: list[str]) -> dict[str, str]:
    """Each ticket as GET /credit-validation answers it (Redis first, then MySQL): its status
    and each rule's, as `summary` writes them."""
    connection = http.client.HTTPConnection("127.0.0.1", port, timeout=POST_TIMEOUT_SECONDS)
    statuses: dict[str, str] = {}
    try:
        for ticket in tickets:
            for _ in range(3):
                try:
                    connection.request("GET", f"/credit-validation?ticket={ticket}")
                    response = connection.getresponse()
                    answer = response.read()
                except (OSError, http.client.HTTPException):
                    connection.close()
                    continue
                statuses[ticket] = _status(ticket, response.status, answer)
                break
    finally:
        connection.close()
    return statuses


def _status(ticket: str, code: int, answer: bytes) -> str:
    """What a GET reported; an answer about another ticket is never a match."""
    if code != 200:
        return f"HTTP {code}"
    view = json.loads(answer)
    if view.get("ticket") != ticket:
        return f"answered for ticket {view.get('ticket')}"
    return summary(view["status"], {rule: v["status"] for rule, v in view["rules"].items()})


def summary(status: str, rules: dict[str, str]) -> str:
    """A ticket's status and its rules' in one comparable line: `NOT_APPROVED age=FAILED ...`."""
    return " ".join([status, *(f"{rule}={rules[rule]}" for rule in sorted(rules))])
