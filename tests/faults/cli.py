"""`python -m tests.faults`: run the scenarios, print the table, exit 1 if any failed."""

from __future__ import annotations

import argparse
import logging
import sys
import tempfile
import time
from pathlib import Path

from tests.faults import report, runner
from tests.faults.scenarios import SCENARIOS


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="python -m tests.faults",
        description="Break the real system on purpose (private RabbitMQ, Redis, MariaDB on other "
        "ports) and count accepted, decided, lost, stuck, double-counted and wrong tickets.",
    )
    parser.add_argument(
        "--scenario",
        nargs="+",
        action="extend",
        choices=list(SCENARIOS),
        metavar="NAME",
        help=f"run only these ({', '.join(SCENARIOS)}); default: all",
    )
    parser.add_argument("--tickets", type=int, help="tickets per scenario (default: per scenario)")
    parser.add_argument("--quick", action="store_true", help="small sizes and short faults, for CI")
    parser.add_argument("--seed", type=int, default=1, help="seed of the requests (default 1)")
    parser.add_argument(
        "--logs", type=Path, help="folder for the runtime logs (default: a new temp folder)"
    )
    parser.add_argument("-v", "--verbose", action="store_true", help="debug logging")
    return parser


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    logging.basicConfig(
        level=logging.DEBUG if args.verbose else logging.INFO,
        format="%(asctime)s %(levelname)s %(name)s: %(message)s",
        stream=sys.stderr,
    )
    logging.getLogger("pika").setLevel(logging.CRITICAL)
    logs = args.logs or Path(tempfile.mkdtemp(prefix="faults-"))
    results = []
    began = time.monotonic()
    for name in args.scenario or list(SCENARIOS):
        scenario = SCENARIOS[name]
        size = scenario.size(args.quick, args.tickets)
        results.append(runner.run(scenario, size, logs / name, args.seed))
    print(report.table(results))
    print()
    print(report.details(results))
    print(f"\n{'quick' if args.quick else 'full'} run took {time.monotonic() - began:.0f}s")
    return 0 if all(result.passed for result in results) else 1
