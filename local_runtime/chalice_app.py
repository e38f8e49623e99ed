"""What a Chalice app declares in code: whether a handler is one, and its `@app.schedule`s.

A template names a Chalice API function by its handler (`app.app`); the schedules live in the
app's code, as `chalice package` would turn them into functions of their own. The runtime asks
this module, run as `python -m local_runtime.chalice_app HANDLER` in the function's own
environment and folder (so the app's import side effects stay out of the runtime), and reads
one JSON line back.
"""

from __future__ import annotations

import importlib
import json
import os
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Any

PROBE_TIMEOUT_SECONDS = 30


@dataclass(frozen=True)
class ChaliceSchedule:
    """A `@app.schedule` function: its name, handler and EventBridge expression."""

    name: str
    handler: str
    expression: str


@dataclass(frozen=True)
class ChaliceApp:
    """What the probe found; `is_chalice` False for any other handler."""

    is_chalice: bool
    schedules: tuple[ChaliceSchedule, ...] = ()
    not_emulated: tuple[str, ...] = ()  # other event sources, named for a warning


class ProbeError(RuntimeError):
    """The handler could not be imported to see what it is; the message says why."""


def probe(code_dir: Path, handler: str, environment: dict[str, str]) -> ChaliceApp:
    """Import the handler in a child process with the function's environment and report."""
    result = subprocess.run(
        [sys.executable, "-m", "local_runtime.chalice_app", handler],
        cwd=code_dir,
        env={**environment, "PYTHONPATH": _path(code_dir, environment)},
        capture_output=True,
        text=True,
        timeout=PROBE_TIMEOUT_SECONDS,
        check=False,
    )
    lines = result.stdout.strip().splitlines()
    if result.returncode != 0 or not lines:
        detail = (result.stderr.strip().splitlines() or ["no output"])[-1]
        raise ProbeError(f"importing {handler} from {code_dir} failed: {detail}")
    found = json.loads(lines[-1])
    return ChaliceApp(
        is_chalice=found["is_chalice"],
        schedules=tuple(ChaliceSchedule(**item) for item in found["schedules"]),
        not_emulated=tuple(found["not_emulated"]),
    )


def _path(code_dir: Path, environment: dict[str, str]) -> str:
    runtime_root = str(Path(__file__).resolve().parent.parent)
    parts = [str(code_dir), environment.get("PYTHONPATH", ""), runtime_root]
    return os.pathsep.join(part for part in parts if part)


def describe(handler: str) -> dict[str, Any]:
    """In the child: import the handler and describe it."""
    module_name, attribute = handler.rsplit(".", 1)
    module = importlib.import_module(module_name.replace("/", "."))
    target = getattr(module, attribute)
    try:
        from chalice.app import Chalice, ScheduledEventConfig
    except ImportError:
        return {"is_chalice": False, "schedules": [], "not_emulated": []}
    if not isinstance(target, Chalice):
        return {"is_chalice": False, "schedules": [], "not_emulated": []}
    schedules, others = [], []
    for source in target.event_sources:
        if isinstance(source, ScheduledEventConfig):
            expression = source.schedule_expression
            text = expression if isinstance(expression, str) else expression.to_string()
            schedules.append(
                {
                    "name": source.name,
                    "handler": source.handler_string,
                    "expression": text,
                }
            )
        else:
            others.append(f"{source.name} ({type(source).__name__})")
    return {"is_chalice": True, "schedules": schedules, "not_emulated": others}


def main() -> None:
    sys.path.insert(0, os.getcwd())
    print(json.dumps(describe(sys.argv[1])))


if __name__ == "__main__":
    main()
