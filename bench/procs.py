"""Our processes: the runtime (`python -m local_runtime start`), stock `chalice local`, the
trivial server; free ports, readiness, clean stops, and memory sampling from /proc."""

from __future__ import annotations

import contextlib
import os
import re
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time
import urllib.request
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO, Any

import psutil

REPO = Path(__file__).resolve().parent.parent
API_DIR = REPO / "functions" / "api"


class BenchProcessError(RuntimeError):
    """A process of ours did not start or died; the message points at its log."""


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def _http_ok(url: str, timeout: float = 1.0) -> bool:
    try:
        with urllib.request.urlopen(url, timeout=timeout) as response:  # noqa: S310 - our URL
            return 200 <= response.status < 500
    except OSError:
        return False


def _tail(path: Path, lines: int = 15) -> str:
    try:
        return "\n".join(path.read_text(errors="replace").splitlines()[-lines:])
    except OSError:
        return "(no log)"


@dataclass
class Managed:
    """A child process in its own session, with its output in a log file."""

    name: str
    argv: list[str]
    env: dict[str, str]
    log_path: Path
    cwd: Path = REPO
    process: subprocess.Popen[bytes] | None = None
    _log: IO[bytes] | None = None

    def spawn(self) -> None:
        self.log_path.parent.mkdir(parents=True, exist_ok=True)
        self._log = self.log_path.open("ab")
        self.process = subprocess.Popen(
            self.argv,
            env=self.env,
            cwd=self.cwd,
            stdout=self._log,
            stderr=subprocess.STDOUT,
            stdin=subprocess.DEVNULL,
            start_new_session=True,
        )

    @property
    def pid(self) -> int:
        assert self.process is not None
        return self.process.pid

    def alive(self) -> bool:
        return self.process is not None and self.process.poll() is None

    def check_alive(self) -> None:
        if not self.alive():
            code = self.process.returncode if self.process else None
            raise BenchProcessError(
                f"{self.name} exited with status {code}; last lines of {self.log_path}:\n"
                f"{_tail(self.log_path)}"
            )

    def descendants(self) -> list[psutil.Process]:
        try:
            return psutil.Process(self.pid).children(recursive=True)
        except psutil.Error:
            return []

    def stop(self, grace: float = 30.0) -> int | None:
        """SIGTERM (clean shutdown), then SIGKILL this process and what it started."""
        if self.process is None:
            return None
        children = self.descendants()
        if self.process.poll() is None:
            self.process.send_signal(signal.SIGTERM)
            try:
                self.process.wait(grace)
            except subprocess.TimeoutExpired:
                with contextlib.suppress(ProcessLookupError):
                    os.killpg(self.process.pid, signal.SIGKILL)
                self.process.wait()
        for child in children:  # workers run in their own sessions; only ours, by pid
            try:
                if child.is_running():
                    child.kill()
            except psutil.Error:
                pass
        if self._log is not None:
            self._log.close()
        return self.process.returncode


def runtime_env(base: dict[str, str], extra: dict[str, str] | None = None) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if k not in ("MYSQL_URL", "AMQP_URL", "REDIS_URL")}
    env.update(base)
    env.update(extra or {})
    env["PYTHONUNBUFFERED"] = "1"
    return env


@dataclass
class Runtime(Managed):
    """`python -m local_runtime --template T start [names] --port P [--no-api]
    [--background-nice N]`."""

    port: int = 0
    consumers: int = 2
    api: bool = True

    @classmethod
    def create(
        cls,
        env: dict[str, str],
        log_path: Path,
        template: Path = REPO,
        functions: tuple[str, ...] = (),
        api: bool = True,
        consumers: int = 2,
        background_nice: int | None = None,
    ) -> Runtime:
        port = free_port() if api else 0
        argv = [sys.executable, "-m", "local_runtime", "--template", str(template)]
        # the functions reach the bench's own database, cache and vhost
        argv += ["start", *functions, "--inherit-env", "AMQP_URL,REDIS_URL,MYSQL_URL"]
        argv += ["--port", str(port)] if api else ["--no-api"]
        if background_nice is not None:
            argv += ["--background-nice", str(background_nice)]
        return cls(
            name="runtime",
            argv=argv,
            env=runtime_env(env),
            log_path=log_path,
            port=port,
            consumers=consumers,
            api=api,
        )

    @property
    def base_url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def start(self, timeout: float = 60.0) -> None:
        offset = self.log_path.stat().st_size if self.log_path.exists() else 0
        self.spawn()
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            self.check_alive()
            text = self.log_path.read_bytes()[offset:].decode(errors="replace")
            consuming = len(re.findall(r": consuming \S+ at ", text))
            if consuming >= self.consumers and (
                not self.api or _http_ok(self.base_url + "/openapi.json")
            ):
                return
            time.sleep(0.1)
        self.stop(5)
        raise BenchProcessError(
            f"runtime not ready after {timeout:.0f}s; see {self.log_path}:\n{_tail(self.log_path)}"
        )

    def worker_pids(self) -> dict[int, str]:
        out = {}
        for child in self.descendants():
            with contextlib.suppress(psutil.Error):
                env = child.environ()
                # a rule's worker, or the API's own process
                out[child.pid] = env.get("AWS_LAMBDA_FUNCTION_NAME") or env.get(
                    "LOCAL_RUNTIME_PROCESS", "child"
                )
        return out


@dataclass
class ChaliceLocal(Managed):
    """Stock `chalice local --port P` run from a project folder holding the very same app.py
    and chalicelib/ (symlinks to functions/api) plus a minimal .chalice/config.json, since
    functions/api has none and `chalice local` refuses to start without one."""

    port: int = 0
    tmp: tempfile.TemporaryDirectory[str] | None = None
    note: str = ""

    @classmethod
    def create(cls, env: dict[str, str], log_path: Path) -> ChaliceLocal:
        port = free_port()
        chalice = Path(sys.executable).parent / "chalice"
        argv = [str(chalice), "local", "--host", "127.0.0.1", "--port", str(port)]
        tmp = tempfile.TemporaryDirectory(prefix="bench-chalice-")
        cwd = Path(tmp.name)
        for entry in API_DIR.iterdir():
            if entry.name not in (".chalice", "__pycache__"):
                (cwd / entry.name).symlink_to(entry)
        (cwd / ".chalice").mkdir()
        (cwd / ".chalice" / "config.json").write_text(
            '{"version": "2.0", "app_name": "credit-api",'
            ' "stages": {"dev": {"api_gateway_stage": "api"}}}\n'
        )
        config = API_DIR / ".chalice" / "config.json"
        if not config.exists():
            note = (
                "functions/api/.chalice/config.json is missing, so `chalice local` cannot start "
                "there; the bench runs it from a temp folder of symlinks to the same app.py and "
                "chalicelib/ with a minimal config.json"
            )
        else:
            note = (
                "run from a temp folder of symlinks to functions/api/app.py and chalicelib/ with a "
                "minimal .chalice/config.json: the project's config sets CREDIT_SECRET_ID for "
                "stage dev (the AWS secret holding the service URLs), which `chalice local` "
                "would apply over the bench's environment"
                if "environment_variables" in config.read_text()
                else "run from a temp folder of symlinks to functions/api/app.py and chalicelib/"
            )
        return cls(
            name="chalice-local",
            argv=argv,
            env=runtime_env(env),
            log_path=log_path,
            cwd=cwd,
            port=port,
            tmp=tmp,
            note=note,
        )

    @property
    def base_url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def start(self, timeout: float = 60.0) -> None:
        self.spawn()
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            self.check_alive()
            if _http_ok(self.base_url + "/openapi.json", timeout=3):
                return
            time.sleep(0.2)
        self.stop(5)
        raise BenchProcessError(
            f"chalice local not ready after {timeout:.0f}s; see {self.log_path}"
        )

    def stop(self, grace: float = 10.0) -> int | None:
        code = super().stop(grace)
        if self.tmp is not None:
            self.tmp.cleanup()
        return code


@dataclass
class TrivialServer(Managed):
    port: int = 0

    @classmethod
    def create(cls, log_path: Path) -> TrivialServer:
        return cls(
            name="trivial-server",
            argv=[sys.executable, "-m", "bench.loadgen", "serve"],
            env=runtime_env({}),
            log_path=log_path,
        )

    def start(self, timeout: float = 15.0) -> None:
        self.spawn()
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            self.check_alive()
            found = re.search(r"READY (\d+)", self.log_path.read_text(errors="replace"))
            if found:
                self.port = int(found.group(1))
                return
            time.sleep(0.05)
        raise BenchProcessError("trivial server did not start")


# --- memory -----------------------------------------------------------------------------------


def _status_kb(pid: int) -> tuple[int, int] | None:
    """(VmRSS, VmHWM) in kB from /proc/<pid>/status."""
    try:
        text = Path(f"/proc/{pid}/status").read_text()
    except OSError:
        return None
    rss = re.search(r"^VmRSS:\s+(\d+)", text, re.M)
    hwm = re.search(r"^VmHWM:\s+(\d+)", text, re.M)
    if not rss or not hwm:
        return None
    return int(rss.group(1)), int(hwm.group(1))


@dataclass
class MemorySampler:
    """Samples VmRSS/VmHWM of the runtime and every worker it started, every `interval` s."""

    runtime: Runtime
    interval: float = 0.5
    samples: dict[str, list[tuple[float, float]]] = field(default_factory=dict)
    peak_kb: dict[str, int] = field(default_factory=dict)
    _stop: threading.Event = field(default_factory=threading.Event)
    _thread: threading.Thread | None = None

    def _label(self, pid: int, names: dict[int, str]) -> str:
        if pid == self.runtime.pid:
            return "runtime"
        return f"worker:{names.get(pid, 'child')}:{pid}"

    def sample(self) -> None:
        pids = {self.runtime.pid: "runtime", **self.runtime.worker_pids()}
        now = time.time()
        for pid in pids:
            status = _status_kb(pid)
            if status is None:
                continue
            label = self._label(pid, pids)
            rss, hwm = status
            self.samples.setdefault(label, []).append((now, rss / 1024))
            self.peak_kb[label] = max(self.peak_kb.get(label, 0), hwm)

    def _loop(self) -> None:
        while not self._stop.wait(self.interval):
            self.sample()

    def start(self) -> None:
        self.sample()
        self._thread = threading.Thread(target=self._loop, daemon=True, name="rss-sampler")
        self._thread.start()

    def stop(self) -> dict[str, Any]:
        self.sample()
        self._stop.set()
        if self._thread is not None:
            self._thread.join()
        return {
            "peak_mb": {k: round(v / 1024, 1) for k, v in self.peak_kb.items()},
            "last_mb": {k: round(v[-1][1], 1) for k, v in self.samples.items() if v},
        }


# --- CPU accounting ---------------------------------------------------------------------------

SERVICE_PORTS = {"mysql": 3306, "rabbitmq": 5672, "redis": 6379}


def listening_pid(port: int) -> int | None:
    """The process listening on a local TCP port (needs permission to see it; else None)."""
    try:
        for conn in psutil.net_connections("tcp"):
            if (
                conn.status == psutil.CONN_LISTEN
                and conn.laddr
                and conn.laddr.port == port
                and conn.pid
            ):
                return int(conn.pid)
    except psutil.Error:
        return None
    return None


def _cpu_seconds(pid: int) -> float | None:
    try:
        times = psutil.Process(pid).cpu_times()
    except psutil.Error:
        return None
    return float(times.user + times.system)


def _machine_busy() -> float:
    times = psutil.cpu_times()
    return float(sum(times) - times.idle - getattr(times, "iowait", 0.0))


@dataclass
class CpuMeter:
    """CPU seconds used during a measurement by our processes, the shared services and the
    load generator, and by the whole machine (what is left over is other people's work)."""

    runtime: Runtime
    pids: dict[str, int] = field(default_factory=dict)
    _start: dict[str, float] = field(default_factory=dict)
    _machine: float = 0.0
    _wall: float = 0.0

    def start(self) -> None:
        self.pids = {"runtime": self.runtime.pid}
        for pid, name in self.runtime.worker_pids().items():
            self.pids[f"worker {name}"] = pid
        for name, port in SERVICE_PORTS.items():
            service_pid = listening_pid(port)
            if service_pid:
                self.pids[name] = service_pid
        self.pids["load generator"] = os.getpid()
        self._start = {k: v for k, pid in self.pids.items() if (v := _cpu_seconds(pid)) is not None}
        self._machine = _machine_busy()
        self._wall = time.monotonic()

    def stop(self) -> dict[str, Any]:
        wall = time.monotonic() - self._wall
        used = {}
        for name, before in self._start.items():
            after = _cpu_seconds(self.pids[name])
            if after is not None:
                used[name] = round(after - before, 2)
        machine = _machine_busy() - self._machine
        return {
            "wall_s": round(wall, 2),
            "cpu_s": used,
            "machine_busy_cores": round(machine / wall, 2) if wall else None,
            "others_cpu_s": round(machine - sum(used.values()), 2),
            "cores": psutil.cpu_count(),
        }
