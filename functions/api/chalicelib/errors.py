"""API errors as classes carrying their HTTP status and stable code; one JSON shape for all."""

from __future__ import annotations

import json
from typing import Any

from chalice import Response

JSON = "application/json"


class ApiError(Exception):
    status = 400
    code = "BAD_REQUEST"

    def __init__(self, message: str, details: dict[str, str] | None = None) -> None:
        super().__init__(message)
        self.message, self.details = message, details

    def response(self) -> Response:
        body: dict[str, Any] = {"code": self.code, "message": self.message}
        if self.details:
            body["details"] = self.details
        return json_response(self.status, body)


class MalformedJson(ApiError):
    code = "MALFORMED_JSON"


class InvalidRequest(ApiError):
    code = "INVALID_REQUEST"


class InvalidTicket(ApiError):
    code = "INVALID_TICKET"


class TicketNotFound(ApiError):
    status, code = 404, "TICKET_NOT_FOUND"


class PayloadTooLarge(ApiError):
    status, code = 413, "PAYLOAD_TOO_LARGE"


class UnsupportedMediaType(ApiError):
    status, code = 415, "UNSUPPORTED_MEDIA_TYPE"


class IdempotencyKeyInUse(ApiError):
    status, code = 409, "IDEMPOTENCY_KEY_IN_USE"


class IdempotencyKeyReused(ApiError):
    status, code = 422, "IDEMPOTENCY_KEY_REUSED"


class OutcomeUnknown(ApiError):
    """The ticket was sent to MySQL and MySQL could not be asked whether it committed: not a
    503, which promises that nothing was stored."""

    status, code = 500, "OUTCOME_UNKNOWN"


class ServiceUnavailable(ApiError):
    status, code = 503, "SERVICE_UNAVAILABLE"


def json_response(status: int, body: object, headers: dict[str, str] | None = None) -> Response:
    text = body if isinstance(body, str) else json.dumps(body, separators=(",", ":"))
    return Response(
        body=text, status_code=status, headers={"Content-Type": JSON, **(headers or {})}
    )
