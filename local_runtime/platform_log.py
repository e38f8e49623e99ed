"""The lines Lambda's platform writes around a function's own output: INIT_START, START, END,
REPORT, INIT_REPORT and the timeout and exit notices, in the function's log format.

With `LoggingConfig.LogFormat: Text` they are the familiar tab-separated lines; with `JSON`
they are the system log records CloudWatch receives (`{"time", "type": "platform.start",
"record": {...}}`), and `SystemLogLevel` drops the ones below it (start and report are INFO).
"""

from __future__ import annotations

import json
import math
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from declarations.model import Logging

Write = Callable[[list[str]], None]
_LEVELS = {"TRACE": 0, "DEBUG": 1, "INFO": 2, "WARN": 3, "ERROR": 4, "FATAL": 5}


def runtime_version() -> str:
    """What INIT_START names: the Python that really runs the function here."""
    return f"python:{sys.version_info.major}.{sys.version_info.minor}.local"


@dataclass(frozen=True)
class Outcome:
    """How an invocation or init ended, for REPORT and INIT_REPORT: status and error type."""

    status: str = "success"  # success, error or timeout
    error_type: str | None = None


SUCCESS = Outcome()


def billed_ms(duration_ms: float, init_ms: float | None) -> int:
    """Since August 2025 AWS bills the init phase of managed runtimes too, so a cold start's
    Billed Duration covers Init Duration plus Duration."""
    return math.ceil(duration_ms + (init_ms or 0.0))


@dataclass
class PlatformLog:
    """Writes one function's platform lines through `write` (which prefixes and prints)."""

    function_name: str
    memory_mb: int
    region: str
    logging: Logging
    write: Write

    @property
    def json(self) -> bool:
        return self.logging.log_format == "JSON"

    def _enabled(self, level: str) -> bool:
        threshold = self.logging.system_log_level or "INFO"
        return not self.json or _LEVELS[level] >= _LEVELS.get(threshold, 2)

    def _record(self, kind: str, record: dict[str, Any], level: str = "INFO") -> list[str]:
        if not self._enabled(level):
            return []
        stamp = time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime())
        millis = int(time.time() * 1000) % 1000
        event = {"time": f"{stamp}.{millis:03d}Z", "type": kind, "record": record}
        return [json.dumps(event, separators=(",", ":"))]

    def init_start(self) -> list[str]:
        version = runtime_version()
        arn = f"arn:aws:lambda:{self.region}::runtime:{version}"
        if self.json:
            return self._record(
                "platform.initStart",
                {
                    "initializationType": "on-demand",
                    "phase": "init",
                    "runtimeVersion": version,
                    "runtimeVersionArn": arn,
                    "functionName": self.function_name,
                    "functionVersion": "$LATEST",
                },
            )
        return [f"INIT_START Runtime Version: {version}\tRuntime Version ARN: {arn}"]

    def init_report(self, duration_ms: float, phase: str, outcome: Outcome) -> list[str]:
        """Written only when an init did not succeed (AWS writes none for a good one)."""
        if self.json:
            record: dict[str, Any] = {
                "initializationType": "on-demand",
                "phase": phase,
                "status": outcome.status,
                "metrics": {"durationMs": round(duration_ms, 3)},
            }
            if outcome.error_type:
                record["errorType"] = outcome.error_type
            return self._record("platform.initReport", record, "WARN")
        line = (
            f"INIT_REPORT Init Duration: {duration_ms:.2f} ms\tPhase: {phase}"
            f"\tStatus: {outcome.status}"
        )
        if outcome.error_type:
            line += f"\tError Type: {outcome.error_type}"
        return [line]

    def start(self, request_id: str) -> list[str]:
        if self.json:
            return self._record("platform.start", {"requestId": request_id, "version": "$LATEST"})
        return [f"START RequestId: {request_id} Version: $LATEST"]

    def end(
        self,
        request_id: str,
        duration_ms: float,
        max_memory_mb: int | None,
        init_ms: float | None,
        outcome: Outcome = SUCCESS,
    ) -> list[str]:
        """END and REPORT (JSON has no END record: platform.report closes the invocation)."""
        if self.json:
            metrics: dict[str, Any] = {
                "durationMs": round(duration_ms, 3),
                "billedDurationMs": billed_ms(duration_ms, init_ms),
                "memorySizeMB": self.memory_mb,
                "maxMemoryUsedMB": max_memory_mb,
            }
            if init_ms is not None:
                metrics["initDurationMs"] = round(init_ms, 3)
            record: dict[str, Any] = {
                "requestId": request_id,
                "metrics": {k: v for k, v in metrics.items() if v is not None},
                "status": outcome.status,
            }
            if outcome.error_type:
                record["errorType"] = outcome.error_type
            return self._record("platform.report", record)
        return [
            f"END RequestId: {request_id}",
            self.report_line(request_id, duration_ms, max_memory_mb, init_ms, outcome),
        ]

    def report_line(
        self,
        request_id: str,
        duration_ms: float,
        max_memory_mb: int | None,
        init_ms: float | None,
        outcome: Outcome = SUCCESS,
    ) -> str:
        used = "-" if max_memory_mb is None else str(max_memory_mb)
        line = (
            f"REPORT RequestId: {request_id}\tDuration: {duration_ms:.2f} ms\t"
            f"Billed Duration: {billed_ms(duration_ms, init_ms)} ms\tMemory Size: "
            f"{self.memory_mb} MB\tMax Memory Used: {used} MB"
        )
        if init_ms is not None:
            line += f"\tInit Duration: {init_ms:.2f} ms"
        if outcome.status != "success":
            line += f"\tStatus: {outcome.status}"
            if outcome.error_type:
                line += f"\tError Type: {outcome.error_type}"
        return line

    @staticmethod
    def timed_out(request_id: str, timeout: float) -> list[str]:
        stamp = time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime())
        millis = int(time.time() * 1000) % 1000
        return [f"{stamp}.{millis:03d}Z {request_id} Task timed out after {timeout:.2f} seconds"]

    @staticmethod
    def init_failed(error_type: str) -> list[str]:
        """What Lambda writes in an invocation whose environment could not initialise."""
        return ["Unknown application error occurred", error_type]
