"""Results, errors and inits as AWS's Python runtime (awslambdaric) and Lambda treat them."""

from __future__ import annotations

import dataclasses
import io
import json
import re

import pytest

from declarations.model import Logging
from local_runtime.environment import ExecutionEnvironment, InvocationFailed
from tests.runtime.conftest import load_function

EVENT = {"hello": "world"}


def environment(handler: str, **changes) -> tuple[ExecutionEnvironment, io.StringIO]:
    function = dataclasses.replace(load_function("misbehave"), handler=handler, **changes)
    output = io.StringIO()
    return ExecutionEnvironment(function, output=output), output


def invoke(handler: str, **changes):
    env, output = environment(handler, **changes)
    try:
        return env.invoke(EVENT), output.getvalue().splitlines()
    finally:
        env.stop()


def failure(handler: str, **changes) -> tuple[InvocationFailed, list[str]]:
    env, output = environment(handler, **changes)
    try:
        with pytest.raises(InvocationFailed) as caught:
            env.invoke(EVENT)
    finally:
        env.stop()
    return caught.value, output.getvalue().splitlines()


def test_a_decimal_keeps_its_digits_and_bytes_go_back_as_they_are():
    result, _ = invoke("results.decimal_result")
    assert result.raw == b'{"amount": 1.50, "tiny": 1E-7}'
    assert result.content_type == "application/json"
    raw, _ = invoke("results.bytes_result")
    assert (raw.raw, raw.content_type) == (b"\x00raw\xff", "application/unknown")


def test_a_result_that_cannot_be_marshalled_is_a_marshal_error_with_awss_message():
    error, lines = failure("results.unmarshallable")
    assert error.error_type == "Runtime.MarshalError"
    assert error.body["errorMessage"] == (
        "Unable to marshal response: Object of type datetime is not JSON serializable"
    )
    assert "[misbehave] [ERROR] Runtime.MarshalError: Unable to marshal response: Object" in (
        "\n".join(lines)
    )


def test_a_type_error_the_handler_raises_is_a_type_error_with_only_its_own_frames():
    error, lines = failure("results.raises_type_error")
    assert error.error_type == "TypeError"
    assert error.body["errorMessage"] == "object of type 'int' has no len()"
    trace = "".join(error.body["stackTrace"])
    assert "results.py" in trace and "local_runtime" not in trace
    assert error.body["requestId"]
    text = "\n".join(lines)
    assert "[ERROR] TypeError: object of type 'int' has no len()" in text
    assert "Traceback (most recent call last):" in text
    assert "\u00a0\u00a0File" in text, "stack lines indented with no-break spaces, as AWS does"


@pytest.mark.parametrize(
    ("handler", "error_type", "message"),
    [
        (
            "broken_import.handler",
            "Runtime.ImportModuleError",
            "Unable to import module 'broken_import': No module named 'module_that_does_not_exist'",
        ),
        (
            "syntax_error.handler",
            "Runtime.UserCodeSyntaxError",
            "Syntax error in module 'syntax_error'",
        ),
        ("results.nope", "Runtime.HandlerNotFound", "Handler 'nope' missing on module 'results'"),
        ("nodot", "Runtime.MalformedHandlerName", "Bad handler 'nodot'"),
        ("raises_at_import.handler", "RuntimeError", "configuration missing"),
        ("os.handler", "Runtime.HandlerNotFound", "Handler 'handler' missing on module 'os'"),
    ],
)
def test_init_errors_are_classified_as_awslambdaric_classifies_them(handler, error_type, message):
    error, lines = failure(handler)
    assert error.error_type == error_type
    assert error.body["errorMessage"].startswith(message)
    text = "\n".join(lines)
    assert "LAMBDA_WARNING: Unhandled exception." in text


def test_a_failed_init_is_reported_retried_inside_the_invocation_then_fails_it():
    _, lines = failure("broken_import.handler")
    platform = [
        line.split("] ", 1)[1]
        for line in lines
        if not line.split("] ", 1)[1].startswith(("[", "Traceback", "\u00a0"))
    ]
    platform = [
        line for line in platform if not line.startswith(("LAMBDA_WARNING", "ModuleNotFoundError"))
    ]
    assert platform[0].startswith("INIT_START Runtime Version: python:3.")
    assert re.fullmatch(
        r"INIT_REPORT Init Duration: [\d.]+ ms\tPhase: init\tStatus: error\tError Type: "
        r"Runtime.ImportModuleError",
        platform[1],
    )
    assert platform[2].startswith("INIT_START")
    assert re.fullmatch(
        r"INIT_REPORT Init Duration: [\d.]+ ms\tPhase: invoke\tStatus: error\tError Type: "
        r"Runtime.ImportModuleError",
        platform[3],
    )
    assert platform[4].startswith("START RequestId: ")
    assert platform[5:7] == ["Unknown application error occurred", "Runtime.ImportModuleError"]
    assert platform[7].startswith("END RequestId: ")
    assert platform[8].endswith("\tStatus: error\tError Type: Runtime.ImportModuleError")


@pytest.mark.slow
def test_an_init_past_its_limit_is_tried_again_within_the_function_timeout(tmp_path):
    function_env = {"INIT_MARKER": str(tmp_path / "marker"), "SLOW_INIT_SECONDS": "30"}
    env, output = environment("slow_init.handler", environment=function_env, timeout=10)
    env.init_timeout = 1.5  # Lambda's is 10 s; the behaviour is the same, sooner
    try:
        result = env.invoke(EVENT)
    finally:
        env.stop()
    lines = [line.split("] ", 1)[1] for line in output.getvalue().splitlines()]
    assert lines[0].startswith("INIT_START")
    assert re.fullmatch(
        r"INIT_REPORT Init Duration: 1[56]\d\d\.\d\d ms\tPhase: init\tStatus: timeout", lines[1]
    )
    assert lines[2].startswith("INIT_START") and lines[3].startswith("START RequestId:")
    assert "Init Duration" not in lines[-1], "a suppressed init is part of the invocation"
    assert json.loads(result.raw)["pid"]


def test_json_log_format_writes_platform_records_and_json_application_logs():
    logging_config = Logging(log_format="JSON", application_log_level="DEBUG")
    result, lines = invoke("results.logs", logging=logging_config)
    records = [line.split("] ", 1)[1] for line in lines]
    init, start = json.loads(records[0]), json.loads(records[1])
    assert init["type"] == "platform.initStart"
    assert init["record"]["functionName"] == "misbehave"
    assert (start["type"], start["record"]["requestId"]) == ("platform.start", result.request_id)
    app = [json.loads(r) for r in records if r.startswith('{"timestamp"')]
    assert [(r["level"], r["message"], r["logger"]) for r in app] == [
        ("INFO", "order o-1 seen", "orders"),
        ("DEBUG", "debug detail", "root"),
    ]
    assert app[0]["requestId"] == result.request_id and app[0]["order"] == "o-1"
    assert "plain print" in records, "print() output stays as it is"
    report = json.loads(records[-1])
    assert report["type"] == "platform.report"
    assert set(report["record"]["metrics"]) >= {"durationMs", "billedDurationMs", "memorySizeMB"}
    assert report["record"]["status"] == "success"


def test_a_warn_system_log_level_drops_the_start_and_report_records():
    logging_config = Logging(
        log_format="JSON", application_log_level="INFO", system_log_level="WARN"
    )
    _, lines = invoke("results.logs", logging=logging_config)
    assert not any('"type":"platform.' in line for line in lines)


def test_trace_is_debug_for_the_python_logger_as_awslambdaric_maps_it():
    logging_config = Logging(log_format="JSON", application_log_level="TRACE")
    _, lines = invoke("results.logs", logging=logging_config)
    assert any('"message": "debug detail"' in line for line in lines)


def test_each_environment_has_its_own_tmp_of_its_size_and_a_read_only_task_root(tmp_path):
    first, _ = environment("fs.handler", ephemeral_storage=600)
    second, _ = environment("fs.handler")
    try:
        one = json.loads(first.invoke({"marker": "first-env"}).raw)
        two = json.loads(second.invoke({"marker": "second-env"}).raw)
    finally:
        first.stop()
        second.stop()
    assert one["home"] == "/tmp" and one["tmpdir"] is None
    assert (one["tmp_mb"], two["tmp_mb"]) == (600, 512), "EphemeralStorage sizes /tmp"
    assert one["sees"] == ["first-env"] and two["sees"] == ["second-env"]
    assert one["code_writable"] is False
    assert one["private"] == [], "the runtime's own variables are gone before the handler"
    import os

    assert not os.path.exists("/tmp/first-env"), "nothing written reaches the host's /tmp"
