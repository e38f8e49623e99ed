"""The measurements: load-generator ceiling, end to end, poll path, runtime overhead, scale."""

from __future__ import annotations

import json
import os
import re
import time
import uuid
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pika

from bench import loadgen
from bench.procs import ChaliceLocal, CpuMeter, MemorySampler, Runtime, TrivialServer
from bench.services import RULE_QUEUES, Services
from bench.stats import bucket_for, latency_series, machine_speed, rate_series, summary_ms
from credit import topology

HOST = "127.0.0.1"
RULES = 2  # age and value: every ticket ends with two rule results


@dataclass
class Bench:
    """What every scenario needs: the services, where to write, how to print progress."""

    services: Services
    out: Path
    say: Callable[[str], None]

    def log(self, name: str) -> Path:
        return self.out / "logs" / name

    def runtime(self, **kwargs: Any) -> Runtime:
        runtime = Runtime.create(
            self.services.env(), self.log(kwargs.pop("log", "runtime.log")), **kwargs
        )
        runtime.start()
        return runtime


# --- requests ---------------------------------------------------------------------------------


def credit_body(index: int) -> bytes:
    """A deterministic mix: about 1 in 10 too young, about 1 in 10 asking too much."""
    age = 17 if index % 10 == 3 else 18 + index % 50
    value = 1000 + (index * 7919) % 110_000
    return b'{"age":%d,"value":%d}' % (age, value)


def post_builder() -> Callable[[int], bytes]:
    return lambda index: loadgen.post(HOST, "/credit-request", credit_body(index))


def get_builder(tickets: list[str]) -> Callable[[int], bytes]:
    requests = [loadgen.get(HOST, f"/credit-validation?ticket={t}") for t in tickets]
    return lambda index: requests[index % len(requests)]


# --- runtime logs -----------------------------------------------------------------------------

REPORT = re.compile(r"^\[(?P<fn>[^\]]+)\] REPORT RequestId: \S+\tDuration: (?P<ms>[\d.]+) ms", re.M)


def invocation_report(log: Path, offset: int) -> dict[str, Any]:
    """Invocations and handler durations per function, from REPORT lines after offset."""
    text = log.read_bytes()[offset:].decode(errors="replace")
    durations: dict[str, list[float]] = {}
    for match in REPORT.finditer(text):
        durations.setdefault(match["fn"], []).append(float(match["ms"]) / 1000)
    return {
        fn: {"invocations": len(v), "duration_ms": summary_ms(v), "busy_s": round(sum(v), 2)}
        for fn, v in sorted(durations.items())
    }


def log_size(path: Path) -> int:
    return path.stat().st_size if path.exists() else 0


# --- load generator ceiling -------------------------------------------------------------------


def ceiling(bench: Bench, seconds: float) -> dict[str, Any]:
    """The client against a server that answers at once: what the load generator can reach."""
    server = TrivialServer.create(bench.log("trivial-server.log"))
    server.start()
    try:
        out: dict[str, Any] = {}
        for conns in (1, 16, 64):
            result = loadgen.run(
                HOST, server.port, post_builder(), conns, duration=seconds, warmup=0.3
            )
            out[f"c{conns}"] = {
                "rps": round(result.rate_in_window()),
                "errors": result.count - result.ok(202),
                "latency_ms": summary_ms(result.latency),
            }
            bench.say(f"  load generator ceiling @{conns} conns: {out[f'c{conns}']['rps']:,} req/s")
        return out
    finally:
        server.stop(5)


# --- end to end -------------------------------------------------------------------------------


def e2e_run(
    bench: Bench,
    runtime: Runtime,
    tickets: int,
    clients: int,
    rate: float | None = None,
    stall_timeout: float = 30.0,
    sampler: MemorySampler | None = None,
) -> dict[str, Any]:
    """Post `tickets` requests with `clients` connections; wait for every decision in MySQL."""
    services = bench.services
    services.reset()
    loadavg = os.getloadavg()
    speed = machine_speed()
    offset = log_size(runtime.log_path)
    cpu = CpuMeter(runtime)
    cpu.start()
    result = loadgen.run(
        HOST, runtime.port, post_builder(), clients, total=tickets, rate=rate, keep_bodies=True
    )
    posted = time.time()
    accepted: list[str] = []
    statuses: Counter[str] = Counter()
    for status, body in zip(result.status, result.bodies, strict=True):
        if status == 202:
            accepted.append(json.loads(body)["ticket"])
        else:
            statuses[str(status) if status else "transport"] += 1
    counts = services.wait_decided(len(accepted), RULES, stall_timeout=stall_timeout)
    waited = time.time() - posted
    cpu_used = cpu.stop()
    runtime.check_alive()
    rows = services.tickets()
    stored = {row[0] for row in rows}
    missing = sum(1 for t in accepted if t not in stored)
    decided = [(t, s, c, d) for t, s, c, d in rows if d is not None]
    last_decision = max((row[3] for row in decided), default=result.finished)
    span = max(last_decision - result.started, 1e-9)
    post_ok = [lat for lat, s in zip(result.latency, result.status, strict=True) if s == 202]
    post_reused = [
        lat
        for lat, s, fresh in zip(result.latency, result.status, result.fresh, strict=True)
        if s == 202 and not fresh
    ]
    post_fresh = [
        lat
        for lat, s, fresh in zip(result.latency, result.status, result.fresh, strict=True)
        if s == 202 and fresh
    ]
    decision = [row[3] - row[2] for row in decided]
    depths = services.queue_depths([*RULE_QUEUES, *(f"{q}.dlq" for q in RULE_QUEUES)])
    undecided = len(accepted) - len(decided)
    errors = sum(statuses.values()) + missing + max(0, undecided)
    bucket = bucket_for(span)
    origin = result.started
    return {
        "tickets": tickets,
        "clients": clients,
        "offered_rate": rate,
        "loadavg_1m_before": round(loadavg[0], 2),
        "machine_speed": speed,
        "accepted": len(accepted),
        "decided": len(decided),
        "durable": {
            **counts,
            "missing_accepted": missing,
            "undecided": undecided,
            "queues_after": depths,
        },
        "errors": errors,
        "error_kinds": dict(statuses) | {k: v for k, v in result.errors.items()},
        "decided_per_s": round(len(decided) / span, 1),
        "posted_per_s": round(len(accepted) / max(result.finished - result.started, 1e-9), 1),
        "span_s": round(span, 3),
        "drain_after_last_post_s": round(max(0.0, last_decision - result.finished), 3),
        "waited_s": round(waited, 2),
        "post_latency_ms": summary_ms(post_ok),
        "post_latency_reused_conn_ms": summary_ms(post_reused),
        "post_latency_first_on_conn_ms": summary_ms(post_fresh),
        "decision_latency_ms": summary_ms(decision),
        "outcomes": dict(Counter(row[1] for row in rows)),
        "invocations": invocation_report(runtime.log_path, offset),
        "connections_opened": result.connections_opened,
        "cpu": cpu_used,
        "cpu_ms_per_ticket": {
            k: round(v * 1000 / max(1, len(decided)), 2) for k, v in cpu_used["cpu_s"].items()
        },
        "timeline": {
            "bucket_s": bucket,
            "posted_per_s": rate_series(
                (s + lat for s, lat in zip(result.sent, result.latency, strict=True)),
                origin,
                bucket,
            ),
            "decided_per_s": rate_series((row[3] for row in decided), origin, bucket),
            "post_latency_ms": latency_series(
                zip(result.sent, result.latency, strict=True), origin, bucket
            ),
            "decision_latency_ms": latency_series(
                ((row[2], row[3] - row[2]) for row in decided), origin, bucket
            ),
        },
    }


def describe_e2e(run: dict[str, Any]) -> str:
    post, decision = run["post_latency_ms"], run["decision_latency_ms"]
    rate = f" offered {run['offered_rate']:.0f}/s" if run["offered_rate"] else ""
    return (
        f"{run['tickets']:,} tickets c={run['clients']}{rate}: "
        f"{run['decided_per_s']:,.0f} decided/s, "
        f"POST p50 {post['p50']} ms p99 {post['p99']} ms, decision p50 {decision['p50']} ms "
        f"p99 {decision['p99']} ms, errors {run['errors']}"
    )


def warm_up(bench: Bench, runtime: Runtime, tickets: int = 300) -> None:
    """Cold starts, connection set-up and first imports, outside any measured run."""
    e2e_run(bench, runtime, tickets, 16, stall_timeout=20)


# --- poll path --------------------------------------------------------------------------------


def poll(
    bench: Bench, runtime: Runtime, seconds: float, runs: int, tickets: int = 500
) -> dict[str, Any]:
    """GET /credit-validation on decided tickets, ours and stock `chalice local`, interleaved."""
    services = bench.services
    seed = e2e_run(bench, runtime, tickets, 16)
    ids = [row[0] for row in services.tickets() if row[3] is not None]
    if not ids:
        raise RuntimeError("no decided ticket to poll")
    chalice = ChaliceLocal.create(services.env(), bench.log("chalice-local.log"))
    out: dict[str, Any] = {
        "tickets": len(ids),
        "seed_errors": seed["errors"],
        "note": chalice.note,
        "runs": [],
    }
    chalice.start()
    try:
        same = _same_answer(runtime.port, chalice.port, ids[0])
        out["same_answer"] = same
        build = get_builder(ids)
        for index in range(runs):
            entry: dict[str, Any] = {}
            for conns in (1, 16):
                for name, port in (("ours", runtime.port), ("chalice_local", chalice.port)):
                    result = loadgen.run(HOST, port, build, conns, duration=seconds, warmup=0.5)
                    entry[f"{name}_c{conns}"] = {
                        "rps": round(result.rate_in_window(), 1),
                        "errors": result.count - result.ok(200),
                        "latency_ms": summary_ms(result.latency),
                        "connections_opened": result.connections_opened,
                    }
                ours, ref = entry[f"ours_c{conns}"]["rps"], entry[f"chalice_local_c{conns}"]["rps"]
                entry[f"ratio_c{conns}"] = round(ours / ref, 1) if ref else None
                bench.say(
                    f"  poll run {index + 1} @{conns} conn(s): ours {ours:,.0f} req/s, "
                    f"chalice local {ref:,.1f} req/s, ratio {entry[f'ratio_c{conns}']}x"
                )
            out["runs"].append(entry)
    finally:
        chalice.stop()
    return out


def _same_answer(ours: int, theirs: int, ticket: str) -> bool:
    import urllib.request

    def fetch(port: int) -> dict[str, Any]:
        url = f"http://{HOST}:{port}/credit-validation?ticket={ticket}"
        with urllib.request.urlopen(url, timeout=10) as response:
            return json.loads(response.read())

    return fetch(ours) == fetch(theirs)


# --- runtime overhead -------------------------------------------------------------------------

NOOP_EXCHANGE = "bench.noop"
NOOP_BROKER = "arn:aws:mq:us-east-1:000000000000:broker:bench:b-bench"
NOOP_FUNCTIONS = {
    # name: (queue, routing key, batching window)
    "noop": ("bench.noop", "noop", 0.5),
    "noop_w0": ("bench.noop.w0", "noop-w0", 0.0),
}
NOOP_HANDLER = '''"""No-op handler for the runtime-overhead bench: notes when each batch starts."""
import os
import time

_STAMPS = open(os.environ["BENCH_STAMP_FILE"], "a", buffering=1)


def handler(event, context):
    started = time.time()
    count = sum(len(messages) for messages in event["rmqMessagesByQueue"].values())
    _STAMPS.write(f"{started:.6f} {count}\\n")
'''


def write_noop_functions(root: Path) -> dict[str, Path]:
    """A template (root/template.yaml) with the no-op functions; returns each one's stamp
    file. Plain CloudFormation: a function and an Amazon MQ event source mapping each."""
    stamps = {}
    resources: dict[str, Any] = {}
    for name, (queue, _key, window) in NOOP_FUNCTIONS.items():
        folder = root / "functions" / name
        folder.mkdir(parents=True, exist_ok=True)
        stamp = root / f"{name}.stamps"
        stamp.write_text("")
        stamps[name] = stamp
        (folder / "handler.py").write_text(NOOP_HANDLER)
        logical_id = name.title().replace("_", "")
        resources[logical_id] = {
            "Type": "AWS::Lambda::Function",
            "Properties": {
                "FunctionName": name,
                "Code": str(folder),
                "Handler": "handler.handler",
                "Runtime": "python3.11",
                "Timeout": 30,
                "MemorySize": 128,
                "Environment": {"Variables": {"BENCH_STAMP_FILE": str(stamp)}},
            },
        }
        mapping: dict[str, Any] = {
            "FunctionName": {"Ref": logical_id},
            "EventSourceArn": NOOP_BROKER,
            "Queues": [queue],
            "BatchSize": 100,
        }
        if window != 0.5:  # AWS's default for Amazon MQ when the field is left out
            mapping["MaximumBatchingWindowInSeconds"] = int(window)
        resources[f"{logical_id}Queue"] = {
            "Type": "AWS::Lambda::EventSourceMapping",
            "Properties": mapping,
        }
    (root / "template.yaml").write_text(json.dumps({"Resources": resources}, indent=2))
    return stamps


def _properties() -> pika.BasicProperties:
    return pika.BasicProperties(
        content_type="application/json",
        delivery_mode=2,
        message_id=str(uuid.uuid4()),
        timestamp=int(time.time()),
        app_id="bench",
    )


def preload(services: Services, queue: str, key: str, count: int, wait: bool = True) -> float:
    """Fill `queue` with `count` rule-sized messages; returns seconds taken."""
    began = time.perf_counter()
    connection = services.amqp()
    try:
        channel = connection.channel()
        topology.declare(
            channel, [topology.RuleQueue(name=queue, routing_key=key, exchange=NOOP_EXCHANGE)]
        )  # the credit app's queue shape: quorum, delivery limit, dead-lettering
        channel.queue_purge(queue)
        ticket = str(uuid.uuid4())
        body = json.dumps({"ticket": ticket, "age": 20}, separators=(",", ":")).encode()
        properties = _properties()
        for _ in range(count):
            channel.basic_publish(NOOP_EXCHANGE, key, body, properties)
        deadline = time.monotonic() + (120 if wait else 0)
        while time.monotonic() < deadline:
            if channel.queue_declare(queue, passive=True).method.message_count >= count:
                break
            time.sleep(0.05)
    finally:
        connection.close()
    return time.perf_counter() - began


def bare_pika(
    services: Services, queue: str, count: int, prefetch: int = 200, ack_every: int = 100
) -> dict[str, Any]:
    """The floor: a plain pika consumer with the runtime's prefetch and batch acks."""
    connection = services.amqp()
    state = {"n": 0, "first": 0.0}
    try:
        channel = connection.channel()
        channel.basic_qos(prefetch_count=prefetch)

        def on_message(ch: Any, method: Any, _props: Any, _body: bytes) -> None:
            if not state["n"]:
                state["first"] = time.time()
            state["n"] += 1
            if state["n"] % ack_every == 0 or state["n"] >= count:
                ch.basic_ack(method.delivery_tag, multiple=True)
            if state["n"] >= count:
                ch.stop_consuming()

        channel.basic_consume(queue, on_message)
        channel.start_consuming()
        ended = time.time()
    finally:
        connection.close()
    return {
        "messages": state["n"],
        "msgs_per_s": round((state["n"] - 1) / (ended - state["first"]), 1),
    }


def _stamps(path: Path) -> list[tuple[float, int]]:
    out = []
    for line in path.read_text().splitlines():
        started, count = line.split()
        out.append((float(started), int(count)))
    return out


def runtime_drain(
    bench: Bench,
    template: Path,
    stamp: Path,
    count: int,
    latency_samples: int,
    stamps: dict[str, Path],
) -> dict[str, Any]:
    """Start the runtime on a preloaded queue; time from its first to its last batch."""
    stamp.write_text("")
    runtime = bench.runtime(
        template=template,
        api=False,
        consumers=len(NOOP_FUNCTIONS),
        log="runtime-noop.log",
        # side by side with a bare consumer at normal priority, so the runtime runs at it too
        background_nice=0,
    )
    try:
        deadline = time.monotonic() + max(60.0, count / 200)
        seen: list[tuple[float, int]] = []
        while time.monotonic() < deadline:
            runtime.check_alive()
            seen = _stamps(stamp)
            if sum(n for _, n in seen) >= count:
                break
            time.sleep(0.05)
        handled = sum(n for _, n in seen)
        first, last = seen[0][0], seen[-1][0]
        out: dict[str, Any] = {
            "messages": handled,
            "batches": len(seen),
            "msgs_per_s": round((handled - seen[-1][1]) / (last - first), 1)
            if last > first
            else None,
        }
        if latency_samples:
            out["latency"] = {
                name: single_message_latency(bench.services, name, stamps[name], latency_samples)
                for name in NOOP_FUNCTIONS
            }
    finally:
        code = runtime.stop()
    out["exit_code"] = code
    out["left_in_queue"] = bench.services.queue_depths([NOOP_FUNCTIONS["noop"][0]])[
        NOOP_FUNCTIONS["noop"][0]
    ]
    return out


def single_message_latency(
    services: Services, name: str, stamp: Path, samples: int
) -> dict[str, Any]:
    """Publish one message, wait for the handler to start; `samples` times, after a first
    message whose latency includes the worker's cold start (reported apart)."""
    _, key, window = NOOP_FUNCTIONS[name]
    connection = services.amqp()
    latencies: list[float] = []
    try:
        channel = connection.channel()
        for _ in range(samples + 1):
            before = len(_stamps(stamp))
            published = time.time()
            channel.basic_publish(NOOP_EXCHANGE, key, b'{"ticket":"x","age":20}', _properties())
            deadline = time.monotonic() + 10
            while time.monotonic() < deadline:
                seen = _stamps(stamp)
                if len(seen) > before:
                    latencies.append(seen[-1][0] - published)
                    break
                time.sleep(0.001)
            time.sleep(0.05)
    finally:
        connection.close()
    return {
        "batching_window_s": window,
        "first_message_ms": round(latencies[0] * 1000, 2) if latencies else None,
        "latency_ms": summary_ms(latencies[1:]),
    }


def overhead(bench: Bench, messages: int, runs: int, latency_samples: int) -> dict[str, Any]:
    """No-op runtime against bare pika, alternating, same queue and message count."""
    root = bench.out / "noop"
    stamps = write_noop_functions(root)
    queue, key, _ = NOOP_FUNCTIONS["noop"]
    for other_queue, other_key, _ in NOOP_FUNCTIONS.values():  # every mapping's queue exists
        preload(bench.services, other_queue, other_key, 0, wait=False)
    out: dict[str, Any] = {"messages": messages, "runs": []}
    for index in range(runs):
        preload(bench.services, queue, key, messages)
        pika_run = bare_pika(bench.services, queue, messages)
        preload(bench.services, queue, key, messages)
        samples = latency_samples if index == runs - 1 else 0
        runtime_run = runtime_drain(
            bench, root / "template.yaml", stamps["noop"], messages, samples, stamps
        )
        ratio = (runtime_run["msgs_per_s"] or 0) / pika_run["msgs_per_s"]
        out["runs"].append(
            {"bare_pika": pika_run, "runtime": runtime_run, "ratio": round(ratio, 3)}
        )
        bench.say(
            f"  overhead run {index + 1}: runtime {runtime_run['msgs_per_s']:,} msg/s, bare pika "
            f"{pika_run['msgs_per_s']:,} msg/s, ratio {ratio:.0%}"
        )
        if "latency" in runtime_run:
            for name, item in runtime_run["latency"].items():
                lat = item["latency_ms"]
                bench.say(
                    f"  publish-to-handler-start ({name}, window {item['batching_window_s']}s): "
                    f"p50 {lat['p50']} ms, max {lat['max']} ms over {lat['n']} warm messages; "
                    f"first message (worker cold start) {item.get('first_message_ms')} ms"
                )
    bench.services.purge([q for q, _, _ in NOOP_FUNCTIONS.values()])
    return out


# --- scale ------------------------------------------------------------------------------------


def scale(bench: Bench, sizes: list[int], clients: int) -> dict[str, Any]:
    """A fresh system per size, so each peak (VmHWM) belongs to that size alone."""
    out: dict[str, Any] = {"clients": clients, "runs": []}
    for size in sizes:
        runtime = bench.runtime(log=f"runtime-scale-{size}.log")
        sampler = MemorySampler(runtime)
        try:
            warm_up(bench, runtime)
            sampler.start()
            run = e2e_run(bench, runtime, size, clients, stall_timeout=60)
        finally:
            memory = sampler.stop()
            runtime.stop()
        origin = min((s[0][0] for s in sampler.samples.values() if s), default=0.0)
        run["memory"] = memory
        run["memory_timeline"] = {
            k: [(round(t - origin, 2), round(mb, 1)) for t, mb in v]
            for k, v in sampler.samples.items()
        }
        out["runs"].append(run)
        peaks = ", ".join(
            f"{k.split(':')[0] if k == 'runtime' else ':'.join(k.split(':')[:2])} {v} MB"
            for k, v in memory["peak_mb"].items()
        )
        bench.say(f"  scale {describe_e2e(run)}; peak RSS {peaks}")
    return out
