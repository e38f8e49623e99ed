"""EventBridge schedules, emulated: each scheduled function invoked on its rate or cron.

EventBridge sends the scheduled event (or the target's constant Input instead) and invokes the
function asynchronously, so a failed invocation is retried twice more, a minute and then two
minutes later, as Lambda retries asynchronous invocations by default. One invocation of a
schedule runs at a time here: a tick that comes while the previous one still runs is skipped
and logged (on AWS the two would overlap in separate execution environments).
"""

from __future__ import annotations

import heapq
import json
import logging
import threading
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

from declarations import schedules
from declarations.model import Function, Schedule
from local_runtime.environment import ExecutionEnvironment, InvocationFailed, Site

LOGGER = logging.getLogger(__name__)
RETRY_DELAYS = (timedelta(minutes=1), timedelta(minutes=2))
Clock = Callable[[], datetime]


def scheduled_event(schedule: Schedule, site: Site, moment: datetime) -> Any:
    """What EventBridge sends for one tick: the constant Input, or the Scheduled Event."""
    if schedule.input is not None:
        return json.loads(schedule.input)
    return {
        "version": "0",
        "id": str(uuid.uuid4()),
        "detail-type": "Scheduled Event",
        "source": "aws.events",
        "account": site.account,
        "time": moment.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%SZ"),
        "region": site.region,
        "resources": [f"arn:aws:events:{site.region}:{site.account}:rule/{schedule.rule_name}"],
        "detail": {},
    }


@dataclass
class ScheduledFunction:
    """One schedule and the execution environment its invocations run in."""

    schedule: Schedule
    environment: ExecutionEnvironment
    timing: schedules.Rate | schedules.Cron = field(init=False)
    busy: threading.Lock = field(default_factory=threading.Lock)
    pending: Function | None = None
    invocations: int = 0
    failures: int = 0

    def __post_init__(self) -> None:
        self.timing = schedules.parse(self.schedule.expression)

    def update_function(self, function: Function) -> None:
        """Invoke `function` (new code or configuration) from the next tick on; a tick in
        flight finishes on the old execution environment."""
        self.pending = function

    def current_environment(self) -> ExecutionEnvironment:
        pending, self.pending = self.pending, None
        if pending is not None:
            old = self.environment
            old.stop()
            self.environment = ExecutionEnvironment(
                pending, output=old.output, site=old.site, nice=old.nice
            )
        return self.environment

    @property
    def name(self) -> str:
        return self.schedule.logical_id


@dataclass(order=True)
class _Tick:
    due: datetime
    order: int
    target: ScheduledFunction = field(compare=False)
    attempt: int = field(default=0, compare=False)
    event: Any = field(default=None, compare=False)


class Scheduler:
    """Fires every enabled schedule on time, from one timer thread; invocations run on their
    own threads so a slow function never delays another schedule."""

    def __init__(
        self,
        targets: list[ScheduledFunction],
        site: Site,
        clock: Clock = lambda: datetime.now(UTC),
    ) -> None:
        self._targets = {target.name: target for target in targets}
        self._site = site
        self._clock = clock
        self._queue: list[_Tick] = []
        self._order = 0
        self._wake = threading.Condition()
        self._stopping = False
        self._started = clock()
        self._thread: threading.Thread | None = None
        self._running: set[threading.Thread] = set()

    @property
    def targets(self) -> dict[str, ScheduledFunction]:
        return dict(self._targets)

    def start(self) -> None:
        for target in self._targets.values():
            if target.schedule.enabled:
                self._push(target.timing.next_after(self._started, self._started), target)
            else:
                LOGGER.info("%s: schedule is disabled (State: DISABLED)", target.name)
        self._thread = threading.Thread(target=self._run, name="scheduler", daemon=True)
        self._thread.start()

    def trigger(self, name: str) -> None:
        """Fire one schedule now, as its next tick would (the `trigger` command)."""
        target = self._targets.get(name)
        if target is None:
            raise KeyError(f"no schedule named {name!r} (known: {', '.join(self._targets)})")
        self._push(self._clock(), target)

    def stop(self) -> None:
        with self._wake:
            self._stopping = True
            self._wake.notify_all()
        if self._thread is not None:
            self._thread.join(5)
        for thread in list(self._running):
            thread.join(max(t.environment.spec.timeout for t in self._targets.values()) + 1)
        for target in self._targets.values():
            target.environment.stop()

    def _push(
        self, due: datetime, target: ScheduledFunction, attempt: int = 0, event: Any = None
    ) -> None:
        with self._wake:
            self._order += 1
            heapq.heappush(self._queue, _Tick(due, self._order, target, attempt, event))
            self._wake.notify_all()

    def _run(self) -> None:
        while True:
            with self._wake:
                while not self._stopping and (
                    not self._queue or self._queue[0].due > self._clock()
                ):
                    wait = (
                        (self._queue[0].due - self._clock()).total_seconds()
                        if self._queue
                        else None
                    )
                    self._wake.wait(None if wait is None else max(0.0, min(wait, 1.0)))
                if self._stopping:
                    return
                tick = heapq.heappop(self._queue)
            if tick.attempt == 0 and tick.event is None:
                self._schedule_next(tick)
            self._fire(tick)

    def _schedule_next(self, tick: _Tick) -> None:
        target = tick.target
        try:
            due = target.timing.next_after(max(tick.due, self._clock()), self._started)
        except schedules.ScheduleError:
            LOGGER.info("%s: the schedule never fires again", target.name)
            return
        self._push(due, target)

    def _fire(self, tick: _Tick) -> None:
        target = tick.target
        if not target.busy.acquire(blocking=False):
            LOGGER.warning("%s: still running at its next tick; this tick is skipped", target.name)
            return
        event = (
            tick.event
            if tick.event is not None
            else scheduled_event(target.schedule, self._site, tick.due)
        )
        thread = threading.Thread(
            target=self._invoke, args=(tick, event), name=f"schedule-{target.name}", daemon=True
        )
        self._running.add(thread)
        thread.start()

    def _invoke(self, tick: _Tick, event: Any) -> None:
        target = tick.target
        try:
            target.current_environment().invoke(event)
            target.invocations += 1
        except InvocationFailed as exc:
            target.failures += 1
            if tick.attempt < len(RETRY_DELAYS):
                delay = RETRY_DELAYS[tick.attempt]
                LOGGER.warning(
                    "%s: scheduled invocation failed (%s); retrying in %ds",
                    target.name,
                    exc,
                    delay.total_seconds(),
                )
                self._push(self._clock() + delay, target, tick.attempt + 1, event)
            else:
                LOGGER.error(
                    "%s: scheduled invocation failed %d times; dropped: %s",
                    target.name,
                    tick.attempt + 1,
                    exc,
                )
        finally:
            target.busy.release()
            self._running.discard(threading.current_thread())
