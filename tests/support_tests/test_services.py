"""Private RabbitMQ / Redis / MariaDB servers: start, kill -9, pause, restart, clean up."""

from __future__ import annotations

import os
import subprocess
import sys
import textwrap
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pika
import pika.exceptions
import pymysql
import pytest
import redis
from pika.adapters.utils.connection_workflow import AMQPConnectorException

from tests.support.services import (
    MARKER_VAR,
    PrivateMariaDB,
    PrivateRabbitMQ,
    PrivateRedis,
    PrivateService,
    ServiceError,
    _alive,
    _comm,
    _marked,
    _stat,
    free_port,
    listener_pids,
    running,
    settings_env,
    sweep_stale,
)

pytest_plugins = ["tests.support.fixtures"]
pytestmark = pytest.mark.integration

REPO = Path(__file__).resolve().parents[2]
SHARED_PORTS = (5672, 25672, 6379, 3306, 4369)


@pytest.fixture(autouse=True)
def _shared_servers_untouched() -> Iterator[None]:
    """Whatever a test does to its private servers, the shared ones keep their processes."""
    before = {port: listener_pids(port) for port in SHARED_PORTS}
    yield
    after = {port: listener_pids(port) for port in SHARED_PORTS}
    assert after == before


def _eventually(check: Callable[[], Any], timeout: float = 20, what: str = "condition") -> Any:
    """Retry ``check`` until it returns a truthy value without raising."""
    deadline = time.monotonic() + timeout
    last: BaseException | None = None
    while time.monotonic() < deadline:
        try:
            value = check()
        except Exception as exc:
            last = exc
        else:
            if value:
                return value
        time.sleep(0.1)
    raise AssertionError(f"{what} not reached in {timeout}s (last error: {last!r})")


def _all_dead(procs: dict[int, int]) -> bool:
    return not any(_alive(pid, start) for pid, start in procs.items())


# --------------------------------------------------------------------------- generic


def test_free_port_returns_distinct_bindable_ports() -> None:
    ports = [free_port() for _ in range(20)]
    assert len(set(ports)) == 20
    assert not set(ports) & set(SHARED_PORTS)
    assert all(20000 <= p < 32000 and not listener_pids(p) for p in ports)


def test_classes_implement_the_protocol() -> None:
    svc: PrivateService = PrivateRedis()
    try:
        assert isinstance(svc, PrivateService)
        assert svc.url == f"redis://127.0.0.1:{svc.port}/0"
        assert svc.pid is None
    finally:
        svc.cleanup()


def test_urls_and_settings_env() -> None:
    mq, rd, db = PrivateRabbitMQ(port=21001), PrivateRedis(port=21002), PrivateMariaDB(port=21003)
    try:
        assert settings_env(mq, rd, db) == {
            "AMQP_URL": "amqp://guest:guest@127.0.0.1:21001/%2F",
            "REDIS_URL": "redis://127.0.0.1:21002/0",
            "MYSQL_URL": "mysql://root@127.0.0.1:21003/credit",
        }
        assert mq.node_name == "priv-21001@localhost"
    finally:
        for svc in (mq, rd, db):
            svc.cleanup()
            assert not svc.base_dir.exists()


# --------------------------------------------------------------------------- Redis


def test_redis_kill_restart_pause_resume(private_redis: PrivateRedis) -> None:
    rd = private_redis
    client = rd.client()
    client.set("k", "v")
    assert client.get("k") == b"v"
    client.close()
    old_pid, port = rd.pid, rd.port
    assert old_pid is not None and _comm(old_pid) == "redis-server"

    rd.kill()
    assert rd.pid is None and not rd.is_running and not _alive(old_pid)
    with pytest.raises(redis.ConnectionError):
        rd.client(timeout=0.5).ping()

    rd.restart()
    assert rd.port == port and rd.pid not in (None, old_pid)
    assert rd.client().ping()

    rd.pause()
    assert rd.is_paused
    assert _stat(rd.pid or 0) is not None and (_stat(rd.pid or 0) or ("?",))[0] == "T"
    with pytest.raises(redis.TimeoutError):
        rd.client(timeout=0.5).ping()
    rd.resume()
    assert rd.client().ping()


def test_redis_appendonly_survives_graceful_restart(
    private_service_factory: Callable[..., Any],
) -> None:
    rd: PrivateRedis = private_service_factory(PrivateRedis, appendonly=True)
    rd.client().set("durable", "yes")
    rd.stop()
    assert not rd.is_running and not _marked(rd.marker)
    rd.restart()
    assert rd.client().get("durable") == b"yes"


def test_start_refuses_a_port_in_use(private_redis: PrivateRedis) -> None:
    intruder = PrivateRedis(port=private_redis.port)
    try:
        with pytest.raises(ServiceError, match="already in use"):
            intruder.start()
    finally:
        intruder.cleanup()
    assert private_redis.client().ping()


def test_context_manager_and_running_remove_everything() -> None:
    with PrivateRedis() as rd:
        base, pid = rd.base_dir, rd.pid
        assert rd.client().ping()
    assert pid is not None and not _alive(pid) and not base.exists()

    a, b = PrivateRedis(), PrivateRedis()
    with running(a, b):
        assert a.client().ping() and b.client().ping()
        pids = [a.pid, b.pid]
    assert not any(_alive(p or 0) for p in pids)
    assert not a.base_dir.exists() and not b.base_dir.exists()


def test_cleanup_of_paused_server() -> None:
    rd = PrivateRedis()
    rd.start()
    pid = rd.pid
    rd.pause()
    rd.cleanup()  # graceful stop has to SIGCONT first
    assert pid is not None and not _alive(pid) and not rd.base_dir.exists()


def test_server_dies_with_its_test_process_and_leftovers_are_swept(tmp_path: Path) -> None:
    """A test process killed without cleanup leaves no server behind (PR_SET_PDEATHSIG)."""
    script = textwrap.dedent(
        f"""
        import os
        from tests.support.services import PrivateRedis
        rd = PrivateRedis(tmp_root={str(tmp_path)!r})
        rd.start()
        print(rd.pid, flush=True)
        os._exit(0)  # no atexit, no cleanup
        """
    )
    out = subprocess.run(
        [sys.executable, "-c", script],
        env={**os.environ, "PYTHONPATH": str(REPO)},
        capture_output=True,
        text=True,
        timeout=60,
        check=True,
    )
    pid = int(out.stdout.split()[0])
    _eventually(lambda: not _alive(pid), timeout=10, what="orphaned redis gone")
    leftovers = list(tmp_path.glob("privsvc-*"))
    assert leftovers  # the crashed process could not remove its dir ...
    assert sweep_stale(tmp_path) == len(leftovers)  # ... the next one sweeps it
    assert not list(tmp_path.glob("privsvc-*"))


def test_sweep_kills_marked_processes_of_dead_owners(tmp_path: Path) -> None:
    marker = "stale-test-marker"
    stale = tmp_path / "privsvc-redis-1-stale"
    stale.mkdir()
    (stale / "owner").write_text(f"999999999 0 {marker}\n")  # no such pid
    sleeper = subprocess.Popen(
        ["sleep", "60"], env={**os.environ, MARKER_VAR: marker}, start_new_session=True
    )
    try:
        # Popen may return before the kernel has set up the new program's environment (its
        # vfork resumes the parent as soon as the child's new memory is in place)
        _eventually(lambda: set(_marked(marker)) == {sleeper.pid}, timeout=5, what="marked")
        assert sweep_stale(tmp_path) == 1
        assert sleeper.wait(10) == -9
        assert not stale.exists()
    finally:
        sleeper.kill()
        sleeper.wait()


# --------------------------------------------------------------------------- MariaDB


def _query(db: PrivateMariaDB, sql: str, timeout: float = 5) -> Any:
    conn = db.connect(timeout=timeout)
    try:
        with conn.cursor() as cur:
            cur.execute(sql)
            return cur.fetchall()
    finally:
        conn.close()


def test_mariadb_row_survives_kill(private_mariadb: PrivateMariaDB) -> None:
    db = private_mariadb
    assert _query(db, "SELECT DATABASE(), @@character_set_server") == (("credit", "utf8mb4"),)
    _query(db, "CREATE TABLE kept (id INT PRIMARY KEY, v VARCHAR(20)) ENGINE=InnoDB")
    _query(db, "INSERT INTO kept VALUES (1, 'survives')")
    old_pid = db.pid
    assert old_pid is not None and _comm(old_pid) == "mariadbd"

    db.kill()
    assert not db.is_running and not _alive(old_pid)
    with pytest.raises(pymysql.err.OperationalError):
        db.connect(timeout=1)

    db.restart()
    assert db.pid not in (None, old_pid)
    assert _query(db, "SELECT v FROM kept WHERE id = 1") == (("survives",),)


def test_mariadb_pause_resume_and_graceful_restart(private_mariadb: PrivateMariaDB) -> None:
    db = private_mariadb
    _query(db, "CREATE TABLE IF NOT EXISTS graceful (id INT PRIMARY KEY)")
    _query(db, "REPLACE INTO graceful VALUES (7)")

    db.pause()
    with pytest.raises(pymysql.err.OperationalError):
        db.connect(timeout=1)
    db.resume()
    assert _query(db, "SELECT id FROM graceful") == ((7,),)

    db.stop()
    assert not db.is_running and not _marked(db.marker)
    db.restart()
    assert _query(db, "SELECT id FROM graceful") == ((7,),)


def test_mariadb_fixture_left_killed(private_mariadb: PrivateMariaDB) -> None:
    private_mariadb.kill()


def test_mariadb_fixture_heals_after_kill(private_mariadb: PrivateMariaDB) -> None:
    assert private_mariadb.is_running
    assert _query(private_mariadb, "SELECT v FROM kept") == (("survives",),)


# --------------------------------------------------------------------------- RabbitMQ


def _connect(mq: PrivateRabbitMQ, timeout: float = 5) -> pika.BlockingConnection:
    return pika.BlockingConnection(mq.connection_parameters(timeout=timeout))


def _declare(mq: PrivateRabbitMQ, queue: str) -> None:
    conn = _connect(mq)
    try:
        conn.channel().queue_declare(queue, durable=True, arguments={"x-queue-type": "quorum"})
    finally:
        conn.close()


def _publish(mq: PrivateRabbitMQ, queue: str, body: bytes) -> None:
    conn = _connect(mq)
    try:
        ch = conn.channel()
        ch.confirm_delivery()  # returns only once the quorum queue has the message on disk
        ch.basic_publish("", queue, body, pika.BasicProperties(delivery_mode=2), mandatory=True)
    finally:
        conn.close()


def _get(mq: PrivateRabbitMQ, queue: str) -> bytes | None:
    conn = _connect(mq)
    try:
        method, _props, body = conn.channel().basic_get(queue, auto_ack=True)
        return body if method is not None else None
    finally:
        conn.close()


@pytest.mark.slow
def test_rabbitmq_quorum_message_survives_kill(private_rabbitmq: PrivateRabbitMQ) -> None:
    mq = private_rabbitmq
    _declare(mq, "q.survive")
    time.sleep(mq.quorum_settle_seconds)  # see PrivateRabbitMQ.quorum_settle_seconds
    _publish(mq, "q.survive", b"persistent payload")  # and kill right after the confirm

    beam = mq.pid
    procs = mq.processes()
    assert beam is not None and _comm(beam) == "beam.smp"
    assert "erl_child_setup" in {_comm(p) for p in procs}  # helpers are tracked too
    assert listener_pids(mq.port) == {beam}
    assert beam not in listener_pids(5672)

    mq.kill()
    assert not mq.is_running and _all_dead(procs)
    assert not listener_pids(mq.port) and not listener_pids(mq.dist_port)

    mq.restart()
    assert mq.pid not in (None, beam) and listener_pids(mq.port) == {mq.pid}
    body = _eventually(lambda: _get(mq, "q.survive"), what="message after restart")
    assert body == b"persistent payload"


@pytest.mark.slow
def test_rabbitmq_pause_resume(private_rabbitmq: PrivateRabbitMQ) -> None:
    mq = private_rabbitmq
    _declare(mq, "q.pause")
    _publish(mq, "q.pause", b"before pause")
    mq.pause()
    assert all((_stat(p) or ("?",))[0] == "T" for p in mq.processes())
    with pytest.raises((pika.exceptions.AMQPError, AMQPConnectorException)):
        _connect(mq, timeout=1)
    mq.resume()
    assert _get(mq, "q.pause") == b"before pause"
    mq.pause()  # left paused on purpose: the next test's fixture must resume it


@pytest.mark.slow
def test_rabbitmq_fixture_resumes_and_graceful_restart_keeps_data(
    private_rabbitmq: PrivateRabbitMQ,
) -> None:
    mq = private_rabbitmq
    assert not mq.is_paused
    _declare(mq, "q.graceful")
    _publish(mq, "q.graceful", b"kept over stop")
    mq.stop()  # no settle time needed before a graceful stop
    assert not mq.is_running and not _marked(mq.marker) and not listener_pids(mq.port)
    mq.restart()
    assert _eventually(lambda: _get(mq, "q.graceful")) == b"kept over stop"
