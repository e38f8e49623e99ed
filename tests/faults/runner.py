"""Runs one scenario end to end: fresh servers and runtime, load, faults, wait, audit."""

from __future__ import annotations

import logging
import random
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path

import pika
import pymysql

from tests.faults import headers, messages
from tests.faults.audit import (
    Audit,
    DecisionWatch,
    Row,
    audit,
    consumer_connections,
    latency_summary,
    read_rows,
)
from tests.faults.faults import FaultLog, Injection
from tests.faults.load import Accepted, LoadGenerator, get_status, summary
from tests.faults.scenarios import Scenario, Size
from tests.faults.stack import Stack

LOGGER = logging.getLogger(__name__)
SETTLE_SECONDS = 60.0
PENDING_VIEW_TTL = 5.0
GET_SAMPLE = 500
RULE_QUEUES = ("rule.age", "rule.value")
DLQS = tuple(f"{queue}.dlq" for queue in RULE_QUEUES)
DRAIN_GRACE_SECONDS = 1.0


@dataclass
class Result:
    """One row of the table, plus what a person needs to dig into a failure."""

    scenario: str
    size: Size
    audit: Audit = field(default_factory=Audit)
    recover_seconds: float | None = None
    load_seconds: float = 0.0
    stale_get: int = 0
    log: FaultLog = field(default_factory=FaultLog)
    details: list[str] = field(default_factory=list)
    workdir: Path | None = None
    error: str | None = None
    good_accepted: int = 0  # of the load generator's own tickets (the rest: hostile clients)

    @property
    def problems(self) -> list[str]:
        found = list(self.log.problems)
        if self.error:
            found.append(self.error)
        if self.stale_get:
            found.append(f"{self.stale_get} GET answer(s) disagree with MySQL")
        if self.audit.unaccepted_pending:
            found.append(
                f"{self.audit.unaccepted_pending} ticket(s) stored without a 202 still PENDING"
            )
        if self.audit.stored_refused:
            found.append(
                f"{self.audit.stored_refused} ticket(s) stored although every request for them "
                "was refused (a 503 or 4xx that stored)"
            )
        if self.audit.stored_unsent:
            found.append(
                f"{self.audit.stored_unsent} ticket(s) stored that no client sent "
                "(a request hidden in another ran)"
            )
        return found

    @property
    def passed(self) -> bool:
        return self.audit.failures == 0 and not self.problems


class Run:
    """The moving parts of one scenario run, kept together so each step stays small."""

    def __init__(self, scenario: Scenario, size: Size, workdir: Path, seed: int) -> None:
        self.scenario, self.size, self.seed = scenario, size, seed
        self.stack = Stack(workdir)
        self.result = Result(scenario.name, size, workdir=workdir)
        self.duplicates: messages.DuplicatePublisher | None = None
        self.poison: messages.PoisonPublisher | None = None
        self.injection: Injection | None = None

    def execute(self) -> Result:
        with self.stack:
            try:
                self.stack.start()
                self._drive()
            except Exception as exc:  # the suite reports a broken scenario and goes on
                LOGGER.exception("%s: scenario aborted", self.scenario.name)
                self.result.error = f"scenario aborted: {exc!r}"
            code = self.stack.stop_runtime()
            if code not in (0, None):
                self.result.log.problems.append(f"runtime exited with status {code}")
        self.result.details.extend(runtime_log_summary(self.stack.runtime_log()))
        return self.result

    def _connect_amqp(self) -> pika.BlockingConnection:
        return pika.BlockingConnection(self.stack.rabbitmq.connection_parameters(timeout=10))

    def _drive(self) -> None:
        if self.scenario.duplicates:
            self.duplicates = messages.DuplicatePublisher(self._connect_amqp, self.seed)
        load = LoadGenerator(
            self.stack.port,
            self.size.tickets,
            self.size.rate,
            seed=self.seed,
            on_accepted=self.duplicates.copy if self.duplicates else None,
        )
        watch = DecisionWatch(self.stack.mysql)
        watch.start()
        try:
            self._load_and_break(load)
            self.result.load_seconds = load.finished_at - load.started_at
            self._settle(load, watch)
        finally:
            watch.stop()
        self._audit(load, watch)

    def _load_and_break(self, load: LoadGenerator) -> None:
        """Run the load and, meanwhile, the scenario's faults; return once both are over."""
        load.start()
        poison_thread = self._start_poison(load)
        injection = Injection(self.stack, load, self.size, self.result.log)
        self.injection = injection
        try:
            self.scenario.inject(injection)
        except BaseException:
            load.stop()
            raise
        finally:
            load.join()
            if poison_thread is not None:
                poison_thread.join()
            if self.duplicates is not None:
                self.duplicates.close()
            self.result.log.problems.extend(injection.tally.problems)

    def _start_poison(self, load: LoadGenerator) -> threading.Thread | None:
        if not self.size.poison:
            return None
        poison = messages.poison_set(self.size.poison, self.size.oversized, self.size.large)
        self.poison = messages.PoisonPublisher(self._connect_amqp, poison)
        thread = threading.Thread(
            target=self.poison.run, args=(load.wait_progress,), name="poison", daemon=True
        )
        thread.start()
        return thread

    def _last_fault(self, load: LoadGenerator) -> float:
        candidates = [self.result.log.last_end or 0.0, load.finished_at]
        if self.duplicates is not None:
            candidates.append(self.duplicates.last_published)
        if self.poison is not None:
            candidates.append(self.poison.last_published)
        return max(candidates)

    def _accepted(self, load: LoadGenerator) -> list[Accepted]:
        """Every ticket a client was told about: the load's, then the hostile clients'."""
        extra = self.injection.tally.ledger.accepted if self.injection else []
        return [*load.accepted, *extra]

    def _settle(self, load: LoadGenerator, watch: DecisionWatch) -> None:
        last_fault = self._last_fault(load)
        tickets = [a.ticket for a in self._accepted(load)]
        settled = watch.wait_settled(tickets, last_fault + SETTLE_SECONDS)
        if settled is not None:
            self.result.recover_seconds = max(
                0.0, settled - (self.result.log.last_end or last_fault)
            )
        self._drain(last_fault + SETTLE_SECONDS)
        watch.poll()  # one more read, to see a decision that changes after the queues drained

    def _drain(self, deadline: float) -> None:
        """Wait for the rule queues to empty, so late copies and redeliveries are processed
        before the audit; messages still there at the deadline mean a rule has stalled."""
        depths = self.stack.queue_depths(RULE_QUEUES)
        while sum(depths.values()) and time.monotonic() < deadline:
            time.sleep(0.25)
            depths = self.stack.queue_depths(RULE_QUEUES)
        time.sleep(DRAIN_GRACE_SECONDS)  # the last batch taken off the queue gets recorded
        if sum(depths.values()):
            self.result.log.problems.append(f"rule queues not drained: {depths}")

    def _audit(self, load: LoadGenerator, watch: DecisionWatch) -> None:
        connection = self.stack.mysql()
        try:
            rows = read_rows(connection)
            rejected = _rejected_ids(connection)
        finally:
            connection.close()
        accepted = self._accepted(load)
        attempts = load.ledger.attempts
        if self.injection is not None:
            attempts = [*attempts, *self.injection.tally.ledger.attempts]
        self.result.audit = audit(accepted, rows, watch.changed, attempts)
        self.result.good_accepted = len(load.accepted)
        self.result.details.append(latency_summary(rows, [a.ticket for a in accepted]))
        self.result.stale_get = self._stale_gets(accepted, {t: _truth(r) for t, r in rows.items()})
        stats = load.stats
        outcomes = ", ".join(f"{k} {n}" for k, n in sorted(stats.outcomes.items()))
        self.result.details.append(
            f"load {self.result.load_seconds:.1f}s: {outcomes}; slowest 503 "
            f"{stats.slowest_503:.2f}s; gave up {stats.gave_up}; stored without a 202 "
            f"{self.result.audit.unaccepted_stored}"
        )
        if self.duplicates is not None:
            self.result.details.append(f"duplicate copies published {self.duplicates.published}")
        poisoned = self.injection.header_poison if self.injection else None
        if poisoned is None:
            self._account_poison(rejected)
        else:
            self._account_header_poison(poisoned, rejected)
        self._check_reconnects()

    def _account_header_poison(
        self, poisoned: headers.HeaderPoisonLog, rejected: list[str | None]
    ) -> None:
        """Count the DLQs (poison cannot be read back) and find the rest in rejected_messages."""
        set_aside = {mid for mid in rejected if mid and mid in poisoned.ids}
        good_set_aside = sum(1 for mid in rejected if not (mid and mid in poisoned.ids))
        depths = self.stack.queue_depths(DLQS)
        self.result.details.append(
            f"dead-letter queues {depths}; poison in rejected_messages {len(set_aside)}; "
            f"other messages set aside {good_set_aside}"
        )
        problems = headers.dead_letter_problems(poisoned, depths, set_aside)
        if good_set_aside:
            problems.append(f"{good_set_aside} good message(s) set aside in rejected_messages")
        self.result.log.problems.extend(f"header poison: {p}" for p in problems)

    def _check_reconnects(self) -> None:
        """A consumer that connected more than once, with no broker fault, is looping."""
        connections = consumer_connections(self.stack.runtime_log())
        self.result.details.append(
            "consumer connections: " + ", ".join(f"{f} {n}" for f, n in sorted(connections.items()))
        )
        if self.scenario.breaks_broker:
            return
        for function, count in sorted(connections.items()):
            if count > 1:
                self.result.log.problems.append(
                    f"{function}'s consumer connected {count} times with no broker fault: "
                    "its connection fails and returns its messages"
                )

    def _stale_gets(self, accepted: list[Accepted], truth: dict[str, str]) -> int:
        """GET a sample of decided tickets and compare status and every rule's verdict with
        MySQL (the queues have drained, so every verdict is recorded); one that differs is
        re-read once a changing view's short TTL has run out, and counted if it still differs."""
        tickets = [
            a.ticket for a in accepted if not truth.get(a.ticket, "PENDING").startswith("PENDING")
        ]
        sample = random.Random(self.seed).sample(tickets, min(GET_SAMPLE, len(tickets)))
        answers = get_status(self.stack.port, sample)
        differ = [t for t, s in answers.items() if s != truth[t]]
        if differ:
            time.sleep(PENDING_VIEW_TTL + 1)
            answers = get_status(self.stack.port, differ)
            differ = [t for t, s in answers.items() if s != truth[t]]
        self.result.details.append(
            f"GET checked {len(sample)} decided tickets, {len(differ)} disagree with MySQL"
            + (
                f" (first {differ[0]}: GET {answers[differ[0]]}, MySQL {truth[differ[0]]})"
                if differ
                else ""
            )
        )
        return len(differ)

    def _account_poison(self, rejected: list[str | None]) -> None:
        with self.stack.amqp_channel() as channel:
            dlq = list(messages.dead_lettered(channel, DLQS))
        if self.poison is None:
            if rejected or dlq:
                self.result.details.append(
                    f"set aside without poison: rejected_messages {len(rejected)}, dlq {len(dlq)}"
                )
                self.result.log.problems.append("good messages were set aside or dead-lettered")
            return
        report = messages.account(self.poison.poison, rejected, dlq)
        self.result.details.append(report.describe())
        if report.missing or report.misplaced or report.good_set_aside:
            self.result.log.problems.append(
                f"poison: {report.missing} missing, misplaced {report.misplaced[:3]}, "
                f"{report.good_set_aside} good message(s) set aside"
            )


def _rejected_ids(connection: pymysql.Connection) -> list[str | None]:
    with connection.cursor() as cursor:
        cursor.execute("SELECT message_id FROM rejected_messages")
        return [row[0] for row in cursor.fetchall()]


def runtime_log_summary(lines: list[str]) -> list[str]:
    """A line on what the runtime's log says: failed batches, handler and runtime errors."""
    failed = sum(1 for line in lines if "batch of" in line and "failed (" in line)
    handler_errors = sum(1 for line in lines if line.startswith("[") and "] [ERROR] " in line)
    runtime_errors = sum(1 for line in lines if " ERROR " in line and " pika." not in line)
    cold = sum(1 for line in lines if "Init Duration" in line)
    summary = [
        f"runtime log: {failed} failed batch(es), {handler_errors} handler error(s), "
        f"{runtime_errors} runtime ERROR line(s) (pika's own excluded), {cold} cold start(s)"
    ]
    first = _first_runtime_error(lines)
    return [*summary, f"first runtime error: {first}"] if first else summary


def _first_runtime_error(lines: list[str]) -> str | None:
    """The first ERROR of the runtime (not pika's) with a traceback, and its exception."""
    for at, line in enumerate(lines[:-1]):
        if " ERROR " not in line or " pika." in line or not lines[at + 1].startswith("Traceback"):
            continue
        rest = lines[at + 2 : at + 80]
        exception = next((r for r in rest if r and not r[0].isspace() and r[0] != "["), "")
        return f"{line.split(' ERROR ', 1)[1]} -> {exception}"
    return None


def run(scenario: Scenario, size: Size, workdir: Path, seed: int = 1) -> Result:
    """Run one scenario against fresh private servers and a fresh runtime."""
    LOGGER.info("scenario %s: %s", scenario.name, size)
    return Run(scenario, size, workdir, seed).execute()


def _truth(row: Row) -> str:
    """A ticket as MySQL holds it, in the form `summary` gives a GET answer."""
    rules = {
        rule: ("PASSED" if found[0] else "FAILED")
        if (found := row.verdicts.get(rule))
        else "PENDING"
        for rule in row.required
    }
    return summary(row.status, rules)
