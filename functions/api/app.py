"""The credit API: accept credit requests, report their validation, describe itself."""

from __future__ import annotations

import json
import logging
from collections.abc import Mapping
from decimal import Decimal
from pathlib import Path
from typing import Any

from chalice import Chalice, Rate, Response
from chalice.app import Request
from chalicelib import dependencies
from chalicelib.errors import (
    JSON,
    ApiError,
    InvalidRequest,
    InvalidTicket,
    MalformedJson,
    PayloadTooLarge,
    ServiceUnavailable,
    TicketNotFound,
    UnsupportedMediaType,
    json_response,
)

from credit import errors
from credit.service import relay_outbox

MAX_BODY_BYTES = 16 * 1024
OPENAPI = (Path(__file__).parent / "chalicelib" / "openapi.json").read_text()

app = Chalice(app_name="credit-api")
app.log.setLevel(logging.INFO)


def handle_errors(view: Any) -> Any:
    """Map errors to HTTP by type: our own carry their status; store failures are 503."""

    def wrapped(*args: Any, **kwargs: Any) -> Response:
        try:
            result: Response = view(*args, **kwargs)
        except ApiError as exc:
            return exc.response()
        except errors.ValidationError as exc:
            return InvalidRequest(_summary(exc.problems), exc.problems).response()
        except errors.TicketNotFound as exc:
            return TicketNotFound(f"no ticket {exc}").response()
        except errors.StoreUnavailable as exc:
            app.log.warning("state unavailable: %s", exc)
            return ServiceUnavailable(
                "ticket state cannot be stored or read right now; retry shortly"
            ).response()
        return result

    wrapped.__name__ = view.__name__
    wrapped.__doc__ = view.__doc__
    return wrapped


@app.route("/credit-request", methods=["POST"], content_types=["*/*"])
@handle_errors
def create_credit_request() -> Response:
    """Validate, store and split a credit request; answer at once with its ticket."""
    payload = _json_body()
    view = dependencies.service().submit(payload)
    location = f"/credit-validation?ticket={view.ticket}"
    return json_response(
        202, {"ticket": view.ticket, "status": view.status.value}, {"Location": location}
    )


@app.route("/credit-validation", methods=["GET"])
@handle_errors
def credit_validation() -> Response:
    """Report a ticket: PENDING, then APPROVED or NOT_APPROVED, with every rule's verdict."""
    params: Mapping[str, str] = _request().query_params or {}
    ticket = params.get("ticket")
    if not ticket:
        raise InvalidTicket("query parameter 'ticket' is required", {"ticket": "is required"})
    try:
        body = dependencies.service().view_json(ticket)
    except errors.ValidationError as exc:
        raise InvalidTicket(_summary(exc.problems), exc.problems) from exc
    return Response(body=body.decode(), status_code=200, headers={"Content-Type": JSON})


@app.route("/health", methods=["GET"])
def health() -> Response:
    """Report each dependency; 503 when any is down."""
    service = dependencies.service()
    checks = {
        "mysql": service.store.ping,
        "redis": service.cache.ping,
        "broker": service.publisher.ping,
    }
    report: dict[str, Any] = {}
    for name, check in checks.items():
        try:
            check()
            report[name] = {"status": "UP"}
        except errors.StoreUnavailable as exc:
            report[name] = {"status": "DOWN", "error": str(exc)}
    healthy = all(item["status"] == "UP" for item in report.values())
    return json_response(
        200 if healthy else 503, {"status": "UP" if healthy else "DOWN", "dependencies": report}
    )


@app.route("/openapi.json", methods=["GET"])
def openapi() -> Response:
    """The OpenAPI document of this API."""
    return Response(body=OPENAPI, status_code=200, headers={"Content-Type": JSON})


@app.schedule(Rate(1, unit=Rate.MINUTES))
def relay(event: Any) -> dict[str, int]:
    """Publish outbox messages whose confirm never came (locally: every second)."""
    service = dependencies.service()
    return {"relayed": relay_outbox(service.store, service.publisher)}


def _json_body() -> object:
    request = _request()
    content_type = (request.headers.get("content-type") or "").split(";")[0].strip().lower()
    if content_type != JSON:
        raise UnsupportedMediaType(
            f"Content-Type must be {JSON}, got {content_type or 'none'}",
            {"Content-Type": f"must be {JSON}"},
        )
    raw = request.raw_body or b""
    if len(raw) > MAX_BODY_BYTES:
        raise PayloadTooLarge(f"body is {len(raw)} bytes; the limit is {MAX_BODY_BYTES}")
    try:
        return json.loads(raw, parse_float=Decimal, parse_constant=_reject_constant)
    except (ValueError, RecursionError) as exc:
        raise MalformedJson(f"body is not valid JSON: {exc}") from exc


def _request() -> Request:
    request = app.current_request
    assert request is not None, "only called while a request is being handled"
    return request


def _reject_constant(name: str) -> None:
    raise ValueError(f"{name} is not a JSON number")


def _summary(problems: dict[str, str]) -> str:
    return "; ".join(f"{name} {why}" for name, why in problems.items())
