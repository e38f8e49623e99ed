"""Command line: run a template's functions, list them, invoke one, talk to a running runtime."""

from __future__ import annotations

import argparse
import json
import logging
import os
import shlex
import sys
from pathlib import Path
from typing import Any

import pika

from declarations.errors import TemplateError
from declarations.model import MqSource, Project
from declarations.reader import read
from local_runtime import control, priority
from local_runtime.brokers import BrokerMap, BrokerMapError
from local_runtime.environment import ExecutionEnvironment, InvocationFailed, Site
from local_runtime.events import Delivery, broker_arn, build_event

LOGGER = logging.getLogger("local_runtime")
DEFAULT_ACCOUNT = "000000000000"


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="credit-runtime",
        description="Run the RabbitMQ-triggered Lambda functions of a SAM or CloudFormation "
        "template locally, as AWS's Amazon MQ event source mapping invokes them, with their "
        "EventBridge schedules and API Gateway routes.",
    )
    parser.add_argument(
        "-t",
        "--template",
        type=Path,
        default=Path("."),
        help="the template, or a folder holding template.yaml (default: the current folder)",
    )
    parser.add_argument(
        "--parameter-overrides",
        action="append",
        default=[],
        metavar="'NAME=VALUE ...'",
        help="template parameters, as sam's --parameter-overrides (space-separated pairs; "
        "may repeat)",
    )
    parser.add_argument(
        "--import-value",
        action="append",
        default=[],
        metavar="EXPORT=VALUE",
        help="the value Fn::ImportValue gives for another stack's export (may repeat)",
    )
    parser.add_argument(
        "--env-vars",
        type=Path,
        help="JSON file of environment variable values in SAM CLI's format: "
        '{"Parameters": {...}} for every function, {"LogicalId": {...}} for one',
    )
    parser.add_argument("--region", help="AWS_REGION of the functions (default: $AWS_REGION)")
    parser.add_argument("--account-id", default=DEFAULT_ACCOUNT, help="account id in ARNs")
    parser.add_argument("--stack-name", default="local", help="AWS::StackName")
    parser.add_argument(
        "--amqp-url", help="the broker every MQ event uses (default: $AMQP_URL, else local guest)"
    )
    parser.add_argument(
        "--broker",
        action="append",
        default=[],
        metavar="NAME=URL",
        help="one broker (logical id or ARN) elsewhere than --amqp-url; may repeat",
    )
    parser.add_argument("-v", "--verbose", action="store_true", help="debug logging")
    commands = parser.add_subparsers(dest="command", required=True)

    start = commands.add_parser(
        "start", help="consume every MQ event's queue, run the schedules, serve the API"
    )
    start.add_argument(
        "functions",
        nargs="*",
        help="only these functions' MQ events and schedules (default: all); the API runs "
        "unless --no-api",
    )
    start.add_argument("--host", default="127.0.0.1")
    start.add_argument("--port", type=int, default=8000)
    start.add_argument("--no-api", action="store_true", help="do not serve the API")
    start.add_argument("--api-only", action="store_true", help=argparse.SUPPRESS)
    start.add_argument("--parent-pid", type=int, help=argparse.SUPPRESS)
    start.add_argument(
        "--watch",
        action="store_true",
        help="when the template or a function's code changes, replace its execution "
        "environments before the next batch (batches in flight finish)",
    )
    start.add_argument(
        "--inherit-env",
        default="",
        metavar="NAME[,NAME]",
        help="pass these variables from this shell to every function (nothing else leaks in)",
    )
    start.add_argument(
        "--background-nice",
        type=int,
        default=priority.BACKGROUND_NICE,
        metavar="N",
        help="run the queue consumers and function workers N nice steps below the API, so "
        "requests come first on a busy machine; 0 runs all alike (default: %(default)s)",
    )

    commands.add_parser("list", help="list functions, their triggers, and what is not emulated")

    invoke = commands.add_parser("invoke", help="invoke one function once, like `sam local invoke`")
    invoke.add_argument("function", help="logical id or function name")
    invoke.add_argument("-e", "--event", type=Path, help="event JSON file, '-' for stdin")
    invoke.add_argument("--inherit-env", default="", metavar="NAME[,NAME]")

    generate = commands.add_parser(
        "generate-event", help="print an aws:rmq event for a message body"
    )
    generate.add_argument(
        "--function",
        help="take the queue, virtual host and broker ARN from this function's MQ event "
        "in the template",
    )
    generate.add_argument("--queue", help="the queue (default: the function's, else 'test')")
    generate.add_argument("--virtual-host", help="the virtual host (default: the event's, or /)")
    generate.add_argument("--body", default="{}", help="message body (text)")
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

    redrive = commands.add_parser(
        "redrive", help="move a function's dead-lettered messages back to its queue"
    )
    redrive.add_argument("function")
    redrive.add_argument(
        "--dead-letter-queue", help="where its queue dead-letters to (default: <queue>.dlq)"
    )
    redrive.add_argument("--limit", type=int, help="at most this many (default: all)")

    commands.add_parser("status", help="what the runtimes running this template are doing")
    for verb in ("disable", "enable"):
        switch = commands.add_parser(
            verb, help=f"{verb} a mapping of the running runtime (its logical id or function)"
        )
        switch.add_argument("name")
    trigger = commands.add_parser("trigger", help="fire a schedule now on the running runtime")
    trigger.add_argument("schedule", help="the schedule's logical id (see status)")
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
    except TemplateError as exc:
        print(f"error: {exc}", file=sys.stderr)
        code = 2
    except (BrokerMapError, KeyError, control.ControlError) as exc:
        print(f"error: {str(exc).strip(chr(34) + chr(39))}", file=sys.stderr)
        code = 2
    except Exception as exc:  # one clear line instead of a traceback
        from local_runtime.supervisor import StartupError

        if not isinstance(exc, StartupError | OSError):
            raise
        print(f"error: {exc}", file=sys.stderr)
        code = 1
    sys.exit(code)


def _project(args: argparse.Namespace) -> Project:
    overrides: dict[str, str] = {}
    for item in (pair for option in args.parameter_overrides for pair in shlex.split(option)):
        name, sep, value = item.partition("=")
        if not sep:
            raise TemplateError("--parameter-overrides", f"takes NAME=VALUE, got {item!r}")
        overrides[name] = value
    exports: dict[str, str] = {}
    for item in args.import_value:
        name, sep, value = item.partition("=")
        if not sep or not name:
            raise TemplateError("--import-value", f"takes EXPORT=VALUE, got {item!r}")
        exports[name] = value
    return read(
        args.template,
        parameters=overrides,
        exports=exports,
        region=_region(args),
        account=args.account_id,
        stack_name=args.stack_name,
    )


def _region(args: argparse.Namespace) -> str:
    return str(args.region or os.environ.get("AWS_REGION") or "us-east-1")


def _site(args: argparse.Namespace, project: Project) -> Site:
    env_vars: dict[str, dict[str, str]] = {}
    if args.env_vars is not None:
        try:
            env_vars = json.loads(args.env_vars.read_text())
        except (OSError, ValueError) as exc:
            raise TemplateError(str(args.env_vars), f"not a readable JSON file: {exc}") from exc
        if not isinstance(env_vars, dict) or not all(
            isinstance(v, dict) for v in env_vars.values()
        ):
            raise TemplateError(
                str(args.env_vars), 'must map "Parameters" or a logical id to {NAME: value}'
            )
    inherit = getattr(args, "inherit_env", "")
    site = Site(
        region=project.region,
        account=project.account,
        inherit=tuple(name.strip() for name in inherit.split(",") if name.strip()),
        env_vars=env_vars,
    )
    for function in project.functions.values():
        undeclared = site.undeclared(function)
        if undeclared:
            LOGGER.warning(
                "%s: --env-vars sets %s, which the template does not declare for it; "
                "ignored, as SAM CLI ignores it",
                function.name,
                ", ".join(undeclared),
            )
    return site


def _selected(project: Project, names: list[str]) -> list[str]:
    return [project.function(name).logical_id for name in names]


def cmd_start(args: argparse.Namespace) -> int:
    from local_runtime.supervisor import Runtime

    project = _project(args)
    brokers = BrokerMap.from_options(args.amqp_url, args.broker)
    brokers.check(list(project.mq_sources))
    site = _site(args, project)
    if args.api_only:
        return _serve_api(args, project, site)
    only = _selected(project, args.functions)
    runtime = Runtime(
        project,
        brokers,
        site=site,
        only=only,
        api=not args.no_api,
        host=args.host,
        port=args.port,
        api_command=_api_command(args),
        background_nice=args.background_nice,
    )
    runtime.run_until_signalled(reload=(lambda: _project(args)) if args.watch else None)
    LOGGER.info("stopped cleanly")
    return 0


def _api_command(args: argparse.Namespace) -> list[str]:
    """The arguments that start this project's API process: the same template and options."""
    command = ["--template", str(args.template), "--account-id", args.account_id]
    command += ["--stack-name", args.stack_name, "--region", _region(args)]
    for option in args.parameter_overrides:
        command += ["--parameter-overrides", option]
    for item in args.import_value:
        command += ["--import-value", item]
    if args.env_vars is not None:
        command += ["--env-vars", str(args.env_vars)]
    if args.verbose:
        command.append("--verbose")
    command += ["start", "--api-only"]
    if args.inherit_env:
        command += ["--inherit-env", args.inherit_env]
    return command


def _serve_api(args: argparse.Namespace, project: Project, site: Site) -> int:
    """The API's own process: API Gateway in front of the template's routes. A Chalice app
    among the functions runs in this process (it then is that function's execution
    environment: its variables, its folder); any other proxy handler in execution environments
    of its own."""
    from local_runtime import chalice_app, gateway
    from local_runtime.api_routes import FunctionRoutes
    from local_runtime.environment import lambda_environment
    from local_runtime.http11 import Limits
    from local_runtime.http_server import HttpServer
    from local_runtime.supervisor import API_THREADS_VARIABLE, api_functions, install_stop_signals

    functions = api_functions(project)
    chalice = [
        f
        for f in functions
        if chalice_app.probe(f.code_dir, f.handler, lambda_environment(f, site)).is_chalice
    ]
    if len(chalice) > 1:
        names = ", ".join(f.logical_id for f in chalice)
        raise TemplateError(str(project.template), f"one Chalice app can be served, found {names}")
    declared = [f.max_body_bytes for f in functions if f.max_body_bytes is not None]
    limits = Limits(max_body_bytes=max(declared)) if declared else Limits()
    received = install_stop_signals(args.parent_pid)
    routes = [(route, project.functions[route.function]) for route in project.routes]
    server: HttpServer
    if chalice:
        (function,) = chalice
        # This process is the Chalice function's execution environment.
        environment = lambda_environment(function, site)
        os.environ.clear()
        os.environ.update(environment)
        os.environ[API_THREADS_VARIABLE] = str(gateway.REQUEST_THREADS)
        app = gateway.load_app(
            function.code_dir, function.handler_module, function.handler_function
        )
        server, _ = gateway.serve(app, args.host, args.port, limits=limits, function=function)
        if len(functions) > 1:  # other functions' routes beside the app's
            server.responder = FunctionRoutes(routes, site, server.responder, function.logical_id)
    else:
        server = gateway.serve_routes(FunctionRoutes(routes, site), args.host, args.port, limits)
    received.wait()
    server.shutdown()
    server.server_close()
    if isinstance(server.responder, FunctionRoutes):
        server.responder.stop()
    return 0


def cmd_list(args: argparse.Namespace) -> int:
    project = _project(args)
    for function in project.functions.values():
        print(
            f"{function.logical_id:<16} {function.handler:<20} {function.runtime} "
            f"timeout={function.timeout}s memory={function.memory_size}MB"
        )
        for source in project.sources_of(function.logical_id):
            window = source.maximum_batching_window
            state = "" if source.enabled else " (disabled)"
            print(
                f"  mq       {source.queue} batch={source.batch_size} window={window:g}s "
                f"concurrency={function.concurrency}{state}"
            )
        for schedule in project.schedules:
            if schedule.function == function.logical_id:
                print(
                    f"  schedule {schedule.expression}{'' if schedule.enabled else ' (disabled)'}"
                )
        for route in project.routes:
            if route.function == function.logical_id:
                print(f"  api      {route.method} {route.path}")
    for warning in project.warnings:
        print(f"warning: {warning}", file=sys.stderr)
    return 0


def cmd_invoke(args: argparse.Namespace) -> int:
    project = _project(args)
    function = project.function(args.function)
    if args.event is None or str(args.event) == "-":
        event: Any = json.load(sys.stdin)
    else:
        event = json.loads(args.event.read_text())
    environment = ExecutionEnvironment(function, output=sys.stderr, site=_site(args, project))
    try:
        result = environment.invoke(event)
    except InvocationFailed as exc:
        print(json.dumps(exc.body or {"errorType": exc.error_type, "errorMessage": str(exc)}))
        return 1
    finally:
        environment.stop()
    sys.stdout.buffer.write(result.raw + b"\n")
    sys.stdout.flush()
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
    queue, virtual_host = args.queue or "test", args.virtual_host or "/"
    arn = broker_arn("127.0.0.1", 5672, _region(args), args.account_id)
    if args.function:
        source = _source_of(_project(args), args.function, args.queue)
        queue, arn = source.queue, source.broker.arn
        virtual_host = args.virtual_host or source.virtual_host or "/"
    delivery = Delivery(body, properties, args.redelivered)
    event = build_event(queue, [delivery], arn, virtual_host)
    print(json.dumps(event, indent=2))
    return 0


def _source_of(project: Project, name: str, queue: str | None) -> MqSource:
    """The function's MQ event: its only one, or the one on `queue`."""
    function = project.function(name)
    declared = project.sources_of(function.logical_id)
    sources = [source for source in declared if queue in (None, source.queue)]
    if len(sources) == 1:
        return sources[0]
    if not declared:
        problem = "has no MQ event"
    else:
        problem = f"has MQ events on {', '.join(s.queue for s in declared)}: name one with --queue"
    raise TemplateError(str(project.template), f"{function.logical_id} {problem}")


def cmd_redrive(args: argparse.Namespace) -> int:
    from local_runtime.redrive import redrive

    project = _project(args)
    function = project.function(args.function)
    sources = project.sources_of(function.logical_id)
    if len(sources) != 1:
        raise TemplateError(
            str(project.template), f"{function.logical_id} has {len(sources)} MQ events, not one"
        )
    (source,) = sources
    url, _ = BrokerMap.from_options(args.amqp_url, args.broker).consumed(source)
    dead_letters = args.dead_letter_queue or f"{source.queue}.dlq"
    report = redrive(source.queue, dead_letters, url, args.limit)
    print(f"moved {report.moved} message(s) from {report.dead_letter_queue} to {report.queue}")
    for unmoved in report.unmoved:
        print(
            f"left in {report.dead_letter_queue}: message {unmoved.position} "
            f"(message id {unmoved.message_id or 'unset'}): {unmoved.reason}"
        )
    return 1 if report.unmoved else 0


def _runtimes(args: argparse.Namespace) -> list[Path]:
    from declarations.loader import find_template

    sockets = control.sockets_for(find_template(args.template).resolve())
    if not sockets:
        raise control.ControlError(f"no runtime is running {args.template} (start it first)")
    return sockets


def cmd_status(args: argparse.Namespace) -> int:
    for path in _runtimes(args):
        print(json.dumps(control.send(path, "status", []), indent=2))
    return 0


def cmd_switch(args: argparse.Namespace) -> int:
    for path in _runtimes(args):
        for line in control.send(path, args.command, [args.name]):
            print(line)
    return 0


def cmd_trigger(args: argparse.Namespace) -> int:
    for path in _runtimes(args):
        print(control.send(path, "trigger", [args.schedule]))
    return 0


COMMANDS = {
    "start": cmd_start,
    "list": cmd_list,
    "invoke": cmd_invoke,
    "generate-event": cmd_generate_event,
    "redrive": cmd_redrive,
    "status": cmd_status,
    "trigger": cmd_trigger,
    "disable": cmd_switch,
    "enable": cmd_switch,
}
