"""A small Chalice app behind the gateway, for tests that need no services.

`python -m tests.gateway.app [--max-connections N ...]` serves it on a free port, prints
`READY <port>` and serves until its standard input closes.
"""

from __future__ import annotations

import argparse
import sys
import threading
import time

from chalice.app import Chalice, Response


def make_app() -> Chalice:
    """Routes that echo what a view received, plus one with a side effect to count."""
    app = Chalice(app_name="gateway-test")
    created: list[str] = []  # what POST /tickets stored: a smuggled request would add one

    @app.route("/echo", methods=["GET", "POST"], content_types=["application/json", "text/plain"])
    def echo() -> dict[str, object]:
        request = app.current_request
        return {
            "method": request.method,
            "query": request.query_params,
            "body": request.raw_body.decode() if request.raw_body else None,
            "headers": {k: v for k, v in request.headers.items() if k.startswith("x-")},
            "host": request.headers.get("host"),
            "context": {
                "resourcePath": request.context["resourcePath"],
                "path": request.context["path"],
                "sourceIp": request.context["identity"]["sourceIp"],
            },
        }

    @app.route("/items/{item}", cors=True)
    def item(item: str) -> Response:
        return Response({"item": item}, headers={"Set-Cookie": ["a=1", "b=2"]})

    @app.route("/framing")
    def framing() -> Response:
        """Headers that are the server's to set, set wrongly by the app."""
        return Response({"ok": True}, headers={"content-length": "999", "Connection": "upgrade"})

    @app.route("/tickets", methods=["GET", "POST"], content_types=["application/json"])
    def tickets() -> dict[str, object]:
        if app.current_request.method == "POST":
            created.append(app.current_request.raw_body.decode())
        return {"created": len(created)}

    @app.route("/sleep")
    def sleep() -> dict[str, object]:
        """Blocks its thread, as a view waiting on MySQL does."""
        seconds = float((app.current_request.query_params or {}).get("seconds", "0.1"))
        time.sleep(seconds)
        return {"slept": seconds}

    return app


def main(argv: list[str] | None = None) -> None:
    from local_runtime import gateway
    from local_runtime.http11 import Limits
    from local_runtime.http_dispatch import Dispatcher, EpollDispatcher, SelectorDispatcher

    parser = argparse.ArgumentParser()
    parser.add_argument("--dispatcher", choices=("epoll", "selector"), default="epoll")
    parser.add_argument("--workers", type=int, default=64)
    limits = Limits(max_body_bytes=16 * 1024)  # as the credit API declares its own limit
    for name, value in vars(limits).items():
        parser.add_argument(f"--{name.replace('_', '-')}", type=type(value), default=value)
    args = vars(parser.parse_args(argv))
    workers, kind = args.pop("workers"), args.pop("dispatcher")
    dispatcher: Dispatcher = (
        EpollDispatcher(workers) if kind == "epoll" else SelectorDispatcher(workers)
    )
    server = gateway.GatewayServer(
        ("127.0.0.1", 0), make_app(), limits=Limits(**args), dispatcher=dispatcher
    )
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    print(f"READY {server.server_address[1]}", flush=True)
    sys.stdin.read()
    server.shutdown()
    server.server_close()


if __name__ == "__main__":
    main()
