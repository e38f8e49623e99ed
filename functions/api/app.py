"""The credit API: accept credit requests, report their validation, describe itself."""

from __future__ import annotations

import logging
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from chalice import Chalice, Rate, Response
from chalice.app import Request
from chalicelib import dependencies
from chalicelib.errors import (
    JSON,
    ApiError,
    IdempotencyKeyInUse,
    IdempotencyKeyReused,
    InvalidRequest,
    InvalidTicket,
    MalformedJson,
    OutcomeUnknown,
    PayloadTooLarge,
    ServiceUnavailable,
    TicketNotFound,
    UnsupportedMediaType,
    json_response,
)

from credit import errors, idempotency, request_json
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
        except errors.IdempotencyKeyInUse:
            return IdempotencyKeyInUse(
                "a request with this Idempotency-Key is still being processed;"
                " retry once it has been answered",
                {idempotency.HEADER: "is held by a request still in progress"},
            ).response()
        except errors.IdempotencyKeyReused:
            return IdempotencyKeyReused(
                "this Idempotency-Key was already used with another request body;"
                " use a new key for a new request",
                {idempotency.HEADER: "names a request with another body"},
            ).response()
        except errors.OutcomeUnknown as exc:
            app.log.error("outcome unknown: %s", exc)
            return _outcome_unknown(exc.tickets[0]).response()
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
    """Validate, store and split a credit request; answer at once with its ticket.

    With an Idempotency-Key, a retry gets the first request's answer again."""
    payload = _json_body()
    key = _idempotency_key()
    accepted = dependencies.service().submit(payload, key)
    location = f"/credit-validation?ticket={accepted.ticket}"
    return json_response(
        202, {"ticket": accepted.ticket, "status": "PENDING"}, {"Location": location}
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
    """Publish outbox messages whose confirm never came (locally: every second), and forget
    Idempotency-Keys past their time to live."""
    service = dependencies.service()
    relayed = relay_outbox(service.store, service.publisher)
    return {"relayed": relayed, "keys_purged": service.store.purge_idempotency_keys()}


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
        return request_json.loads(raw)
    except request_json.DuplicateKey as exc:
        raise InvalidRequest(
            f"body gives {exc.key[:64]!r} more than once; give each field once",
            {exc.key[:64]: "appears more than once in one object"},
        ) from exc
    except (ValueError, RecursionError) as exc:
        raise MalformedJson(f"body is not valid JSON: {exc}") from exc


def _idempotency_key() -> str | None:
    raw = _request().headers.get(idempotency.HEADER.lower())
    return None if raw is None else idempotency.parse_key(raw)


def _outcome_unknown(ticket: str) -> OutcomeUnknown:
    return OutcomeUnknown(
        "MySQL stopped answering after the ticket was sent, so whether it was stored is not"
        f" known. GET /credit-validation?ticket={ticket} finds it if it was; a retry with the"
        " same Idempotency-Key is answered with this ticket if it was stored, and stores the"
        " request once if not (a retry without a key may create a second ticket)",
        {"ticket": ticket},
    )


def _request() -> Request:
    request = app.current_request
    assert request is not None, "only called while a request is being handled"
    return request


def _summary(problems: dict[str, str]) -> str:
    return "; ".join(f"{name} {why}" for name, why in problems.items())
