"""Command line: start the system, list functions, invoke one, generate events, migrate."""

from __future__ import annotations

import argparse
import json
import logging
import os
import sys
from pathlib import Path
from typing import Any

import pika

from local_runtime import declaration, priority
from local_runtime.declaration import DeclarationError, FunctionSpec
from local_runtime.environment import ExecutionEnvironment, InvocationFailed
from local_runtime.events import LOCAL_ACCOUNT, LOCAL_REGION, Delivery, broker_arn, build_event

LOGGER = logging.getLogger("local_runtime")


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="credit-runtime",
        description="Run RabbitMQ-triggered Lambda functions locally, as AWS's Amazon MQ "
        "event source mapping would, plus the Chalice API over HTTP.",
    )
    parser.add_argument(
        "--functions-dir",
        type=Path,
        default=declaration.FUNCTIONS_DIR,
        help="folder holding one folder per function (default: %(default)s)",
    )
    parser.add_argument("-v", "--verbose", action="store_true", help="debug logging")
    commands = parser.add_subparsers(dest="command", required=True)

    start = commands.add_parser("start", help="consume every function's queue and serve the API")
    start.add_argument("functions", nargs="*", help="only these functions (default: all)")
    start.add_argument("--host", default="127.0.0.1")
    start.add_argument("--port", type=int, default=8000)
    start.add_argument("--no-api", action="store_true", help="do not serve the API")
    start.add_argument(
        "--api-only", action="store_true", help="serve only the API, in this process"
    )
    start.add_argument("--parent-pid", type=int, help=argparse.SUPPRESS)
    start.add_argument("--amqp-url", help="broker URL (default: $AMQP_URL)")
    start.add_argument(
        "--background-nice",
        type=int,
        default=priority.BACKGROUND_NICE,
        metavar="N",
        help="run the queue consumers and function workers N nice steps below the API, so "
        "requests come first on a busy machine; 0 runs all alike (default: %(default)s)",
    )

    commands.add_parser("list", help="list functions with their handlers and event sources")

    invoke = commands.add_parser("invoke", help="invoke one function once, like `sam local invoke`")
    invoke.add_argument("function")
    invoke.add_argument("-e", "--event", type=Path, help="event JSON file, '-' for stdin")

    generate = commands.add_parser(
        "generate-event", help="print an aws:rmq event for a message body"
    )
    generate.add_argument("--queue", default="test")
    generate.add_argument("--virtual-host", default="/")
    generate.add_argument(
        "--body",
        default='{"ticket": "00000000-0000-4000-8000-000000000000"}',
        help="message body (text)",
    )
    generate.add_argument("--body-file", type=Path, help="read the body from a file instead")
    generate.add_argument(
        "--header",
        action="append",
        default=[],
        metavar="NAME=VALUE",
        help="message header; integer values stay numbers",
    )
    generate.add_argument("--message-id")
    generate.add_argument("--content-type", default="application/json")
    generate.add_argument("--redelivered", action="store_true")

    commands.add_parser("migrate", help="create the database and apply migrations")

    redrive = commands.add_parser(
        "redrive", help="move a function's dead-lettered messages back to its queue"
    )
    redrive.add_argument("function")
    redrive.add_argument("--limit", type=int, help="at most this many (default: all)")
    redrive.add_argument("--amqp-url", help="broker URL (default: $AMQP_URL)")
    return parser


def main(argv: list[str] | None = None) -> None:
    args = build_parser().parse_args(argv)
    logging.basicConfig(
        level=logging.DEBUG if args.verbose else logging.INFO,
        format="%(asctime)s %(levelname)s %(name)s: %(message)s",
        stream=sys.stderr,
    )
    logging.getLogger("pika").setLevel(logging.WARNING)
    try:
        code = COMMANDS[args.command](args)
    except DeclarationError as exc:
        print(f"error: bad function declaration: {exc}", file=sys.stderr)
        code = 2
    except Exception as exc:  # one clear line instead of a traceback
        from local_runtime.supervisor import StartupError

        if not isinstance(exc, StartupError | OSError):
            raise
        print(f"error: {exc}", file=sys.stderr)
        code = 1
    sys.exit(code)


def _specs(args: argparse.Namespace, names: list[str] | None = None) -> list[FunctionSpec]:
    specs = declaration.discover(args.functions_dir)
    if names:
        known = {spec.name for spec in specs}
        missing = sorted(set(names) - known)
        if missing:
            raise DeclarationError(
                args.functions_dir, "function", f"no function named {', '.join(missing)}"
            )
        specs = [spec for spec in specs if spec.name in names]
    return specs


def cmd_start(args: argparse.Namespace) -> int:
    from credit import settings
    from local_runtime.supervisor import Runtime, prepare, rule_names

    # A ticket requires every declared rule, whichever functions this process runs.
    os.environ.setdefault(settings.RULES, ",".join(rule_names(_specs(args))))
    if args.api_only:
        # The topology and schema are the starting runtime's job (or were done before).
        runtime = Runtime(
            [],
            amqp_url=args.amqp_url,
            relay=False,
            host=args.host,
            port=args.port,
            parent_pid=args.parent_pid,
        )
        runtime.run_until_signalled()
        return 0
    specs = _specs(args, args.functions)
    prepare(specs, amqp_url=args.amqp_url)
    runtime = Runtime(
        specs,
        amqp_url=args.amqp_url,
        api=not args.no_api,
        api_process=True,
        host=args.host,
        port=args.port,
        background_nice=args.background_nice,
    )
    runtime.run_until_signalled()
    LOGGER.info("stopped cleanly")
    return 0


def cmd_list(args: argparse.Namespace) -> int:
    for spec in _specs(args):
        source = spec.event_source
        where = (
            f"{source.queue} <- {source.exchange}[{source.routing_key}] batch={source.batch_size} "
            f"window={source.maximum_batching_window}s concurrency={source.concurrency} "
            f"delivery_limit={source.delivery_limit}"
            if source
            else "(no event source)"
        )
        print(
            f"{spec.name:<16} {spec.handler:<20} timeout={spec.timeout:g}s "
            f"memory={spec.memory_size}MB  {where}"
        )
    return 0


def cmd_invoke(args: argparse.Namespace) -> int:
    spec = _specs(args, [args.function])[0]
    if args.event is None or str(args.event) == "-":
        event: Any = json.load(sys.stdin)
    else:
        event = json.loads(args.event.read_text())
    environment = ExecutionEnvironment(spec, output=sys.stderr)
    try:
        result = environment.invoke(event)
    except InvocationFailed as exc:
        print(json.dumps(exc.body or {"errorType": exc.error_type, "errorMessage": str(exc)}))
        return 1
    finally:
        environment.stop()
    print(json.dumps(result.payload))
    return 0


def cmd_generate_event(args: argparse.Namespace) -> int:
    body = args.body_file.read_bytes() if args.body_file else args.body.encode()
    headers: dict[str, Any] = {}
    for item in args.header:
        name, _, value = item.partition("=")
        headers[name] = int(value) if value.lstrip("-").isdigit() else value
    properties = pika.BasicProperties(
        content_type=args.content_type,
        headers=headers or None,
        delivery_mode=2,
        message_id=args.message_id,
    )
    arn = broker_arn("127.0.0.1", 5672, LOCAL_REGION, LOCAL_ACCOUNT)
    delivery = Delivery(body, properties, args.redelivered)
    event = build_event(args.queue, [delivery], arn, args.virtual_host)
    print(json.dumps(event, indent=2))
    return 0


def cmd_migrate(args: argparse.Namespace) -> int:
    from credit import mysql

    applied = mysql.migrate()
    print(f"applied: {', '.join(applied) if applied else 'nothing, schema is current'}")
    return 0


def cmd_redrive(args: argparse.Namespace) -> int:
    from local_runtime.redrive import redrive

    spec = _specs(args, [args.function])[0]
    if spec.event_source is None:
        raise DeclarationError(spec.directory, "event_source", "this function has no queue")
    report = redrive(spec.event_source, args.amqp_url, args.limit)
    print(f"moved {report.moved} message(s) from {report.dead_letter_queue} to {report.queue}")
    for unmoved in report.unmoved:
        print(
            f"left in {report.dead_letter_queue}: message {unmoved.position} "
            f"(message id {unmoved.message_id or 'unset'}): {unmoved.reason}"
        )
    return 1 if report.unmoved else 0


COMMANDS = {
    "start": cmd_start,
    "list": cmd_list,
    "invoke": cmd_invoke,
    "generate-event": cmd_generate_event,
    "migrate": cmd_migrate,
    "redrive": cmd_redrive,
}
