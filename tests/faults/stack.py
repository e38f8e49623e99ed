"""One system under test: private RabbitMQ, Redis and MariaDB plus the real runtime process."""

from __future__ import annotations

import contextlib
import http.client
import logging
import os
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from types import TracebackType
from typing import IO, Self

import pika
import pika.exceptions
import pymysql
from pika.adapters.blocking_connection import BlockingChannel

from tests.support.services import (
    PrivateMariaDB,
    PrivateRabbitMQ,
    PrivateRedis,
    ServiceError,
    free_port,
    settings_env,
)

LOGGER = logging.getLogger(__name__)
ROOT = Path(__file__).resolve().parents[2]
WORKER_MODULE = b"local_runtime.worker"
API_ONLY = b"--api-only"
RABBITMQCTL = "/usr/lib/rabbitmq/bin/rabbitmqctl"  # the wrapper in /usr/sbin would su
CTL_SECONDS = 60.0
FUNCTION_VARIABLE = b"AWS_LAMBDA_FUNCTION_NAME="
RUNTIME_START_SECONDS = 90.0
RUNTIME_STOP_SECONDS = 60.0


class LogFollower:
    """Reads the runtime's log as it grows, tracking which invocations have started, not ended."""

    def __init__(self, path: Path) -> None:
        self._path = path
        self._offset = 0
        self._partial = b""
        self.open: dict[str, set[str]] = {}

    def in_invocation(self, function: str) -> bool:
        """True if the function's worker printed START for a request it has not ENDed yet."""
        self._read()
        return bool(self.open.get(function))

    def _read(self) -> None:
        try:
            with self._path.open("rb") as log:
                log.seek(self._offset)
                chunk = log.read()
        except OSError:
            return
        self._offset += len(chunk)
        *lines, self._partial = (self._partial + chunk).split(b"\n")
        for line in lines:
            self._line(line.decode(errors="replace"))

    def _line(self, line: str) -> None:
        if not line.startswith("[") or "RequestId: " not in line:
            return
        function, _, rest = line[1:].partition("] ")
        request_id = rest.partition("RequestId: ")[2].split()[0] if "RequestId: " in rest else ""
        if rest.startswith("START "):
            self.open.setdefault(function, set()).add(request_id)
        elif rest.startswith("END "):
            self.open.setdefault(function, set()).discard(request_id)


class StackError(RuntimeError):
    """The system under test could not be started."""


class Stack:
    """Three private servers and `python -m local_runtime start` wired to them."""

    def __init__(self, workdir: Path) -> None:
        self.workdir = workdir
        self.workdir.mkdir(parents=True, exist_ok=True)
        self.rabbitmq = PrivateRabbitMQ()
        self.redis = PrivateRedis()
        self.mariadb = PrivateMariaDB()
        self.port = free_port()
        self.log_path = workdir / "runtime.log"
        # A folder given again (--logs) keeps earlier runs' lines; this run's start here.
        self.log_start = self.log_path.stat().st_size if self.log_path.exists() else 0
        self._runtime: subprocess.Popen[bytes] | None = None
        self._log: IO[bytes] | None = None
        self.follower = LogFollower(self.log_path)

    # --- servers -----------------------------------------------------------------------

    @property
    def env(self) -> dict[str, str]:
        """AMQP_URL, REDIS_URL and MYSQL_URL of the private servers."""
        return settings_env(self.rabbitmq, self.redis, self.mariadb)

    def start(self) -> None:
        """Start the servers (the broker in parallel, it is the slowest) and the runtime."""
        errors: list[BaseException] = []
        broker = threading.Thread(target=self._start_broker, args=(errors,), name="start-broker")
        broker.start()
        self.redis.start()
        self.mariadb.start()
        broker.join()
        if errors:
            raise StackError(f"private RabbitMQ did not start: {errors[0]}") from errors[0]
        self.start_runtime()

    def _start_broker(self, errors: list[BaseException]) -> None:
        try:
            self.rabbitmq.start()
        except (ServiceError, OSError) as exc:
            errors.append(exc)

    def cleanup(self) -> None:
        """Stop the runtime if it still runs, then remove the private servers."""
        with contextlib.suppress(Exception):
            self.stop_runtime()
        for server in (self.rabbitmq, self.redis, self.mariadb):
            with contextlib.suppress(Exception):
                server.cleanup(graceful=False)

    def __enter__(self) -> Self:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.cleanup()

    # --- the runtime -------------------------------------------------------------------

    def start_runtime(self) -> None:
        """The app's set-up, then `python -m local_runtime --template . start --port P` against
        the private servers, until healthy."""
        env = {**os.environ, **self.env}
        env.pop("CREDIT_RULES", None)
        self._log = self.log_path.open("ab")
        # The app's own set-up first (schema, topology), as `./dev up` runs it.
        subprocess.run(
            [sys.executable, "-m", "credit", "setup"],
            cwd=ROOT,
            env=env,
            stdout=self._log,
            stderr=subprocess.STDOUT,
            check=True,
        )
        self._runtime = subprocess.Popen(
            [
                sys.executable,
                "-m",
                "local_runtime",
                "--template",
                str(ROOT),
                "start",
                "--port",
                str(self.port),
                "--inherit-env",
                "AMQP_URL,REDIS_URL,MYSQL_URL",
            ],
            cwd=ROOT,
            env=env,
            stdin=subprocess.DEVNULL,
            stdout=self._log,
            stderr=subprocess.STDOUT,
        )
        deadline = time.monotonic() + RUNTIME_START_SECONDS
        while not self._healthy():
            if self._runtime.poll() is not None:
                raise StackError(
                    f"runtime exited with {self._runtime.returncode}; see {self.log_path}"
                )
            if time.monotonic() > deadline:
                raise StackError(
                    f"runtime not healthy in {RUNTIME_START_SECONDS:.0f}s; see {self.log_path}"
                )
            time.sleep(0.2)
        LOGGER.info("runtime %d serving on port %d", self._runtime.pid, self.port)

    def _healthy(self) -> bool:
        connection = http.client.HTTPConnection("127.0.0.1", self.port, timeout=5)
        try:
            connection.request("GET", "/health")
            return connection.getresponse().status == 200
        except (OSError, http.client.HTTPException):
            return False
        finally:
            connection.close()

    @property
    def runtime_pid(self) -> int | None:
        return self._runtime.pid if self._runtime is not None else None

    @property
    def runtime_exit_code(self) -> int | None:
        """None while the runtime runs (or never ran), else its exit status."""
        return self._runtime.poll() if self._runtime is not None else None

    def stop_runtime(self) -> int | None:
        """SIGTERM, as an operator would; SIGKILL (workers too) if it does not exit in time."""
        process = self._runtime
        if process is None:
            return None
        if process.poll() is None:
            workers = list(self.worker_pids())
            process.send_signal(signal.SIGTERM)
            try:
                process.wait(RUNTIME_STOP_SECONDS)
            except subprocess.TimeoutExpired:
                LOGGER.error(
                    "runtime %d ignored SIGTERM for %.0fs", process.pid, RUNTIME_STOP_SECONDS
                )
                for pid in [process.pid, *workers]:
                    with contextlib.suppress(ProcessLookupError):
                        os.kill(pid, signal.SIGKILL)
                process.wait()
        if self._log is not None:
            self._log.close()
            self._log = None
        return process.returncode

    def worker_pids(self) -> dict[int, str]:
        """pid -> function name of the runtime's live worker processes."""
        parent = self.runtime_pid
        if parent is None:
            return {}
        return {pid: name for pid, name in _children(parent) if name}

    def api_pid(self) -> int | None:
        """The pid of the runtime's API process (`start --api-only`), if it runs."""
        parent = self.runtime_pid
        if parent is None:
            return None
        for entry in os.listdir("/proc"):
            if entry.isdigit() and _parent(int(entry)) == parent:
                with contextlib.suppress(OSError):
                    if API_ONLY in Path(f"/proc/{entry}/cmdline").read_bytes().split(b"\0"):
                        return int(entry)
        return None

    def wait_busy(self, function: str, timeout: float) -> bool:
        """Wait until the function's worker is inside an invocation; False after `timeout`."""
        deadline = time.monotonic() + timeout
        while not self.follower.in_invocation(function):
            if time.monotonic() > deadline:
                return False
            time.sleep(0.002)
        return True

    def wait_worker(
        self, function: str, exclude: set[int] | frozenset[int] = frozenset(), timeout: float = 30
    ) -> int | None:
        """The pid of a live worker of `function` not in `exclude`, waiting up to `timeout`."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            for pid, name in self.worker_pids().items():
                if name == function and pid not in exclude:
                    return pid
            time.sleep(0.05)
        return None

    # --- clients -----------------------------------------------------------------------

    def mysql(self, timeout: float = 10) -> pymysql.Connection:
        """A connection to the `credit` database (autocommit, so every read is fresh)."""
        return self.mariadb.connect(timeout=timeout)

    @contextlib.contextmanager
    def amqp_channel(self) -> Iterator[BlockingChannel]:
        """A channel on the private broker, closed on exit."""
        connection = pika.BlockingConnection(self.rabbitmq.connection_parameters(timeout=10))
        try:
            yield connection.channel()
        finally:
            with contextlib.suppress(pika.exceptions.AMQPError, OSError):
                connection.close()

    def rabbitmqctl(self, *args: str) -> str:
        """Run rabbitmqctl against the private node (its own cookie, never the shared node)."""
        broker = self.rabbitmq
        env = {
            "PATH": os.environ.get("PATH", os.defpath),
            "HOME": str(broker.home),  # the node's Erlang cookie lives there
            "LANG": "C.UTF-8",
            "LC_ALL": "C.UTF-8",
            "RABBITMQ_CONF_ENV_FILE": str(broker.base_dir / "rabbitmq-env.conf"),
            "ERL_EPMD_ADDRESS": "127.0.0.1",
        }
        done = subprocess.run(
            [RABBITMQCTL, "-n", broker.node_name, *args],
            env=env,
            capture_output=True,
            text=True,
            timeout=CTL_SECONDS,
            check=False,
        )
        if done.returncode != 0:
            raise StackError(f"rabbitmqctl {' '.join(args)} failed: {done.stderr.strip()[-500:]}")
        return done.stdout

    def runtime_log(self) -> list[str]:
        """This run's lines of the runtime's log."""
        try:
            with self.log_path.open("rb") as log:
                log.seek(self.log_start)
                return log.read().decode(errors="replace").splitlines()
        except OSError:
            return []

    def broker_log(self) -> str:
        """The private node's log so far."""
        path = self.rabbitmq.log_base / f"{self.rabbitmq.node_name}.log"
        try:
            return path.read_text(errors="replace")
        except OSError:
            return ""

    def queue_depths(self, queues: tuple[str, ...]) -> dict[str, int]:
        """Messages ready in each queue (-1 for a queue that cannot be read)."""
        try:
            with self.amqp_channel() as channel:
                return {queue: _depth(channel, queue) for queue in queues}
        except (pika.exceptions.AMQPError, OSError):
            return dict.fromkeys(queues, -1)


def _depth(channel: BlockingChannel, queue: str) -> int:
    return int(channel.queue_declare(queue, passive=True).method.message_count)


def _parent(pid: int) -> int | None:
    """The parent of a live process, None if it is gone or a zombie."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_bytes()
    except OSError:
        return None
    fields = stat[stat.rfind(b")") + 2 :].split()
    return None if fields[0] in (b"Z", b"X") else int(fields[1])


def _children(parent: int) -> Iterator[tuple[int, str]]:
    """(pid, function name) of each live worker process whose parent is `parent`."""
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            stat = Path(f"/proc/{entry}/stat").read_bytes()
            fields = stat[stat.rfind(b")") + 2 :].split()
            if fields[0] in (b"Z", b"X") or int(fields[1]) != parent:
                continue
            if WORKER_MODULE not in Path(f"/proc/{entry}/cmdline").read_bytes():
                continue
            environ = Path(f"/proc/{entry}/environ").read_bytes().split(b"\0")
        except (OSError, IndexError, ValueError):
            continue
        names = [
            item[len(FUNCTION_VARIABLE) :] for item in environ if item.startswith(FUNCTION_VARIABLE)
        ]
        yield int(entry), names[0].decode() if names else ""
