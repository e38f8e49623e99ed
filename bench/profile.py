"""Profile the end-to-end path with py-spy: `python -m bench.profile [--tickets N]`.

Starts the system like `python -m bench` does, warms it up, then runs the end-to-end load
three times while py-spy samples the runtime process and its worker processes:

1. GIL samples (`--gil`: only the thread holding the GIL, raw collapsed stacks) -> what the
   Python code of each process spends its CPU on; in a process bound by one GIL this is the
   budget every ticket competes for;
2. wall-clock samples (`--idle`) -> where a request thread or a worker waits (MySQL, broker);
3. the GIL samples again as a flamegraph SVG for people.

Prints the top functions per process and path, as % of that path's samples, and writes
profile-*.txt (collapsed stacks, readable by any flamegraph tool), profile-*.svg and
profile-summary.json into --out.
"""

from __future__ import annotations

import argparse
import json
import re
import shutil
import signal
import subprocess
import sys
import time
from collections import Counter
from pathlib import Path
from typing import Any

from bench import loadgen, scenarios
from bench.procs import REPO, Runtime
from bench.scenarios import Bench
from bench.services import DEFAULT_AMQP_URL, DEFAULT_MYSQL_URL, DEFAULT_REDIS_URL, Services

FRAME = re.compile(r"^(?P<func>.*) \((?P<file>[^()]*?)(?::\d+)?\)$")
PATHS = (
    # (name, a frame marker that puts a stack in this path), first match wins
    ("api request", ".respond (local_runtime/gateway.py)"),
    ("api connection idle/parse", "process_request_thread (socketserver.py)"),
    ("api accept loop", "serve_forever (socketserver.py)"),
    ("outbox relay", "_relay_loop (local_runtime/supervisor.py)"),
    ("mapping invoke thread", "._invoke (local_runtime/mapping.py)"),
    ("mapping idle pool thread", "_worker (concurrent/futures/thread.py)"),
    ("mapping consumer loop", ".run (local_runtime/mapping.py)"),
    ("worker log forwarding", "_WorkerOutput.forward (local_runtime/environment.py)"),
    ("handler", "handler (handler.py)"),
    ("worker loop", "serve (local_runtime/worker.py)"),
)


def _frame(raw: str) -> str:
    match = FRAME.match(raw.strip())
    if not match:
        return raw.strip()
    return f"{match['func']} ({match['file']})"


def parse(path: Path) -> list[tuple[int, list[str], int]]:
    """py-spy raw output -> (pid, frames root-first without process/thread, count)."""
    stacks = []
    for line in path.read_text(errors="replace").splitlines():
        if not line.strip():
            continue
        stack, _, count = line.rpartition(" ")
        frames = stack.split(";")
        pid = 0
        rest = []
        for frame in frames:
            found = re.match(r"process (\d+):", frame)
            if found:
                pid = int(found.group(1))
            elif frame.startswith("thread (") or frame.startswith("thread 0x"):
                continue
            else:
                rest.append(_frame(frame))
        stacks.append((pid, rest, int(count)))
    return stacks


def classify(frames: list[str]) -> str:
    for name, marker in PATHS:
        if any(frame.endswith(marker) for frame in frames):
            return name
    return "other"


def summarize(
    stacks: list[tuple[int, list[str], int]], names: dict[int, str], top: int = 12
) -> dict[str, Any]:
    """Per process and path: samples, share, top functions by inclusive and by self samples."""
    groups: dict[tuple[str, str], list[tuple[list[str], int]]] = {}
    for pid, frames, count in stacks:
        process = names.get(pid, f"pid {pid}")
        groups.setdefault((process, classify(frames)), []).append((frames, count))
    total = sum(count for _, _, count in stacks) or 1
    out: dict[str, Any] = {}
    for (process, path), items in sorted(groups.items(), key=lambda kv: -sum(c for _, c in kv[1])):
        samples = sum(count for _, count in items)
        inclusive: Counter[str] = Counter()
        leaf: Counter[str] = Counter()
        for frames, count in items:
            for frame in set(frames):
                inclusive[frame] += count
            if frames:
                leaf[frames[-1]] += count
        out[f"{process} / {path}"] = {
            "samples": samples,
            "share_of_all": round(samples / total, 4),
            # frames in (nearly) every stack of the path are wrappers: they say nothing
            "inclusive": [
                (f, round(c / samples, 4))
                for f, c in inclusive.most_common(top * 6)
                if not _boring(f) and c / samples < 0.97
            ][:top],
            "self": [(f, round(c / samples, 4)) for f, c in leaf.most_common(top)],
        }
    return out


def _boring(frame: str) -> bool:
    return any(
        s in frame
        for s in (
            "<module>",
            "_bootstrap",
            "run (threading.py)",
            "_run_module",
            "main (local_runtime",
            "<lambda>",
            "_worker (concurrent",
        )
    )


def show(title: str, summary: dict[str, Any], min_share: float = 0.02) -> str:
    lines = [f"== {title}"]
    for key, item in summary.items():
        if item["share_of_all"] < min_share:
            continue
        lines.append(f"-- {key}: {item['samples']} samples, {item['share_of_all']:.0%} of all")
        lines.append(
            "   inclusive: " + "; ".join(f"{f} {s:.0%}" for f, s in item["inclusive"][:10])
        )
        lines.append("   self:      " + "; ".join(f"{f} {s:.0%}" for f, s in item["self"][:8]))
    return "\n".join(lines)


def profile_noop(bench: Bench, messages: int, rate: int) -> dict[str, Any]:
    """The runtime alone with a no-op handler: what each message costs the runtime itself."""
    root = bench.out / "noop-profile"
    stamps = scenarios.write_noop_functions(root)
    queue, key, _ = scenarios.NOOP_FUNCTIONS["noop"]
    for other_queue, other_key, _ in scenarios.NOOP_FUNCTIONS.values():
        scenarios.preload(bench.services, other_queue, other_key, 0)
    runtime = bench.runtime(
        template=root / "template.yaml",
        api=False,
        consumers=len(scenarios.NOOP_FUNCTIONS),
        log="runtime-noop-profile.log",
    )
    output = bench.out / "profile-noop-gil.txt"
    spy = _spy(runtime, output, "raw", "gil", rate, bench.out)
    try:
        time.sleep(1.0)
        scenarios.preload(bench.services, queue, key, messages, wait=False)
        deadline = time.monotonic() + 120
        while (
            time.monotonic() < deadline
            and sum(n for _, n in scenarios._stamps(stamps["noop"])) < messages
        ):
            time.sleep(0.1)
    finally:
        _stop_spy(spy)
        names = {
            runtime.pid: "runtime",
            **{pid: f"worker {fn}" for pid, fn in runtime.worker_pids().items()},
        }
        runtime.stop()
    seen = scenarios._stamps(stamps["noop"])
    result = summarize(parse(output), names)
    print(
        show(
            f"no-op runtime, {messages:,} messages published while it consumes (GIL holder)", result
        )
    )
    return {"messages": sum(n for _, n in seen), "batches": len(seen), "summary": result}


def _spy(
    runtime: Runtime, output: Path, fmt: str, mode: str, rate: int, out: Path
) -> subprocess.Popen[bytes]:
    spy = shutil.which("py-spy", path=str(Path(sys.executable).parent)) or shutil.which("py-spy")
    if spy is None:
        raise SystemExit("py-spy is not installed: pip install py-spy")
    argv = [
        spy,
        "record",
        "--pid",
        str(runtime.pid),
        "--subprocesses",
        "--threads",
        "--nonblocking",
        "--rate",
        str(rate),
        "--format",
        fmt,
        "--output",
        str(output),
        "--idle" if mode == "wall" else "--gil",
    ]
    log = (out / "logs" / f"{output.stem}.py-spy.log").open("w")
    return subprocess.Popen(argv, stdout=log, stderr=subprocess.STDOUT)


def _stop_spy(process: subprocess.Popen[bytes]) -> None:
    process.send_signal(signal.SIGINT)
    try:
        process.wait(60)
    except subprocess.TimeoutExpired:
        process.kill()


def record(
    bench: Bench,
    runtime: Runtime,
    output: Path,
    fmt: str,
    mode: str,
    tickets: int,
    clients: int,
    rate: int,
    poll_tickets: list[str] | None = None,
    poll_seconds: float = 10.0,
) -> dict[str, Any]:
    spy_process = _spy(runtime, output, fmt, mode, rate, bench.out)
    time.sleep(1.0)
    try:
        if poll_tickets:
            result = loadgen.run(
                scenarios.HOST,
                runtime.port,
                scenarios.get_builder(poll_tickets),
                clients,
                duration=poll_seconds,
            )
            run = {
                "poll_rps": round(result.rate_in_window()),
                "errors": result.count - result.ok(200),
            }
        else:
            run = scenarios.e2e_run(bench, runtime, tickets, clients)
    finally:
        _stop_spy(spy_process)
    what = f"{run['poll_rps']:,} GET/s" if poll_tickets else scenarios.describe_e2e(run)
    bench.say(f"  profiled ({output.name}): {what}")
    return run


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(
        prog="python -m bench.profile", description=__doc__.split("\n")[0]
    )
    parser.add_argument("--tickets", type=int, default=5000)
    parser.add_argument("--clients", type=int, default=16)
    parser.add_argument("--rate", type=int, default=100, help="py-spy samples per second")
    parser.add_argument("--out", type=Path, default=REPO / "bench-results")
    parser.add_argument("--mysql-url", default=DEFAULT_MYSQL_URL)
    parser.add_argument("--amqp-url", default=DEFAULT_AMQP_URL)
    parser.add_argument("--redis-url", default=DEFAULT_REDIS_URL)
    parser.add_argument(
        "--noop-messages",
        type=int,
        default=20_000,
        help="messages for the no-op runtime profile (0 skips it)",
    )
    parser.add_argument(
        "--analyze", action="store_true", help="only summarize profile-*.txt already in --out"
    )
    args = parser.parse_args(argv)
    if args.analyze:
        analyze(args.out)
        return
    args.out = args.out.resolve()  # workers run in their function folders: no relative paths
    args.out.mkdir(parents=True, exist_ok=True)
    (args.out / "logs").mkdir(exist_ok=True)
    services = Services(args.mysql_url, args.amqp_url, args.redis_url)
    services.prepare()
    bench = Bench(services, args.out, lambda text: print(text, flush=True))
    runtime = bench.runtime(log="runtime-profile.log")
    summary: dict[str, Any] = {"tickets": args.tickets, "clients": args.clients, "runs": {}}
    try:
        scenarios.warm_up(bench, runtime)
        names = {
            runtime.pid: "runtime",
            **{pid: f"worker {fn}" for pid, fn in runtime.worker_pids().items()},
        }
        summary["processes"] = {str(k): v for k, v in names.items()}
        for mode, fmt in (("gil", "raw"), ("wall", "raw"), ("gil", "flamegraph")):
            suffix = "svg" if fmt == "flamegraph" else "txt"
            output = args.out / f"profile-{mode}.{suffix}"
            run = record(bench, runtime, output, fmt, mode, args.tickets, args.clients, args.rate)
            summary["runs"][output.name] = {
                k: run[k]
                for k in (
                    "decided_per_s",
                    "post_latency_ms",
                    "decision_latency_ms",
                    "errors",
                    "invocations",
                )
            }
            if fmt == "raw" and output.exists():
                result = summarize(parse(output), names)
                summary[mode] = result
                print(
                    show(
                        f"{mode} samples "
                        f"({'GIL holder' if mode == 'gil' else 'wall clock, idle included'})",
                        result,
                    )
                )
        # the poll path: GET /credit-validation on the decided tickets of the last run
        ids = [row[0] for row in services.tickets() if row[3] is not None][:2000]
        output = args.out / "profile-poll-gil.txt"
        run = record(
            bench, runtime, output, "raw", "gil", 0, args.clients, args.rate, poll_tickets=ids
        )
        summary["runs"][output.name] = run
        summary["poll-gil"] = result = summarize(parse(output), names)
        print(show("poll path GIL samples", result))
    finally:
        runtime.stop()
    if args.noop_messages:
        summary["noop-gil"] = profile_noop(bench, args.noop_messages, args.rate)["summary"]
    (args.out / "profile-summary.json").write_text(json.dumps(summary, indent=1))
    print(
        f"wrote {args.out}/profile-gil.txt, profile-wall.txt, profile-gil.svg, profile-summary.json"
    )


def analyze(out: Path) -> None:
    summary = json.loads((out / "profile-summary.json").read_text())
    names = {int(k): v for k, v in summary["processes"].items()}
    for mode in ("gil", "wall", "poll-gil", "noop-gil"):
        path = out / f"profile-{mode}.txt"
        if path.exists():
            summary[mode] = result = summarize(parse(path), names)
            print(show(f"{mode} samples", result))
    (out / "profile-summary.json").write_text(json.dumps(summary, indent=1))


if __name__ == "__main__":
    main()
