"""What AWS's Python runtime (awslambdaric) does inside an execution environment.

Loading the handler, classifying what goes wrong, marshalling the result and formatting the
function's log records follow awslambdaric's own code (`bootstrap.py`,
`lambda_runtime_marshaller.py`, `lambda_runtime_log_utils.py`): the same error types and
messages, the same error document, a result marshalled by the same simplejson settings (a
Decimal keeps its digits, bytes go out as they are), and the text or JSON log format chosen by
AWS_LAMBDA_LOG_FORMAT and AWS_LAMBDA_LOG_LEVEL.
"""

from __future__ import annotations

import decimal
import importlib
import json
import logging
import math
import os
import sys
import time
import traceback
from collections.abc import Callable
from datetime import UTC, datetime
from types import TracebackType
from typing import Any

import simplejson

Handler = Callable[[Any, Any], Any]
ERROR_INDENT = "\u00a0"  # awslambdaric indents stack lines with NO-BREAK SPACE
LAMBDA_WARNING = (
    "LAMBDA_WARNING: Unhandled exception. The most likely cause is an issue in the function "
    "code. However, in rare cases, a Lambda runtime update can cause unexpected function "
    "behavior. For functions using managed runtimes, runtime updates can be triggered by a "
    "function change, or can be applied automatically. To determine if the runtime has been "
    "updated, check the runtime version in the INIT_START log entry. If this error correlates "
    "with a change in the runtime version, you may be able to mitigate this error by "
    "temporarily rolling back to the previous runtime version. For more information, see "
    "https://docs.aws.amazon.com/lambda/latest/dg/runtimes-update.html"
)
_OWN_FILES = (os.path.dirname(os.path.abspath(__file__)),)


class Fault(Exception):
    """An error the runtime itself names (awslambdaric's FaultException), with AWS's types."""

    MARSHAL_ERROR = "Runtime.MarshalError"
    USER_CODE_SYNTAX_ERROR = "Runtime.UserCodeSyntaxError"
    HANDLER_NOT_FOUND = "Runtime.HandlerNotFound"
    IMPORT_MODULE_ERROR = "Runtime.ImportModuleError"
    BUILT_IN_MODULE_CONFLICT = "Runtime.BuiltInModuleConflict"
    MALFORMED_HANDLER_NAME = "Runtime.MalformedHandlerName"

    def __init__(self, error_type: str, message: str, trace: list[str] | None = None) -> None:
        super().__init__(message)
        self.error_type, self.message, self.trace = error_type, message, trace or []


def get_handler(handler: str) -> Handler:
    """The handler function named `module.function`, raising Fault as awslambdaric does."""
    try:
        module_name, function_name = handler.rsplit(".", 1)
    except ValueError as exc:
        raise Fault(Fault.MALFORMED_HANDLER_NAME, f"Bad handler '{handler}': {exc}") from exc
    if module_name.split(".")[0] in sys.builtin_module_names:
        raise Fault(
            Fault.BUILT_IN_MODULE_CONFLICT,
            f"Cannot use built-in module {module_name} as a handler module",
        )
    try:
        module = importlib.import_module(module_name.replace("/", "."))
    except ImportError as exc:
        raise Fault(
            Fault.IMPORT_MODULE_ERROR, f"Unable to import module '{module_name}': {exc}"
        ) from exc
    except SyntaxError as exc:
        trace = [f'  File "{exc.filename}" Line {exc.lineno}\n    {exc.text}']
        raise Fault(
            Fault.USER_CODE_SYNTAX_ERROR, f"Syntax error in module '{module_name}': {exc}", trace
        ) from exc
    try:
        found: Handler = getattr(module, function_name)
    except AttributeError:
        raise Fault(
            Fault.HANDLER_NOT_FOUND, f"Handler '{function_name}' missing on module '{module_name}'"
        ) from None
    return found


def error_document(exc: BaseException, request_id: str = "") -> dict[str, Any]:
    """The error document Lambda returns: type, message, request id and the stack trace
    without the runtime's own frames."""
    if isinstance(exc, Fault):
        return _document(exc.message, exc.error_type, exc.trace, request_id)
    return _document(str(exc), type(exc).__name__, _user_frames(exc.__traceback__), request_id)


def _document(message: str, error_type: str, trace: list[str], request_id: str) -> dict[str, Any]:
    return {
        "errorMessage": message or "",
        "errorType": error_type or "",
        "requestId": request_id,
        "stackTrace": trace,
    }


def _user_frames(tb: TracebackType | None) -> list[str]:
    """The stack from the first frame that is not the runtime's (bootstrap.py's on AWS)."""
    frames = traceback.extract_tb(tb)
    for index, frame in enumerate(frames):
        if not frame.filename.startswith(_OWN_FILES):
            return traceback.format_list(frames[index:])
    return traceback.format_list(frames)


class _Encoder(simplejson.JSONEncoder):
    """awslambdaric's marshaller: simplejson, a Decimal written with its own digits (NaN as
    NaN), non-ASCII escaped except on python3.12, where AWS turned that off."""

    def __init__(self) -> None:
        ascii_only = os.environ.get("AWS_EXECUTION_ENV") != "AWS_Lambda_python3.12"
        super().__init__(use_decimal=False, ensure_ascii=ascii_only)

    def default(self, o: Any) -> Any:
        if isinstance(o, decimal.Decimal):
            return math.nan if o.is_nan() else simplejson.RawJSON(str(o))
        return super().default(o)


_ENCODER = _Encoder()


def marshal(response: Any) -> tuple[bytes, str]:
    """The response as Lambda sends it back: bytes as they are, anything else as JSON."""
    if isinstance(response, bytes):
        return response, "application/unknown"
    try:
        return _ENCODER.encode(response).encode(), "application/json"
    except Exception as exc:
        raise Fault(Fault.MARSHAL_ERROR, f"Unable to marshal response: {exc}") from exc


# --- the function's log --------------------------------------------------------------------


class RequestId(logging.Filter):
    """Adds the current request id to every record, as Lambda's log handler does."""

    value = ""

    def filter(self, record: logging.LogRecord) -> bool:
        record.aws_request_id = self.value
        return True


REQUEST_ID = RequestId()
_RESERVED = frozenset(vars(logging.LogRecord("", 0, "", 0, "", None, None))) | {
    "message",
    "asctime",
    "aws_request_id",
    "tenant_id",
    "taskName",
}


class JsonFormatter(logging.Formatter):
    """Lambda's JSON log records: timestamp, level, message, logger, requestId, the error and
    its location when there is one, and any `extra` the caller passed."""

    def format(self, record: logging.LogRecord) -> str:
        level = min(50, max(0, record.levelno)) // 10 * 10
        moment = datetime.fromtimestamp(record.created, tz=UTC)
        fields: dict[str, Any] = {
            "timestamp": moment.strftime("%Y-%m-%dT%H:%M:%S.%f")[:-3] + "Z",
            "level": logging.getLevelName(level),
            "message": record.getMessage(),
            "logger": record.name,
        }
        if record.exc_info:
            fields["stackTrace"] = traceback.format_tb(record.exc_info[2])
            fields["errorType"] = record.exc_info[0].__name__ if record.exc_info[0] else None
            fields["errorMessage"] = str(record.exc_info[1])
        fields["requestId"] = getattr(record, "aws_request_id", None)
        if record.exc_info:
            fields["location"] = f"{record.pathname}:{record.funcName}:{record.lineno}"
        fields.update(
            (key, value)
            for key, value in vars(record).items()
            if key not in _RESERVED and key not in fields
        )
        return json.dumps(
            {k: v for k, v in fields.items() if v is not None}, default=str, ensure_ascii=False
        )


def json_logs() -> bool:
    return (os.environ.get("AWS_LAMBDA_LOG_FORMAT") or "").upper() == "JSON"


def configure_logging() -> None:
    """The root logger as awslambdaric sets it up, to stdout; AWS_LAMBDA_LOG_LEVEL sets its
    level (TRACE is DEBUG; anything Python does not know leaves the default)."""
    handler = logging.StreamHandler(sys.stdout)
    handler.addFilter(REQUEST_ID)
    if json_logs():
        handler.setFormatter(JsonFormatter())
    else:
        handler.setFormatter(
            logging.Formatter(
                "[%(levelname)s]\t%(asctime)s.%(msecs)03dZ\t%(aws_request_id)s\t%(message)s",
                "%Y-%m-%dT%H:%M:%S",
            )
        )
    logging.Formatter.converter = time.gmtime
    root = logging.getLogger()
    root.addHandler(handler)
    raw = os.environ.get("AWS_LAMBDA_LOG_LEVEL")
    level = {None: "", "TRACE": "DEBUG"}.get(raw, raw or "").upper()
    if level in logging.getLevelNamesMapping():
        root.setLevel(level)


def log_error(document: dict[str, Any]) -> None:
    """An unhandled error as awslambdaric writes it: `[ERROR] Type: message` and the trace,
    one event of several lines; in JSON, one record."""
    if json_logs():
        stamp = time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime())
        print(json.dumps({"timestamp": stamp, "level": "ERROR", **document}), flush=True)
        return
    description = "[ERROR]"
    if document["errorType"]:
        description += f" {document['errorType']}"
    if document["errorMessage"]:
        description += (":" if document["errorType"] else "") + f" {document['errorMessage']}"
    lines = [description, "Traceback (most recent call last):"]
    for element in document["stackTrace"]:
        for line in element.splitlines() or [""]:
            stripped = line.lstrip(" ")
            lines.append(ERROR_INDENT * (len(line) - len(stripped)) + stripped)
    print("\n".join(lines), flush=True)
