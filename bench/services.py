"""The benchmark's own slice of the shared services: a MySQL database, a RabbitMQ virtual
host and a Redis database that nobody else uses, so that runs neither disturb other people's
tests nor get disturbed by them (their consumers never see our messages, and ours never see
theirs). Everything destructive here refuses to touch a database not named for the bench.
"""

from __future__ import annotations

import shutil
import subprocess
import time
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any
from urllib.parse import unquote, urlsplit

import pika
import pika.exceptions
import pymysql
import redis

from credit import mysql as credit_mysql
from credit.cache import KEY_PREFIX
from credit.cli import setup as credit_setup

DEFAULT_MYSQL_URL = "mysql://root@127.0.0.1:3306/credit_bench"
DEFAULT_AMQP_URL = "amqp://guest:guest@127.0.0.1:5672/credit_bench"
DEFAULT_REDIS_URL = "redis://127.0.0.1:6379/13"
RULE_QUEUES = ("rule.age", "rule.value")
TABLES = ("tickets", "rule_results", "outbox", "rejected_messages")


class BenchSetupError(RuntimeError):
    """A service is missing or not isolated; the message says what to do."""


def _epoch(moment: datetime) -> float:
    return moment.replace(tzinfo=UTC).timestamp()


@dataclass
class Services:
    mysql_url: str = DEFAULT_MYSQL_URL
    amqp_url: str = DEFAULT_AMQP_URL
    redis_url: str = DEFAULT_REDIS_URL

    def __post_init__(self) -> None:
        self.database = credit_mysql.connect_kwargs(self.mysql_url)["database"]
        if "bench" not in self.database:
            raise BenchSetupError(
                f"refusing to use MySQL database {self.database!r}: the bench truncates its "
                "tables, so its name must contain 'bench' (e.g. credit_bench)"
            )
        self.vhost = unquote(urlsplit(self.amqp_url).path.lstrip("/")) or "/"
        self._redis = redis.Redis.from_url(self.redis_url)
        self._conn: pymysql.connections.Connection | None = None

    # --- environment for our processes -----------------------------------------------------

    def env(self) -> dict[str, str]:
        return {"MYSQL_URL": self.mysql_url, "AMQP_URL": self.amqp_url, "REDIS_URL": self.redis_url}

    # --- setup -----------------------------------------------------------------------------

    def prepare(self) -> list[str]:
        """Create the database (migrations) and the vhost; returns warnings for the report."""
        warnings: list[str] = []
        self._redis.ping()
        try:
            self.amqp().close()
        except pika.exceptions.ProbableAccessDeniedError:
            if not self._create_vhost():
                raise BenchSetupError(
                    f"RabbitMQ vhost {self.vhost!r} does not exist and rabbitmqctl could not "
                    f"create it; run `rabbitmqctl add_vhost {self.vhost} && rabbitmqctl "
                    f"set_permissions -p {self.vhost} guest '.*' '.*' '.*'`, or pass --amqp-url "
                    "with another vhost"
                ) from None
            self.amqp().close()
        credit_setup(self.amqp_url, self.mysql_url)  # the app's schema and topology
        if self.vhost == "/":
            warnings.append(
                "using the shared vhost '/': other people's runtimes may consume rule.age / "
                "rule.value and take our messages; the bench purges those queues before each run"
            )
        foreign = self.consumers(RULE_QUEUES)
        if any(foreign.values()):
            warnings.append(f"queues already have consumers before we start: {foreign}")
        return warnings

    def _create_vhost(self) -> bool:
        ctl = shutil.which("rabbitmqctl")
        if ctl is None or self.vhost == "/":
            return False
        user = unquote(urlsplit(self.amqp_url).username or "guest")
        for command in (
            [ctl, "add_vhost", self.vhost],
            [ctl, "set_permissions", "-p", self.vhost, user, ".*", ".*", ".*"],
        ):
            done = subprocess.run(command, capture_output=True, text=True, timeout=60, check=False)
            if done.returncode != 0 and "already" not in (done.stdout + done.stderr):
                return False
        return True

    # --- RabbitMQ --------------------------------------------------------------------------

    def amqp(self) -> pika.BlockingConnection:
        params = pika.URLParameters(self.amqp_url)
        params.connection_attempts = 1
        params.socket_timeout = 5
        return pika.BlockingConnection(params)

    def queue_depths(self, queues: tuple[str, ...] | list[str]) -> dict[str, int | None]:
        """Ready messages per queue (None when the queue does not exist)."""
        return {name: info[0] if info else None for name, info in self._passive(queues).items()}

    def consumers(self, queues: tuple[str, ...] | list[str]) -> dict[str, int | None]:
        return {name: info[1] if info else None for name, info in self._passive(queues).items()}

    def _passive(self, queues: tuple[str, ...] | list[str]) -> dict[str, tuple[int, int] | None]:
        out: dict[str, tuple[int, int] | None] = {}
        connection = self.amqp()
        try:
            for name in queues:
                channel = connection.channel()
                try:
                    ok = channel.queue_declare(name, passive=True)
                    out[name] = (ok.method.message_count, ok.method.consumer_count)
                    channel.close()
                except pika.exceptions.ChannelClosedByBroker:
                    out[name] = None
        finally:
            connection.close()
        return out

    def purge(self, queues: tuple[str, ...] | list[str]) -> None:
        connection = self.amqp()
        try:
            for name in queues:
                channel = connection.channel()
                try:
                    channel.queue_purge(name)
                    channel.close()
                except pika.exceptions.ChannelClosedByBroker:
                    pass  # not declared yet
        finally:
            connection.close()

    # --- MySQL -----------------------------------------------------------------------------

    def mysql(self) -> pymysql.connections.Connection:
        """The bench's one MySQL connection, kept open: polling must not cost the 2-core
        machine a connection set-up (pymysql builds a TLS context for each) every 100 ms."""
        if self._conn is None or not self._conn.open:
            kwargs = credit_mysql.connect_kwargs(self.mysql_url)
            kwargs.setdefault("ssl_disabled", True)
            self._conn = pymysql.connect(**kwargs)
        return self._conn

    def query(self, sql: str, args: Any = None) -> list[tuple[Any, ...]]:
        try:
            with self.mysql().cursor() as cursor:
                cursor.execute(sql, args)
                return list(cursor.fetchall())
        except pymysql.err.OperationalError:
            self._conn = None
            raise

    def counts(self) -> dict[str, int]:
        row = self.query(
            "SELECT (SELECT COUNT(*) FROM tickets),"
            " (SELECT COUNT(*) FROM tickets WHERE status <> 'PENDING'),"
            " (SELECT COUNT(*) FROM rule_results), (SELECT COUNT(*) FROM outbox),"
            " (SELECT COUNT(*) FROM rejected_messages)"
        )[0]
        keys = ("tickets", "decided", "rule_results", "outbox", "rejected_messages")
        return {key: int(value) for key, value in zip(keys, row, strict=True)}

    def tickets(self) -> list[tuple[str, str, float, float | None]]:
        """(id, status, created_at, decided_at) of every ticket, times as epoch seconds."""
        rows = self.query("SELECT id, status, created_at, decided_at FROM tickets")
        return [(r[0], r[1], _epoch(r[2]), _epoch(r[3]) if r[3] else None) for r in rows]

    def wait_decided(
        self, expected: int, rules: int, stall_timeout: float = 30.0
    ) -> dict[str, int]:
        """Wait until `expected` tickets are decided and every rule result is recorded, or
        until nothing moved for `stall_timeout` seconds; returns the last counts."""
        last: tuple[int, int] | None = None
        moved = time.monotonic()
        while True:
            counts = self.counts()
            now = (counts["decided"], counts["rule_results"])
            if counts["decided"] >= expected and counts["rule_results"] >= expected * rules:
                return counts
            if now != last:
                last, moved = now, time.monotonic()
            elif time.monotonic() - moved > stall_timeout:
                return counts
            time.sleep(0.2)

    def reset(self) -> None:
        """Forget every ticket of earlier runs: Redis views, MySQL rows, queued messages."""
        ids = [row[0] for row in self.query("SELECT id FROM tickets")]
        pipe = self._redis.pipeline(transaction=False)
        for start in range(0, len(ids), 5000):
            pipe.delete(*[KEY_PREFIX + i for i in ids[start : start + 5000]])
        if ids:
            pipe.execute()
        with self.mysql().cursor() as cursor:
            for table in TABLES:
                cursor.execute(f"TRUNCATE TABLE {table}")
        self.purge([*RULE_QUEUES, *(f"{q}.dlq" for q in RULE_QUEUES)])
