"""`python -m bench`: start the system, measure, print the table, write JSON and a PNG."""

from __future__ import annotations

import argparse
import os
import platform
import subprocess
import sys
import time
import traceback
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from bench import report, scenarios
from bench.procs import REPO, BenchProcessError
from bench.scenarios import Bench
from bench.services import (
    DEFAULT_AMQP_URL,
    DEFAULT_MYSQL_URL,
    DEFAULT_REDIS_URL,
    BenchSetupError,
    Services,
)
from bench.stats import median

SECTIONS = ("ceiling", "e2e", "poll", "overhead")


def _ints(text: str) -> list[int]:
    return [int(item) for item in text.split(",") if item.strip()]


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="python -m bench",
        description="Benchmark the credit pipeline end to end, the poll path against stock "
        "`chalice local`, and the runtime against a bare pika consumer.",
    )
    parser.add_argument(
        "--quick",
        action="store_true",
        help="CI mode: ~2,000 tickets, one run, short poll and overhead runs (< ~2 min)",
    )
    parser.add_argument(
        "--tickets", type=int, help="tickets per end-to-end run (default 20,000; quick 2,000)"
    )
    parser.add_argument(
        "--clients",
        type=_ints,
        default=[1, 16, 64],
        help="concurrent clients, comma separated (default 1,16,64)",
    )
    parser.add_argument(
        "--runs", type=int, help="runs per measurement; medians reported (default 3; quick 1)"
    )
    parser.add_argument(
        "--out",
        type=Path,
        default=REPO / "bench-results",
        help="output folder (default bench-results/)",
    )
    parser.add_argument(
        "--only",
        type=lambda s: [x.strip() for x in s.split(",")],
        default=list(SECTIONS),
        help=f"sections to run, comma separated, from {','.join(SECTIONS)} (default all), "
        "or scale (same as --scale)",
    )
    parser.add_argument(
        "--scale",
        action="store_true",
        help="also run end to end at each --scale-sizes (fresh system each) with memory sampling",
    )
    parser.add_argument("--scale-sizes", type=_ints, default=[1000, 10_000, 100_000])
    parser.add_argument(
        "--half-rate",
        action=argparse.BooleanOptionalAction,
        default=True,
        help="also run at half the maximum rate measured at 16 clients (default on)",
    )
    parser.add_argument(
        "--poll-seconds", type=float, help="seconds per poll measurement (default 5; quick 2)"
    )
    parser.add_argument(
        "--overhead-messages",
        type=int,
        help="messages per runtime-overhead run (default 100,000; quick 5,000)",
    )
    parser.add_argument(
        "--latency-samples", type=int, help="single-message latency samples (default 20; quick 5)"
    )
    parser.add_argument(
        "--mysql-url",
        default=DEFAULT_MYSQL_URL,
        help="a database of the bench's own; its tables are truncated (default %(default)s)",
    )
    parser.add_argument(
        "--amqp-url",
        default=DEFAULT_AMQP_URL,
        help="a vhost of the bench's own, created with rabbitmqctl if missing "
        "(default %(default)s)",
    )
    parser.add_argument("--redis-url", default=DEFAULT_REDIS_URL, help="default %(default)s")
    return parser


def _defaults(args: argparse.Namespace) -> None:
    quick = args.quick
    # quick mode posts fewer tickets where the system is slowest (1 client, half rate), so that
    # it stays near two minutes; an explicit --tickets applies everywhere
    args.tickets_c1 = args.tickets or (500 if quick else 20_000)
    args.tickets_half = args.tickets or (1000 if quick else 20_000)
    args.tickets = args.tickets or (2000 if quick else 20_000)
    args.runs = args.runs or (1 if quick else 3)
    args.poll_seconds = args.poll_seconds or (2.0 if quick else 5.0)
    # 20,000 messages drain in a third of a second, where start-up and scheduling swing the
    # ratio by 15 points from run to run; 100,000 take over a second and a half.
    args.overhead_messages = args.overhead_messages or (5000 if quick else 100_000)
    args.latency_samples = (
        args.latency_samples if args.latency_samples is not None else (5 if quick else 20)
    )
    if "scale" in args.only:
        args.scale = True
        args.only = [item for item in args.only if item != "scale"]
    unknown = sorted(set(args.only) - set(SECTIONS))
    if unknown:
        raise SystemExit(
            f"--only: unknown section(s) {', '.join(unknown)}; choose from {', '.join(SECTIONS)}"
        )


def _git() -> dict[str, Any]:
    def run(*argv: str) -> str:
        done = subprocess.run(["git", *argv], cwd=REPO, capture_output=True, text=True, check=False)
        return done.stdout.rstrip("\n")

    return {
        "commit": run("rev-parse", "--short", "HEAD").strip(),
        "dirty": [
            line[3:]
            for line in run("status", "--porcelain").splitlines()
            if line[3:].split("/")[0] not in ("bench", "bench-results")
        ],
    }


def _say(text: str) -> None:
    print(text, flush=True)


def main(argv: list[str] | None = None) -> None:
    args = build_parser().parse_args(argv)
    _defaults(args)
    out: Path = args.out.resolve()  # workers run in their function folders: no relative paths
    out.mkdir(parents=True, exist_ok=True)
    (out / "logs").mkdir(exist_ok=True)
    stamp = datetime.now(UTC).strftime("%Y%m%dT%H%M%SZ")
    results: dict[str, Any] = {
        "started": stamp,
        "command": " ".join(["python -m bench", *(argv if argv is not None else sys.argv[1:])]),
        "config": {k: (str(v) if isinstance(v, Path) else v) for k, v in vars(args).items()},
        "machine": {
            "cpus": os.cpu_count(),
            "python": platform.python_version(),
            # The interpreter's build sets the pace of every process: say which one ran.
            "python_executable": os.path.realpath(getattr(sys, "_base_executable", sys.executable)),
            "loadavg_before": os.getloadavg(),
        },
        "git": _git(),
        "warnings": [],
    }
    began = time.monotonic()
    failure: str | None = None
    try:
        services = Services(args.mysql_url, args.amqp_url, args.redis_url)
        results["warnings"] += services.prepare()
        for warning in results["warnings"]:
            _say(f"warning: {warning}")
        bench = Bench(services, out, _say)
        run_sections(bench, args, results)
        services.reset()  # leave no tickets behind in the shared Redis (results are in the JSON)
    except (BenchSetupError, BenchProcessError) as exc:
        failure = str(exc)
    except KeyboardInterrupt:
        failure = "interrupted"
    except Exception as exc:  # report it, keep what was measured, exit 1
        failure = f"{type(exc).__name__}: {exc}"
        traceback.print_exc()
    results["machine"]["loadavg_after"] = os.getloadavg()
    results["elapsed_s"] = round(time.monotonic() - began, 1)
    results["failure"] = failure
    json_path = out / f"bench-{stamp}.json"
    report.write_json(results, json_path)
    report.write_json(results, out / "latest.json")
    png = out / f"bench-{stamp}.png"
    why_not = report.chart(results, png)
    charted = why_not is None
    if charted:
        (out / "latest.png").write_bytes(png.read_bytes())
    print()
    print(report.table(results))
    print()
    print(
        f"load average before/after: {results['machine']['loadavg_before'][0]:.2f} / "
        f"{results['machine']['loadavg_after'][0]:.2f} on {os.cpu_count()} CPUs; "
        f"took {results['elapsed_s']:.0f}s; python {results['machine']['python']} "
        f"({results['machine']['python_executable']})"
    )
    print(f"wrote {json_path}" + (f" and {png}" if charted else f" (no chart: {why_not})"))
    system_errors = count_system_errors(results)
    if failure:
        print(f"error: {failure}", file=sys.stderr)
        sys.exit(1)
    if system_errors:
        print(
            f"error: the system failed {system_errors} request(s) or decision(s)", file=sys.stderr
        )
        sys.exit(1)


def count_system_errors(results: dict[str, Any]) -> int:
    """Failures of the system (never of a timing target): error answers, lost or undecided
    tickets, non-200 polls of our server, no-op messages left unacknowledged."""
    e2e = results.get("e2e", {})
    runs = [r for group in e2e.get("by_clients", {}).values() for r in group]
    runs += e2e.get("half_rate", {}).get("runs", [])
    runs += results.get("scale", {}).get("runs", [])
    errors = sum(r["errors"] for r in runs)
    for entry in results.get("poll", {}).get("runs", []):
        errors += sum(entry[f"ours_c{c}"]["errors"] for c in (1, 16))
    for entry in results.get("overhead", {}).get("runs", []):
        errors += entry["runtime"].get("left_in_queue") or 0
    return errors


def run_sections(bench: Bench, args: argparse.Namespace, results: dict[str, Any]) -> None:
    if "ceiling" in args.only:
        _say("load generator ceiling (trivial asyncio server answering at once)")
        results["ceiling"] = scenarios.ceiling(bench, 1.5 if args.quick else 3.0)
    if "e2e" in args.only or "poll" in args.only:
        runtime = bench.runtime()
        results["runtime_pid"] = runtime.pid
        try:
            scenarios.warm_up(bench, runtime)
            if "e2e" in args.only:
                results["e2e"] = end_to_end(bench, runtime, args)
            if "poll" in args.only:
                _say(f"poll path: {args.poll_seconds:g}s per measurement, {args.runs} run(s)")
                results["poll"] = scenarios.poll(
                    bench, runtime, args.poll_seconds, args.runs, tickets=200 if args.quick else 500
                )
        finally:
            code = runtime.stop()
            results["runtime_exit_code"] = code
    if "overhead" in args.only:
        _say(f"runtime overhead: {args.overhead_messages:,} messages, {args.runs} run(s)")
        results["overhead"] = scenarios.overhead(
            bench, args.overhead_messages, args.runs, args.latency_samples
        )
    if args.scale:
        _say(f"scale: {', '.join(f'{s:,}' for s in args.scale_sizes)} tickets at 16 clients")
        results["scale"] = scale = scenarios.scale(bench, args.scale_sizes, 16)
        by_size = {run["tickets"]: run for run in scale["runs"]}
        if 10_000 in by_size and 100_000 in by_size:
            small, large = by_size[10_000], by_size[100_000]
            scale["flatness"] = {
                "rss_ratio": round(
                    max(large["memory"]["peak_mb"].values())
                    / max(small["memory"]["peak_mb"].values()),
                    3,
                ),
                "throughput_ratio": round(large["decided_per_s"] / small["decided_per_s"], 3),
            }


def end_to_end(
    bench: Bench, runtime: scenarios.Runtime, args: argparse.Namespace
) -> dict[str, Any]:
    _say(
        f"end to end: {args.tickets:,} tickets (1 client: {args.tickets_c1:,}) "
        f"x clients {args.clients} x {args.runs} run(s)"
    )
    by_clients: dict[str, list[dict[str, Any]]] = {str(c): [] for c in args.clients}
    for index in range(args.runs):
        for clients in args.clients:
            tickets = args.tickets_c1 if clients == 1 else args.tickets
            run = scenarios.e2e_run(bench, runtime, tickets, clients)
            run["run"] = index + 1
            by_clients[str(clients)].append(run)
            _say(f"  run {index + 1}: {scenarios.describe_e2e(run)}")
    out: dict[str, Any] = {"by_clients": by_clients}
    if args.half_rate:
        base_clients = (
            16
            if 16 in args.clients
            else max(
                args.clients,
                key=lambda c: median(r["decided_per_s"] for r in by_clients[str(c)]) or 0,
            )
        )
        top = median(r["decided_per_s"] for r in by_clients[str(base_clients)]) or 0
        rate = top / 2
        if rate > 0:
            _say(
                f"end to end at half the maximum rate: {rate:,.0f} tickets/s offered by 16 clients"
            )
            runs = []
            for index in range(args.runs):
                run = scenarios.e2e_run(bench, runtime, args.tickets_half, 16, rate=rate)
                run["run"] = index + 1
                runs.append(run)
                _say(f"  run {index + 1}: {scenarios.describe_e2e(run)}")
            out["half_rate"] = {
                "rate": rate,
                "clients": 16,
                "of_clients": base_clients,
                "runs": runs,
            }
    return out
