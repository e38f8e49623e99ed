"""Runs what a template declares: a mapping per MQ event, the schedules, and the API.

The runtime knows nothing of the application it runs. It emulates three AWS services for
whatever the template holds: Amazon MQ event source mappings (a consumer per mapping and the
execution environments it invokes), EventBridge schedules (the template's rules and a Chalice
app's `@app.schedule` functions), and API Gateway's proxy integration (a process of its own,
`start --api-only`, which the runtime starts, starts again if it dies, and stops with itself).
"""

from __future__ import annotations

import gc
import logging
import os
import signal
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field, replace
from pathlib import Path
from types import FrameType

import pika
import pika.exceptions

from declarations.errors import TemplateError
from declarations.model import Function, MqSource, Project, Schedule
from local_runtime import chalice_app, control
from local_runtime.backoff import Backoff
from local_runtime.brokers import BrokerMap, describe, parameters
from local_runtime.environment import ExecutionEnvironment, Site, lambda_environment
from local_runtime.mapping import EventSourceMapping, Observer
from local_runtime.scheduler import ScheduledFunction, Scheduler

LOGGER = logging.getLogger(__name__)
PROCESS_ROLE_VARIABLE = "LOCAL_RUNTIME_PROCESS"  # "api" in the API's own process
# Set in the API's process, which serves many requests at once on this many threads and lives
# as long as the runtime: an app may choose a path built for that (a Lambda environment serves
# one request at a time and may be frozen between them).
API_THREADS_VARIABLE = "LOCAL_RUNTIME_API_THREADS"
API_START_SECONDS = 30.0
API_STOP_SECONDS = 15.0


class StartupError(RuntimeError):
    """Something the runtime needs is not there; the message names it in one line."""


def check_brokers(urls: Sequence[str]) -> None:
    """Connect once to each broker the mappings use: an unreachable one is one clear line at
    start (a refused login is left to the mappings, which stop with AWS's reason)."""
    for url in sorted(set(urls)):
        try:
            pika.BlockingConnection(parameters(url)).close()
        except (
            pika.exceptions.ProbableAuthenticationError,
            pika.exceptions.ProbableAccessDeniedError,
        ) as exc:
            # Reachable, but refusing: the mappings that use it stop with AWS's reason.
            LOGGER.warning("RabbitMQ at %s refused the runtime's login: %r", describe(url), exc)
        except (pika.exceptions.AMQPError, OSError) as exc:
            raise StartupError(f"RabbitMQ is not reachable at {describe(url)}: {exc!r}") from exc


def api_functions(project: Project) -> list[Function]:
    """The functions API Gateway routes requests to."""
    served = {route.function for route in project.routes}
    return [project.functions[name] for name in sorted(served)]


@dataclass
class Runtime:
    """The running emulation; start() returns once everything is up, stop() undoes it."""

    project: Project
    brokers: BrokerMap
    site: Site = field(default_factory=Site)
    # Only these functions' MQ mappings and schedule rules (logical ids); all when empty.
    # The API, and a Chalice API's own schedules, run unless `api` is False.
    only: Sequence[str] = ()
    api: bool = True
    host: str = "127.0.0.1"
    port: int = 8000
    api_command: Sequence[str] = ()  # how to start `start --api-only` for this project
    background_nice: int = 0  # consumers and workers this far below the API's priority
    observer: Observer | None = None
    mappings: list[EventSourceMapping] = field(default_factory=list)
    scheduler: Scheduler | None = None
    _threads: list[threading.Thread] = field(default_factory=list)
    _stop: threading.Event = field(default_factory=threading.Event)
    _api_child: subprocess.Popen[bytes] | None = None
    _api_lock: threading.Lock = field(default_factory=threading.Lock)
    _control: control.ControlServer | None = None

    def selected(self, function: Function) -> bool:
        return not self.only or function.logical_id in self.only

    def start(self) -> None:
        for warning in self.project.warnings:
            LOGGER.warning("%s", warning)
        sources = [
            s for s in self.project.mq_sources if self.selected(self.project.functions[s.function])
        ]
        check_brokers([self.brokers.consumed(source)[0] for source in sources])
        for source in sources:
            self._start_mapping(source)
        self._start_schedules()
        if self.api and api_functions(self.project):
            self._start_api_process()
        self._control = control.ControlServer(
            control.socket_path(self.project.template), self.commands()
        )
        self._control.start()
        # What start-up loaded lives as long as the process: keep the collector off it, so
        # a full collection walks only what later work allocates.
        gc.freeze()

    def _start_mapping(self, source: MqSource) -> None:
        function = self.project.functions[source.function]
        if not source.enabled:
            LOGGER.info(
                "%s: mapping %s is disabled (Enabled: false); `credit-runtime enable %s` starts it",
                function.name,
                source.logical_id,
                source.logical_id,
            )
        url, virtual_host = self.brokers.consumed(source)
        mapping = EventSourceMapping(
            function,
            source,
            url,
            virtual_host=virtual_host,
            site=self.site,
            observer=self.observer,
            nice=self.background_nice,
        )
        self.mappings.append(mapping)
        self._spawn(mapping.run, f"mapping-{source.logical_id}")

    def _start_schedules(self) -> None:
        targets = [
            ScheduledFunction(schedule, ExecutionEnvironment(function, site=self.site))
            for schedule, function in self._schedules()
        ]
        if targets:
            self.scheduler = Scheduler(targets, self.site)
            self.scheduler.start()
            for target in targets:
                LOGGER.info(
                    "%s: scheduled %s", target.environment.spec.name, target.schedule.expression
                )

    def _schedules(self) -> list[tuple[Schedule, Function]]:
        """The template's schedule rules, and the `@app.schedule`s of Chalice API functions,
        each a function of its own as `chalice package` would deploy it."""
        found = [
            (schedule, self.project.functions[schedule.function])
            for schedule in self.project.schedules
            if self.selected(self.project.functions[schedule.function])
        ]
        for function in api_functions(self.project) if self.api else []:
            app = chalice_app.probe(
                function.code_dir, function.handler, lambda_environment(function, self.site)
            )
            for warning in app.not_emulated:
                LOGGER.warning(
                    "%s: Chalice event source not emulated locally: %s", function.name, warning
                )
            for item in app.schedules:
                scheduled = replace(
                    function,
                    logical_id=f"{function.logical_id}-{item.name}",
                    name=f"{function.name}-{item.name}",
                    handler=item.handler,
                )
                schedule = Schedule(
                    logical_id=scheduled.logical_id,
                    function=scheduled.logical_id,
                    expression=item.expression,
                    rule_name=scheduled.name,
                )
                found.append((schedule, scheduled))
        return found

    # --- watch mode ------------------------------------------------------------------------

    def watch(self, reload: Callable[[], Project]) -> None:
        """Until stop(): when a template file or a function's code changes, read the template
        again and replace what changed before its next batch or request (one log line each).
        A template that no longer reads is named and the running functions are kept."""
        import watchfiles  # imported here: only `start --watch` needs it

        while not self._stop.is_set():
            paths = watched_paths(self.project)
            for changes in watchfiles.watch(*paths, stop_event=self._stop, debounce=300):
                changed = {Path(path) for _, path in changes}
                try:
                    project = reload()
                except TemplateError as exc:
                    LOGGER.error(
                        "template changed but does not read; still running the old: %s", exc
                    )
                    continue
                self._apply(project, changed)
                if watched_paths(project) != paths:
                    break  # watch the new set of folders

    def _apply(self, project: Project, changed: set[Path]) -> None:
        old, self.project = self.project, project

        def touched(function: Function) -> bool:
            folders = [function.code_dir, *function.layers]
            return any(
                folder == path or folder in path.parents for path in changed for folder in folders
            )

        self._apply_mappings(old, project, touched)
        self._apply_schedules(project, touched)
        api_changed = [
            f for f in api_functions(project) if f not in api_functions(old) or touched(f)
        ]
        if self._api_child is not None and api_changed:
            LOGGER.info("%s: changed; restarting the API process", api_changed[0].name)
            self._restart_api()

    def _apply_mappings(
        self, old: Project, project: Project, touched: Callable[[Function], bool]
    ) -> None:
        """A changed mapping restarts (its batches go back to the queue first); a changed
        function gets new execution environments; a new mapping starts."""
        sources = {source.logical_id: source for source in project.mq_sources}
        for mapping in list(self.mappings):
            source = sources.get(mapping.source.logical_id)
            if source != mapping.source:
                mapping.stop()  # its thread returns its batches and exits
                self.mappings.remove(mapping)
                LOGGER.info(
                    "%s: mapping %s changed; restarting it",
                    mapping.spec.name,
                    mapping.source.logical_id,
                )
                continue
            function = project.functions[source.function]
            if function != mapping.spec or touched(function):
                mapping.update_function(function)
                LOGGER.info(
                    "%s: changed; its execution environments are replaced before the next batch",
                    function.name,
                )
        running = {mapping.source.logical_id for mapping in self.mappings}
        for source in project.mq_sources:
            if source.logical_id not in running and self.selected(
                project.functions[source.function]
            ):
                self._start_mapping(source)

    def _apply_schedules(self, project: Project, touched: Callable[[Function], bool]) -> None:
        if self.scheduler is None:
            return
        current = dict(self._schedules())
        for target in self.scheduler.targets.values():
            function = current.get(target.schedule)
            if function is not None and (function != target.environment.spec or touched(function)):
                target.update_function(function)
                LOGGER.info("%s: changed; replaced before its next tick", function.name)

    def commands(self) -> dict[str, control.Command]:
        """What `credit-runtime status|trigger` may ask of this runtime."""
        return {
            "status": self._status,
            "trigger": self._trigger,
            "disable": lambda args: self._switch(args, enable=False),
            "enable": lambda args: self._switch(args, enable=True),
        }

    def _switch(self, args: list[str], enable: bool) -> list[str]:
        """Enable or disable the mappings named (by their logical id, or their function's)."""
        if len(args) != 1:
            raise ValueError("takes one mapping or function name")
        (name,) = args
        chosen = [
            m
            for m in self.mappings
            if name in (m.source.logical_id, m.spec.logical_id, m.spec.name)
        ]
        if not chosen:
            known = ", ".join(sorted(m.source.logical_id for m in self.mappings)) or "none"
            raise KeyError(f"no mapping or function named {name!r} (mappings: {known})")
        for mapping in chosen:
            if enable:
                mapping.enable()
            else:
                mapping.disable()
        return [f"{m.source.logical_id}: {m.state}" for m in chosen]

    def _status(self, _: list[str]) -> dict[str, object]:
        return {
            "pid": os.getpid(),
            "mappings": {
                m.source.logical_id: {
                    "function": m.spec.name,
                    "queue": m.source.queue,
                    "state": m.state,
                    "state_transition_reason": m.state_reason,
                    "connected": m.connected.is_set(),
                    "filtered": m.filtered,
                }
                for m in self.mappings
            },
            "schedules": {
                name: {
                    "expression": t.schedule.expression,
                    "invocations": t.invocations,
                    "failures": t.failures,
                }
                for name, t in (self.scheduler.targets if self.scheduler else {}).items()
            },
            "api": None if self._api_child is None else f"http://{self.host}:{self.port}",
        }

    def _trigger(self, args: list[str]) -> str:
        if self.scheduler is None or len(args) != 1:
            raise ValueError(
                "trigger takes one schedule name; this runtime runs none"
                if self.scheduler is None
                else "trigger takes one schedule name"
            )
        self.scheduler.trigger(args[0])
        return f"{args[0]} triggered"

    # --- the API process -------------------------------------------------------------------

    def _start_api_process(self) -> None:
        if self.port == 0:
            with socket.socket() as probe:
                probe.bind((self.host, 0))
                self.port = probe.getsockname()[1]
        self._api_child = self._spawn_api()
        self._spawn(self._watch_api, "api-supervisor")

    def _spawn_api(self) -> subprocess.Popen[bytes]:
        """`start --api-only` in a child process; returns once it accepts connections."""
        command = [sys.executable, "-m", "local_runtime", *self.api_command]
        command += ["--host", self.host, "--port", str(self.port), "--parent-pid", str(os.getpid())]
        child = subprocess.Popen(command, env={**os.environ, PROCESS_ROLE_VARIABLE: "api"})
        deadline = time.monotonic() + API_START_SECONDS
        while time.monotonic() < deadline:
            code = child.poll()
            if code is not None:
                raise StartupError(f"the API process exited with code {code} while starting")
            try:
                socket.create_connection((self.host, self.port), timeout=0.2).close()
                return child
            except OSError:
                time.sleep(0.05)
        child.kill()
        raise StartupError(f"the API process did not listen on port {self.port} in time")

    def _watch_api(self) -> None:
        """Start the API process again if it dies; nothing else may take the runtime down."""
        backoff = Backoff(initial=0.5, cap=5.0)
        while not self._stop.wait(0.5):
            with self._api_lock:
                child = self._api_child
                code = child.poll() if child is not None else None
            if code is None:
                continue
            LOGGER.error("the API process exited with code %s; starting it again", code)
            while not self._stop.is_set():
                try:
                    self._api_child = self._spawn_api()
                    backoff.reset()
                    break
                except (StartupError, OSError) as exc:
                    delay = backoff.next_delay()
                    LOGGER.error("%s; retrying in %.1fs", exc, delay)
                    self._stop.wait(delay)

    def _restart_api(self) -> None:
        with self._api_lock:
            self._stop_api_process()
            self._api_child = self._spawn_api()

    def _stop_api_process(self) -> None:
        child, self._api_child = self._api_child, None
        if child is None or child.poll() is not None:
            return
        child.send_signal(signal.SIGTERM)
        try:
            child.wait(API_STOP_SECONDS)
        except subprocess.TimeoutExpired:
            LOGGER.warning("the API process ignored SIGTERM; killing it")
            child.kill()
            child.wait()

    # --- lifecycle ---------------------------------------------------------------------------

    def _spawn(self, target: object, name: str) -> None:
        thread = threading.Thread(target=target, name=name, daemon=True)  # type: ignore[arg-type]
        thread.start()
        self._threads.append(thread)

    def stop(self) -> None:
        """Stop taking requests, let in-flight batches finish or return them, stop workers."""
        self._stop.set()
        if self._control is not None:
            self._control.stop()
        self._stop_api_process()
        for mapping in self.mappings:
            mapping.stop()
        if self.scheduler is not None:
            self.scheduler.stop()
        for thread in self._threads:
            thread.join(timeout=60)

    def run_until_signalled(self, reload: Callable[[], Project] | None = None) -> None:
        """start(), then block until SIGINT or SIGTERM, then stop() cleanly; given `reload`
        (watch mode), what changes on disk is replaced meanwhile."""
        received = install_stop_signals()
        self.start()
        if reload is not None:
            self._spawn(lambda: self.watch(reload), "watch")
            LOGGER.info("watching the template and the functions' code for changes")
        received.wait()
        self.stop()


def watched_paths(project: Project) -> list[Path]:
    """The template's files and every function's code and layer folders."""
    from declarations.loader import load

    files = set(load(project.template).origins.values()) | {project.template}
    folders = {f.code_dir for f in project.functions.values()}
    folders |= {layer for f in project.functions.values() for layer in f.layers}
    return sorted(files | folders)


def install_stop_signals(parent_pid: int | None = None) -> threading.Event:
    """An event set on SIGINT or SIGTERM (or, given parent_pid, when that process is gone)."""
    received = threading.Event()

    def on_signal(signum: int, _: FrameType | None) -> None:
        LOGGER.info("received %s, shutting down", signal.Signals(signum).name)
        received.set()

    signal.signal(signal.SIGINT, on_signal)
    signal.signal(signal.SIGTERM, on_signal)
    if parent_pid is not None:

        def watch_parent() -> None:
            while not received.wait(0.5):
                if os.getppid() != parent_pid:
                    LOGGER.warning("the runtime that started this process is gone; stopping")
                    received.set()

        threading.Thread(target=watch_parent, name="parent-watch", daemon=True).start()
    return received
