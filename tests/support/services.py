"""Private, throwaway RabbitMQ, Redis and MariaDB servers for tests and fault injection."""

from __future__ import annotations

import atexit
import contextlib
import os
import random
import shutil
import signal
import socket
import subprocess
import tempfile
import threading
import time
import uuid
from collections.abc import Iterable, Iterator
from pathlib import Path
from types import TracebackType
from typing import IO, ClassVar, Protocol, Self, runtime_checkable

import pika
import pymysql
import redis
from redis.backoff import NoBackoff
from redis.retry import Retry

__all__ = [
    "PrivateMariaDB",
    "PrivateRabbitMQ",
    "PrivateRedis",
    "PrivateService",
    "ServiceError",
    "free_port",
    "listener_pids",
    "running",
    "settings_env",
    "sweep_stale",
]

#: Every temp dir this module creates starts with this, under ``tempfile.gettempdir()``.
TMP_PREFIX = "privsvc-"
#: Environment variable set (to a per-instance UUID) on every server process we spawn.  The
#: variable is inherited by the server's helpers (erl_child_setup, inet_gethost, ...), so
#: scanning ``/proc/*/environ`` for it finds exactly this instance's processes and never a
#: shared server's.
MARKER_VAR = "PRIVSVC_MARKER"

_PORT_RANGE = (20000, 32000)  # below the kernel's ephemeral range (32768-60999)
_RESERVED_PORTS = frozenset({3306, 4369, 5672, 6379, 15672, 25672, *range(35672, 35683)})
_handed_out: set[int] = set()
_lock = threading.Lock()
_live: set[_ServerBase] = set()
_swept = False
_NEVER_KILL = frozenset({"epmd"})  # epmd is shared by every Erlang node on the machine


class ServiceError(RuntimeError):
    """A private server failed to start, stop or change state in time."""


@runtime_checkable
class PrivateService(Protocol):
    """What every private server offers; ``url`` and ``pid`` are read-only attributes."""

    @property
    def url(self) -> str:
        """Client URL, e.g. ``redis://127.0.0.1:PORT/0``."""
        ...

    @property
    def pid(self) -> int | None:
        """OS pid of the main server process while it runs, else None."""
        ...

    @property
    def port(self) -> int:
        """TCP port the server listens on (127.0.0.1 only)."""
        ...

    def start(self, timeout: float = 60) -> None:
        """Start and wait until the server accepts client connections."""
        ...

    def stop(self) -> None:
        """Stop gracefully and wait for every process of the server to exit."""
        ...

    def kill(self) -> None:
        """SIGKILL every process of this server and wait until they are gone."""
        ...

    def pause(self) -> None:
        """SIGSTOP every process of this server."""
        ...

    def resume(self) -> None:
        """SIGCONT every process of this server."""
        ...

    def restart(self, timeout: float = 60) -> None:
        """Start again (same data dir, same port); stops first if it is running."""
        ...

    def cleanup(self) -> None:
        """Stop if running and remove the temp dir."""
        ...


# --------------------------------------------------------------------------- ports


def _port_is_free(port: int) -> bool:
    # No SO_REUSEADDR: a port with connections in TIME_WAIT counts as busy, which is what we want.
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        try:
            sock.bind(("127.0.0.1", port))
        except OSError:
            return False
    return True


def free_port(exclude: Iterable[int] = ()) -> int:
    """A TCP port in 20000-31999 that is free on 127.0.0.1 and not handed out before here.

    The range lies below the kernel's ephemeral ports, so outgoing connections will not grab it
    between this call and the server's bind; the shared servers' ports (5672, 25672, 6379, 3306,
    4369, 35672-35682) are never returned.
    """
    rng = random.SystemRandom()
    skip = set(exclude)
    with _lock:
        for _ in range(1000):
            port = rng.randrange(*_PORT_RANGE)
            if port in _RESERVED_PORTS or port in _handed_out or port in skip:
                continue
            if _port_is_free(port):
                _handed_out.add(port)
                return port
    raise ServiceError(f"no free TCP port found in {_PORT_RANGE[0]}-{_PORT_RANGE[1]}")


def _port_accepts(port: int, timeout: float = 0.5) -> bool:
    try:
        with socket.create_connection(("127.0.0.1", port), timeout=timeout):
            return True
    except OSError:
        return False


# --------------------------------------------------------------------------- /proc helpers


def _stat(pid: int) -> tuple[str, int, int] | None:
    """(state, ppid, starttime) of a process, or None if there is no such process."""
    try:
        data = Path(f"/proc/{pid}/stat").read_bytes()
    except OSError:
        return None
    fields = data[data.rfind(b")") + 2 :].split()
    return fields[0].decode(), int(fields[1]), int(fields[19])


def _comm(pid: int) -> str:
    try:
        return Path(f"/proc/{pid}/comm").read_text().strip()
    except OSError:
        return ""


def _alive(pid: int, starttime: int | None = None) -> bool:
    """True if pid exists, is not a zombie and (if given) started at ``starttime``."""
    st = _stat(pid)
    if st is None or st[0] in ("Z", "X", "x"):
        return False
    return starttime is None or st[2] == starttime


def _marked(marker: str) -> dict[int, int]:
    """pid -> starttime of the live processes whose environment carries our marker."""
    needle = f"{MARKER_VAR}={marker}".encode()
    found: dict[int, int] = {}
    me = os.getpid()
    for entry in os.listdir("/proc"):
        if not entry.isdigit() or int(entry) == me:
            continue
        pid = int(entry)
        try:
            environ = Path(f"/proc/{pid}/environ").read_bytes()
        except OSError:
            continue
        if needle not in environ.split(b"\0"):
            continue
        st = _stat(pid)
        if st is None or st[0] in ("Z", "X", "x") or _comm(pid) in _NEVER_KILL:
            continue
        found[pid] = st[2]
    return found


def _signal(procs: dict[int, int], sig: int) -> None:
    for pid, start in procs.items():
        if _alive(pid, start):
            with contextlib.suppress(ProcessLookupError, PermissionError):
                os.kill(pid, sig)


def _kill_marked(marker: str, timeout: float = 10) -> None:
    """SIGKILL every process carrying ``marker``, repeatedly (late forks), until none is left."""
    deadline = time.monotonic() + timeout
    while True:
        procs = _marked(marker)
        if not procs:
            return
        if time.monotonic() > deadline:
            raise ServiceError(f"processes {sorted(procs)} survived SIGKILL")
        _signal(procs, signal.SIGKILL)
        time.sleep(0.02)


def _wait_state(procs: dict[int, int], stopped: bool, timeout: float = 10) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        pending = [
            pid
            for pid, start in procs.items()
            if _alive(pid, start) and ((_stat(pid) or ("?",))[0] in ("T", "t")) != stopped
        ]
        if not pending:
            return
        time.sleep(0.01)
    raise ServiceError(f"processes {pending} did not {'stop' if stopped else 'continue'}")


def _listen_inodes(port: int) -> set[str]:
    """``socket:[inode]`` names of the listening TCP sockets on ``port`` (any local address)."""
    inodes: set[str] = set()
    for table in ("/proc/net/tcp", "/proc/net/tcp6"):
        try:
            rows = Path(table).read_text().splitlines()[1:]
        except OSError:
            continue
        for row in rows:
            fields = row.split()
            if len(fields) < 10 or fields[3] != "0A":  # 0A = LISTEN
                continue
            if int(fields[1].rsplit(":", 1)[1], 16) == port:
                inodes.add(f"socket:[{fields[9]}]")
    return inodes


def _holds(pid: int, inodes: set[str]) -> bool:
    try:
        fds = os.listdir(f"/proc/{pid}/fd")
    except OSError:
        return False
    for fd in fds:
        with contextlib.suppress(OSError):
            if os.readlink(f"/proc/{pid}/fd/{fd}") in inodes:
                return True
    return False


def listener_pids(port: int) -> set[int]:
    """Pids of the processes holding a listening TCP socket on ``port`` (any local address).

    Handy to assert that fault injection left the shared servers alone.
    """
    inodes = _listen_inodes(port)
    if not inodes:
        return set()
    return {int(e) for e in os.listdir("/proc") if e.isdigit() and _holds(int(e), inodes)}


def _own_starttime() -> int:
    st = _stat(os.getpid())
    return st[2] if st else 0


def sweep_stale(tmp_root: str | Path | None = None) -> int:
    """Kill the servers and remove the temp dirs left by test processes that died uncleanly.

    Only dirs whose owning process is gone are touched, so concurrent test runs are safe.
    Runs automatically once per process, before the first private server is created.
    Returns how many dirs were removed.
    """
    root = Path(tmp_root or tempfile.gettempdir())
    removed = 0
    for path in root.glob(f"{TMP_PREFIX}*"):
        try:
            pid_s, start_s, marker = (path / "owner").read_text().split()
            pid, start = int(pid_s), int(start_s)
        except (OSError, ValueError):
            continue
        if _alive(pid, start):
            continue
        if marker != "-":
            with contextlib.suppress(ServiceError):
                _kill_marked(marker)
        shutil.rmtree(path, ignore_errors=True)
        removed += 1
    return removed


def _make_dir(kind: str, tag: str, marker: str, tmp_root: str | Path | None) -> Path:
    path = Path(tempfile.mkdtemp(prefix=f"{TMP_PREFIX}{kind}-{tag}-", dir=tmp_root))
    (path / "owner").write_text(f"{os.getpid()} {_own_starttime()} {marker}\n")
    return path


def _tail(path: Path, lines: int) -> str:
    try:
        text = path.read_text(errors="replace")
    except OSError:
        return ""
    return "\n".join(text.splitlines()[-lines:])


_setpriv_ok: bool | None = None


def _pdeathsig_prefix() -> list[str]:
    """``setpriv --pdeathsig KILL --`` so the server dies with the test process, if possible.

    The kernel sends the signal when the *thread* that spawned the child exits, so it is only
    used from the main thread.
    """
    global _setpriv_ok
    if threading.current_thread() is not threading.main_thread():
        return []
    if _setpriv_ok is None:
        exe = shutil.which("setpriv")
        _setpriv_ok = bool(exe) and (
            subprocess.run(
                [exe or "setpriv", "--pdeathsig", "KILL", "--", "true"], check=False
            ).returncode
            == 0
        )
    return ["setpriv", "--pdeathsig", "KILL", "--"] if _setpriv_ok else []


def _base_env(home: Path, marker: str) -> dict[str, str]:
    """A clean environment: nothing inherited that could point the server at shared config."""
    return {
        "PATH": os.environ.get("PATH", os.defpath),
        "HOME": str(home),
        "LANG": "C.UTF-8",
        "LC_ALL": "C.UTF-8",
        "TMPDIR": str(home),
        MARKER_VAR: marker,
    }


@atexit.register
def _cleanup_all() -> None:
    for svc in list(_live):
        with contextlib.suppress(Exception):
            svc.cleanup(graceful=False)


# --------------------------------------------------------------------------- base class


class _ServerBase:
    """Lifecycle shared by the three servers: one Popen child in its own session."""

    kind: ClassVar[str] = "server"
    #: Name of the setting (credit.settings) that holds this server's URL.
    env_var: ClassVar[str] = ""
    #: How long stop() waits for a graceful exit before it falls back to kill().
    stop_timeout: ClassVar[float] = 30

    def __init__(self, port: int | None = None, tmp_root: str | Path | None = None) -> None:
        global _swept
        with _lock:
            if not _swept:
                _swept = True
                sweep_stale(tmp_root)
        self._port = port if port is not None else free_port()
        self.marker = uuid.uuid4().hex
        #: Private temp dir holding config, data and logs; removed by cleanup().
        self.base_dir = _make_dir(self.kind, str(self._port), self.marker, tmp_root)
        self.home = self.base_dir / "home"
        self.home.mkdir()
        self.stdout_log = self.base_dir / f"{self.kind}.out"
        self._proc: subprocess.Popen[bytes] | None = None
        self._prepared = False
        self._paused = False
        self._cleaned = False
        self._starts = 0
        #: Seconds the last start()/restart() took until the server accepted connections.
        self.last_start_seconds: float | None = None
        _live.add(self)

    # -- public API -------------------------------------------------------------

    @classmethod
    def available(cls) -> bool:
        """True if the server's binaries are installed."""
        return True

    @property
    def port(self) -> int:
        """TCP port the server listens on (127.0.0.1 only)."""
        return self._port

    @property
    def url(self) -> str:
        """Client URL of this server."""
        raise NotImplementedError

    @property
    def pid(self) -> int | None:
        """OS pid of the main server process while it runs, else None."""
        return self._proc.pid if self.is_running and self._proc else None

    @property
    def is_running(self) -> bool:
        """True while the main server process exists (it may be paused)."""
        return self._proc is not None and self._proc.poll() is None

    @property
    def is_paused(self) -> bool:
        """True between pause() and resume() (or a stop/kill)."""
        return self._paused and self.is_running

    def processes(self) -> dict[int, int]:
        """pid -> starttime of every live process of this server (main process and helpers)."""
        procs = _marked(self.marker)
        if self._proc is not None and self._proc.poll() is None:
            st = _stat(self._proc.pid)
            if st is not None:
                procs.setdefault(self._proc.pid, st[2])
        return procs

    def start(self, timeout: float = 60) -> None:
        """Start and wait until the server accepts client connections."""
        if self._cleaned:
            raise ServiceError(f"{self!r} was cleaned up; create a new one")
        if self.is_running:
            raise ServiceError(f"{self!r} is already running")
        _kill_marked(self.marker)  # stragglers of an earlier incarnation
        grace = time.monotonic() + 1  # a just-killed server's sockets may take a moment to go
        for port in self._ports():
            while _listen_inodes(port):
                if time.monotonic() > grace:
                    raise ServiceError(
                        f"{type(self).__name__}: port {port} is already in use"
                        f" (listening pids: {sorted(listener_pids(port)) or 'unknown'})"
                    )
                time.sleep(0.05)
        started = time.monotonic()
        deadline = started + timeout
        if not self._prepared:
            self._prepare(timeout)
            self._prepared = True
        self._paused = False
        self._spawn()
        try:
            self._wait_ready(deadline)
            self._on_ready(first=self._starts == 0)
        except BaseException:
            self._force_kill()
            raise
        self._starts += 1
        self.last_start_seconds = time.monotonic() - started

    def stop(self) -> None:
        """Stop gracefully (SIGTERM), wait for every process to exit; SIGKILL after stop_timeout."""
        proc = self._proc
        if proc is None or proc.poll() is not None:
            self._force_kill()
            return
        self.resume()
        with contextlib.suppress(ProcessLookupError):
            os.kill(proc.pid, signal.SIGTERM)
        with contextlib.suppress(subprocess.TimeoutExpired):
            proc.wait(self.stop_timeout)
        self._force_kill()

    def kill(self) -> None:
        """SIGKILL every process of this server (found by marker, never a shared one) and wait."""
        self._force_kill()

    def pause(self) -> None:
        """SIGSTOP every process of this server and wait until the kernel reports them stopped."""
        if not self.is_running:
            raise ServiceError(f"{self!r} is not running")
        procs = self.processes()
        _signal(procs, signal.SIGSTOP)
        _wait_state(procs, stopped=True)
        self._paused = True

    def resume(self) -> None:
        """SIGCONT every process of this server (a no-op if it is not paused)."""
        procs = self.processes()
        _signal(procs, signal.SIGCONT)
        _wait_state(procs, stopped=False)
        self._paused = False

    def restart(self, timeout: float = 60) -> None:
        """Start again on the same port and data dir; a running server is stopped first."""
        if self.is_running:
            self.stop()
        self.start(timeout)

    def ensure_running(self, timeout: float = 60) -> None:
        """Resume if paused, start if stopped or killed; leaves a running server alone."""
        if self.is_running:
            if self._paused:
                self.resume()
            return
        self.start(timeout)

    def cleanup(self, graceful: bool = True) -> None:
        """Stop (gracefully unless ``graceful=False``) if running, then remove the temp dir."""
        if self._cleaned:
            return
        try:
            if graceful:
                self.stop()
            else:
                self._force_kill()
        finally:
            self._cleaned = True
            _live.discard(self)
            shutil.rmtree(self.base_dir, ignore_errors=True)

    def log_tail(self, lines: int = 40) -> str:
        """Last lines of the server's logs, for error messages."""
        return _tail(self.stdout_log, lines)

    def __enter__(self) -> Self:
        """Start (unless running); leaving the block kills the server and removes its dir."""
        if not self.is_running:
            self.start()
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.cleanup(graceful=False)

    def __repr__(self) -> str:
        return f"<{type(self).__name__} {self.url} pid={self.pid} dir={self.base_dir}>"

    # -- hooks for subclasses -----------------------------------------------------

    def _ports(self) -> list[int]:
        """Every port the server binds; each must be free before a start."""
        return [self.port]

    def _prepare(self, timeout: float) -> None:
        """Write config / initialise the data dir; runs once, before the first start."""

    def _command(self) -> list[str]:
        raise NotImplementedError

    def _environment(self) -> dict[str, str]:
        return _base_env(self.home, self.marker)

    def _probe(self) -> bool:
        """True once the server accepts a real client connection."""
        raise NotImplementedError

    def _on_ready(self, first: bool) -> None:
        """Runs after each successful start (``first`` on the very first one)."""

    # -- internals ----------------------------------------------------------------

    def _spawn(self) -> None:
        log: IO[bytes]
        with open(self.stdout_log, "ab") as log:
            log.write(f"\n==== start {time.strftime('%H:%M:%S')} ====\n".encode())
            log.flush()
            self._proc = subprocess.Popen(
                [*_pdeathsig_prefix(), *self._command()],
                cwd=self.base_dir,
                env=self._environment(),
                stdin=subprocess.DEVNULL,
                stdout=log,
                stderr=subprocess.STDOUT,
                start_new_session=True,
                close_fds=True,
            )

    def _wait_ready(self, deadline: float) -> None:
        assert self._proc is not None
        delay = 0.02
        while True:
            rc = self._proc.poll()
            if rc is not None:
                raise ServiceError(
                    f"{type(self).__name__} on port {self.port} exited with {rc} during start;"
                    f" logs in {self.base_dir}:\n{self.log_tail()}"
                )
            # The probe must reach *our* process, not whoever else listens on the port.
            if self._probe() and _holds(self._proc.pid, _listen_inodes(self.port)):
                return
            if time.monotonic() > deadline:
                raise ServiceError(
                    f"{type(self).__name__} on port {self.port} not ready in time;"
                    f" logs in {self.base_dir}:\n{self.log_tail()}"
                )
            time.sleep(delay)
            delay = min(delay * 1.5, 0.25)

    def _force_kill(self) -> None:
        procs = self.processes()
        _signal(procs, signal.SIGKILL)
        if self._proc is not None:
            with contextlib.suppress(subprocess.TimeoutExpired):
                self._proc.wait(10)
        _kill_marked(self.marker)
        if self._proc is not None and self._proc.poll() is None:
            raise ServiceError(f"{type(self).__name__} pid {self._proc.pid} survived SIGKILL")
        self._paused = False


# --------------------------------------------------------------------------- RabbitMQ


class PrivateRabbitMQ(_ServerBase):
    """A private single-node RabbitMQ broker (no plugins) with its own mnesia dir and node name.

    The shared broker's ``/etc/rabbitmq/rabbitmq-env.conf`` and ``rabbitmq.conf`` are not read.
    The node registers with the machine's (shared) epmd; its Erlang distribution port is bound to
    127.0.0.1. ``pid`` is the node's ``beam.smp`` (the start script execs into it).

    With ``slim=True`` (default) the node sees only the broker's own Erlang apps, not the ~40
    optional plugins (their config schemas and feature-flag scan cost seconds per boot); no
    plugin can be enabled either way.  Falls back to the full install if its layout is unknown.
    """

    kind = "rabbitmq"
    env_var = "AMQP_URL"
    #: A quorum queue must exist this long before a ``kill()`` to come back after ``restart()``:
    #: Ra 2.2 (RabbitMQ 3.10) records the queue's Raft member in ``names.dets`` asynchronously
    #: (DETS auto-save every 500 ms), and a member missing from it never elects a leader again
    #: ("leader not known", basic.get times out).  Messages are not affected: a confirmed publish
    #: is fsync'd in the WAL and survives an immediate kill.  ``stop()`` has no such window.
    quorum_settle_seconds: ClassVar[float] = 1.0
    #: The real start script; /usr/sbin/rabbitmq-server would su to the rabbitmq user.
    server_script: ClassVar[str] = "/usr/lib/rabbitmq/bin/rabbitmq-server"

    def __init__(
        self,
        port: int | None = None,
        dist_port: int | None = None,
        node_name: str | None = None,
        tmp_root: str | Path | None = None,
        slim: bool = True,
    ) -> None:
        super().__init__(port, tmp_root)
        self.dist_port = dist_port if dist_port is not None else free_port(exclude=[self.port])
        self.node_name = node_name or f"priv-{self.port}@localhost"
        self.slim = slim
        self._slim_home: Path | None = None
        self.mnesia_base = self.base_dir / "mnesia"
        self.log_base = self.base_dir / "log"
        self.config_file = self.base_dir / "rabbitmq.conf"

    @classmethod
    def available(cls) -> bool:
        """True if the RabbitMQ start script is installed."""
        return os.access(cls.server_script, os.X_OK)

    @property
    def url(self) -> str:
        """``amqp://guest:guest@127.0.0.1:PORT/%2F``."""
        return f"amqp://guest:guest@127.0.0.1:{self.port}/%2F"

    def connection_parameters(self, timeout: float = 5) -> pika.ConnectionParameters:
        """pika parameters for this broker, with one attempt and short timeouts."""
        return pika.ConnectionParameters(
            host="127.0.0.1",
            port=self.port,
            virtual_host="/",
            credentials=pika.PlainCredentials("guest", "guest"),
            connection_attempts=1,
            socket_timeout=timeout,
            stack_timeout=timeout,
            blocked_connection_timeout=timeout,
        )

    def log_tail(self, lines: int = 40) -> str:
        """Last lines of the node log and of the start script's output."""
        node_log = _tail(self.log_base / f"{self.node_name}.log", lines)
        return f"{node_log}\n---- stdout ----\n{_tail(self.stdout_log, lines)}"

    def _prepare(self, timeout: float) -> None:
        if not self.available():
            raise ServiceError(f"{self.server_script} not found")
        for path in (self.mnesia_base, self.log_base, self.base_dir / "conf.d"):
            path.mkdir(exist_ok=True)
        self.config_file.write_text(
            f"listeners.tcp.default = 127.0.0.1:{self.port}\n"
            "log.file.level = info\n"
            "log.console = false\n"
        )
        (self.base_dir / "enabled_plugins").write_text("[].\n")
        (self.base_dir / "rabbitmq-env.conf").write_text("# private node: nothing here\n")
        if self.slim:
            self._slim_home = self._make_slim_home()

    def _make_slim_home(self) -> Path | None:
        """A RABBITMQ_HOME of symlinks: the real scripts, and every app but the optional plugins."""
        root = Path(os.path.realpath(self.server_script)).parent.parent
        plugins = root / "plugins"
        if not (root / "sbin" / "rabbitmq-env").is_file() or not any(plugins.glob("rabbit-*")):
            return None
        home = self.base_dir / "rabbitmq-home"
        (home / "sbin").mkdir(parents=True)
        (home / "plugins").mkdir()
        if (root / "escript").is_dir():  # used by the CLI tools only
            (home / "escript").symlink_to(root / "escript")
        for script in (root / "sbin").iterdir():
            (home / "sbin" / script.name).symlink_to(script)
        for app in plugins.iterdir():
            optional = app.name.startswith("rabbitmq_") and not app.name.startswith(
                "rabbitmq_prelaunch"
            )
            if app.is_dir() and not optional:
                (home / "plugins" / app.name).symlink_to(app)
        return home

    def _ports(self) -> list[int]:
        return [self.port, self.dist_port]

    def _command(self) -> list[str]:
        # With RABBITMQ_ALLOW_INPUT the script execs erl (no wrapper shell left behind), so the
        # Popen pid is the beam.smp; "-noinput" keeps the Erlang shell off.
        if self._slim_home is not None:
            return [str(self._slim_home / "sbin" / "rabbitmq-server"), "-noinput"]
        return [self.server_script, "-noinput"]

    def _environment(self) -> dict[str, str]:
        env = _base_env(self.home, self.marker)
        b = self.base_dir
        env.update(
            RABBITMQ_CONF_ENV_FILE=str(b / "rabbitmq-env.conf"),
            RABBITMQ_NODENAME=self.node_name,
            RABBITMQ_NODE_IP_ADDRESS="127.0.0.1",
            RABBITMQ_NODE_PORT=str(self.port),
            RABBITMQ_DIST_PORT=str(self.dist_port),
            RABBITMQ_MNESIA_BASE=str(self.mnesia_base),
            RABBITMQ_LOG_BASE=str(self.log_base),
            RABBITMQ_CONFIG_FILE=str(self.config_file),
            RABBITMQ_CONFIG_FILES=str(b / "conf.d"),
            RABBITMQ_ADVANCED_CONFIG_FILE=str(b / "advanced.config"),
            RABBITMQ_ENABLED_PLUGINS_FILE=str(b / "enabled_plugins"),
            RABBITMQ_ALLOW_INPUT="true",
            RABBITMQ_SERVER_ADDITIONAL_ERL_ARGS="-kernel inet_dist_use_interface {127,0,0,1}",
            ERL_EPMD_ADDRESS="127.0.0.1",
            ERL_CRASH_DUMP=str(b / "erl_crash.dump"),
        )
        if self._slim_home is not None:
            env["RABBITMQ_SCRIPTS_DIR"] = str(self._slim_home / "sbin")
            env["RABBITMQ_PLUGINS_DIR"] = str(self._slim_home / "plugins")
        return env

    def _probe(self) -> bool:
        if not _port_accepts(self.port):
            return False
        try:
            pika.BlockingConnection(self.connection_parameters(timeout=3)).close()
        except Exception:
            return False
        return True


# --------------------------------------------------------------------------- Redis


class PrivateRedis(_ServerBase):
    """A private redis-server without persistence (unless ``appendonly=True``)."""

    kind = "redis"
    env_var = "REDIS_URL"
    server_binary: ClassVar[str] = "redis-server"

    def __init__(
        self,
        port: int | None = None,
        appendonly: bool = False,
        tmp_root: str | Path | None = None,
    ) -> None:
        super().__init__(port, tmp_root)
        self.appendonly = appendonly

    @classmethod
    def available(cls) -> bool:
        """True if redis-server is on PATH."""
        return shutil.which(cls.server_binary) is not None

    @property
    def url(self) -> str:
        """``redis://127.0.0.1:PORT/0``."""
        return f"redis://127.0.0.1:{self.port}/0"

    def client(self, timeout: float = 2, retries: int = 0) -> redis.Redis:
        """A redis client for this server with short timeouts and (by default) no retries.

        redis-py >= 6 retries failed commands 3 times with backoff by default, which would make
        probing a killed or paused server take seconds instead of ``timeout``.
        """
        return redis.Redis(
            host="127.0.0.1",
            port=self.port,
            socket_timeout=timeout,
            socket_connect_timeout=timeout,
            retry=Retry(NoBackoff(), retries),
        )

    def _prepare(self, timeout: float) -> None:
        if not self.available():
            raise ServiceError(f"{self.server_binary} not found on PATH")

    def _command(self) -> list[str]:
        return [
            self.server_binary,
            "--port", str(self.port),
            "--bind", "127.0.0.1",
            "--save", "",
            "--appendonly", "yes" if self.appendonly else "no",
            "--dir", str(self.base_dir),
            "--daemonize", "no",
            "--logfile", "",
        ]  # fmt: skip

    def _probe(self) -> bool:
        try:
            client = self.client(timeout=1)
            try:
                return bool(client.ping())
            finally:
                client.close()
        except redis.RedisError:
            return False


# --------------------------------------------------------------------------- MariaDB


_template_lock = threading.Lock()
_template_dir: Path | None = None


class PrivateMariaDB(_ServerBase):
    """A private MariaDB server; root has no password over TCP; database ``credit`` exists.

    The system tables are created once per test process (mariadb-install-db, ~1-2 s) into a
    template that every instance copies.  Server options are tuned for fast starts: small
    buffer pool and redo log, no binlog, no name resolution; ``innodb_flush_log_at_trx_commit``
    stays 1 so committed rows survive ``kill()``.  Charset matches the shared server (utf8mb4).
    """

    kind = "mariadb"
    env_var = "MYSQL_URL"
    database: ClassVar[str] = "credit"
    _innodb_opts: ClassVar[tuple[str, ...]] = (
        "--innodb-buffer-pool-size=32M",
        "--innodb-log-file-size=8M",
        "--innodb-use-native-aio=0",
    )

    def __init__(self, port: int | None = None, tmp_root: str | Path | None = None) -> None:
        super().__init__(port, tmp_root)
        self.data_dir = self.base_dir / "data"
        self.socket_path = self.base_dir / "mysqld.sock"
        self.error_log = self.base_dir / "mariadb.err"

    @staticmethod
    def _server_binary() -> str | None:
        return shutil.which("mariadbd") or shutil.which("mysqld")

    @staticmethod
    def _install_binary() -> str | None:
        return shutil.which("mariadb-install-db") or shutil.which("mysql_install_db")

    @classmethod
    def available(cls) -> bool:
        """True if mariadbd and mariadb-install-db are installed."""
        return cls._server_binary() is not None and cls._install_binary() is not None

    @property
    def url(self) -> str:
        """``mysql://root@127.0.0.1:PORT/credit``."""
        return f"mysql://root@127.0.0.1:{self.port}/{self.database}"

    def connect(self, database: str | None = None, timeout: float = 5) -> pymysql.Connection:
        """A pymysql connection as root over TCP (autocommit on)."""
        return pymysql.connect(
            host="127.0.0.1",
            port=self.port,
            user="root",
            password="",
            database=database if database is not None else self.database,
            charset="utf8mb4",
            autocommit=True,
            connect_timeout=timeout,
            read_timeout=timeout,
            write_timeout=timeout,
        )

    def log_tail(self, lines: int = 40) -> str:
        """Last lines of the error log and stdout."""
        return f"{_tail(self.error_log, lines)}\n---- stdout ----\n{_tail(self.stdout_log, lines)}"

    @classmethod
    def _template(cls, timeout: float) -> Path:
        """Initialised data dir shared (by copying) by every instance of this process."""
        global _template_dir
        with _template_lock:
            if _template_dir is not None and (_template_dir / "data" / "mysql").is_dir():
                return _template_dir / "data"
            install = cls._install_binary()
            if install is None or cls._server_binary() is None:
                raise ServiceError("mariadbd / mariadb-install-db not installed")
            tdir = _make_dir("mariadb", "template", "-", None)
            cmd = [
                install,
                "--no-defaults",
                f"--datadir={tdir / 'data'}",
                "--auth-root-authentication-method=normal",
                "--skip-test-db",
                "--skip-name-resolve",
                *(["--user=root"] if os.geteuid() == 0 else []),
                *cls._innodb_opts,
            ]
            result = subprocess.run(
                cmd,
                cwd=tdir,
                env=_base_env(tdir, "-"),
                stdin=subprocess.DEVNULL,
                capture_output=True,
                timeout=timeout,
                check=False,
            )
            if result.returncode != 0:
                shutil.rmtree(tdir, ignore_errors=True)
                raise ServiceError(
                    f"{install} failed ({result.returncode}):\n"
                    f"{result.stdout.decode(errors='replace')[-2000:]}"
                    f"{result.stderr.decode(errors='replace')[-2000:]}"
                )
            _template_dir = tdir
            atexit.register(shutil.rmtree, tdir, True)
            return tdir / "data"

    def _prepare(self, timeout: float) -> None:
        shutil.copytree(self._template(timeout), self.data_dir, symlinks=True)
        (self.base_dir / "tmp").mkdir(exist_ok=True)

    def _command(self) -> list[str]:
        server = self._server_binary()
        if server is None:
            raise ServiceError("mariadbd not installed")
        return [
            server,
            "--no-defaults",
            f"--datadir={self.data_dir}",
            f"--port={self.port}",
            "--bind-address=127.0.0.1",
            f"--socket={self.socket_path}",
            f"--pid-file={self.base_dir / 'mysqld.pid'}",
            f"--log-error={self.error_log}",
            f"--tmpdir={self.base_dir / 'tmp'}",
            *(["--user=root"] if os.geteuid() == 0 else []),
            "--skip-log-bin",
            "--skip-name-resolve",
            "--character-set-server=utf8mb4",
            "--collation-server=utf8mb4_general_ci",
            *self._innodb_opts,
        ]

    def _probe(self) -> bool:
        if not _port_accepts(self.port):
            return False
        try:
            # The unix socket works even before root@127.0.0.1 and the database exist.
            conn = pymysql.connect(
                unix_socket=str(self.socket_path), user="root", password="", connect_timeout=2
            )
        except pymysql.MySQLError:
            return False
        conn.close()
        return True

    def _on_ready(self, first: bool) -> None:
        if not first:
            return
        conn = pymysql.connect(
            unix_socket=str(self.socket_path), user="root", password="", autocommit=True
        )
        try:
            with conn.cursor() as cur:
                for host in ("127.0.0.1", "::1", "localhost"):
                    cur.execute(f"CREATE USER IF NOT EXISTS 'root'@'{host}' IDENTIFIED BY ''")
                    cur.execute(f"GRANT ALL PRIVILEGES ON *.* TO 'root'@'{host}' WITH GRANT OPTION")
                cur.execute(
                    f"CREATE DATABASE IF NOT EXISTS `{self.database}`"
                    " CHARACTER SET utf8mb4 COLLATE utf8mb4_general_ci"
                )
        finally:
            conn.close()
        self.connect().close()  # and over TCP, the way clients connect


# --------------------------------------------------------------------------- helpers


@contextlib.contextmanager
def running(*services: _ServerBase, timeout: float = 60) -> Iterator[tuple[_ServerBase, ...]]:
    """Start the given servers (in order) and clean all of them up on exit, even on error."""
    try:
        for svc in services:
            svc.ensure_running(timeout)
        yield services
    finally:
        for svc in services:
            with contextlib.suppress(Exception):
                svc.cleanup(graceful=False)


def settings_env(*services: _ServerBase) -> dict[str, str]:
    """``{"AMQP_URL": ..., "REDIS_URL": ..., "MYSQL_URL": ...}`` for the given servers.

    Feed it to ``monkeypatch.setenv`` or a subprocess ``env`` so the code under test talks to
    the private servers instead of the shared ones.
    """
    return {svc.env_var: svc.url for svc in services}
