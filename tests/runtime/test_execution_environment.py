"""Execution environments as on AWS: own process, own variables, one import, Lambda's logs."""

from __future__ import annotations

import re
import time
import uuid

import pytest
from aws_lambda_powertools.utilities.typing import LambdaContext as PowertoolsContext

from local_runtime.context import LambdaContext
from tests.runtime.conftest import (
    FUNCTIONS_DIR,
    frame,
    load_spec,
    one_at_a_time,
    read_records,
    running,
    wait_until,
)

LOG_STREAM = re.compile(r"\d{4}/\d{2}/\d{2}/\[\$LATEST\][0-9a-f]{32}")
REPORT = re.compile(
    r"\[recorder\] REPORT RequestId: (?P<id>[0-9a-f-]{36})\tDuration: (?P<duration>\d+\.\d{2}) ms"
    r"\tBilled Duration: (?P<billed>\d+) ms\tMemory Size: 256 MB\tMax Memory Used: \d+ MB"
    r"(\tInit Duration: (?P<init>\d+\.\d{2}) ms)?"
)


@pytest.mark.integration
def test_each_function_sees_only_its_own_variables_and_lambdas(
    broker, amqp_url, tmp_path, monkeypatch
):
    monkeypatch.setenv("RUNTIME_ONLY_SECRET", "must not leak")
    files = {name: tmp_path / f"{name}.jsonl" for name in ("env_a", "env_b")}
    specs = {name: load_spec(name, broker.new_queue(), path) for name, path in files.items()}
    for spec in specs.values():
        broker.declare(spec)

    with running(specs["env_a"], amqp_url) as run_a, running(specs["env_b"], amqp_url) as run_b:
        for spec in specs.values():
            broker.publish(spec.source.queue, b"{}")
        run_a.wait_for_reports(1)
        run_b.wait_for_reports(1)
        printed = run_a.lines + run_b.lines

    [seen_a] = read_records(files["env_a"])
    [seen_b] = read_records(files["env_b"])
    env_a, env_b = seen_a["environment"], seen_b["environment"]
    assert (env_a["GREETING"], env_b["GREETING"]) == ("from a", "from b")
    assert "ONLY_A" in env_a and "ONLY_A" not in env_b
    assert "ONLY_B" in env_b and "ONLY_B" not in env_a
    assert "RUNTIME_ONLY_SECRET" not in env_a and "RUNTIME_ONLY_SECRET" not in env_b
    assert "AMQP_URL" not in env_a, "nothing of the runtime's own settings leaks in"
    assert env_a["AWS_SAM_LOCAL"] == "true", "as SAM CLI sets it"
    for name, env, memory in (("env_a", env_a, "128"), ("env_b", env_b, "512")):
        assert env["AWS_LAMBDA_FUNCTION_NAME"] == name
        assert env["AWS_LAMBDA_FUNCTION_MEMORY_SIZE"] == memory
        assert env["AWS_LAMBDA_FUNCTION_VERSION"] == "$LATEST"
        assert env["AWS_LAMBDA_LOG_GROUP_NAME"] == f"/aws/lambda/{name}"
        assert LOG_STREAM.fullmatch(env["AWS_LAMBDA_LOG_STREAM_NAME"])
        assert env["AWS_LAMBDA_INITIALIZATION_TYPE"] == "on-demand"
        assert env["AWS_EXECUTION_ENV"] == "AWS_Lambda_python3.11"
        assert env["AWS_REGION"] == env["AWS_DEFAULT_REGION"] == "us-east-1"
        assert env["LAMBDA_TASK_ROOT"] == str(FUNCTIONS_DIR / name)
        assert env["LAMBDA_RUNTIME_DIR"]
        assert env["_HANDLER"] == "handler.handler"
        assert env["TZ"] == ":UTC"
    assert env_a["AWS_LAMBDA_LOG_STREAM_NAME"] != env_b["AWS_LAMBDA_LOG_STREAM_NAME"]
    assert any(line.startswith("[env_a] ENVIRONMENT {") for line in printed)
    assert any(line.startswith("[env_b] ENVIRONMENT {") for line in printed)


@pytest.mark.integration
def test_the_handler_module_is_imported_once_per_process(broker, amqp_url, record_file):
    queue, spec = one_at_a_time(broker, record_file)
    for number in range(5):
        broker.publish(queue, f"message {number}".encode())

    with running(spec, amqp_url) as run:
        run.wait_for_reports(5)
        cold_starts = run.mapping.environments[0].cold_starts
        lines = run.lines

    imports = read_records(record_file, "import")
    invocations = read_records(record_file, "invoke")
    assert len(invocations) == 5
    assert len(imports) == 1 and cold_starts == 1
    assert {i["pid"] for i in invocations} == {imports[0]["pid"]}
    reports = [REPORT.match(line) for line in lines if "REPORT RequestId" in line]
    assert [m is not None and m["init"] is not None for m in reports] == [True] + [False] * 4


@pytest.mark.integration
def test_logs_frame_each_invocation_with_start_end_and_report(broker, amqp_url, record_file):
    queue, spec = one_at_a_time(broker, record_file)

    with running(spec, amqp_url) as run:
        broker.publish(queue, b"PRINT first")
        run.wait_for_reports(1)
        broker.publish(queue, b"PRINT second")
        run.wait_for_reports(2)
        wait_until(lambda: sum("REPORT" in line for line in run.lines) == 2)
        lines = run.lines

    request_ids = [i["context"]["aws_request_id"] for i in read_records(record_file, "invoke")]
    assert all(line.startswith("[recorder] ") for line in lines)
    for number, request_id in enumerate(request_ids):
        start, end = frame(lines, "recorder", request_id)
        assert start < lines.index(f"[recorder] handler output for {request_id}") < end
        report = REPORT.fullmatch(lines[end + 1])
        assert report is not None and report["id"] == request_id
        duration, billed = float(report["duration"]), int(report["billed"])
        if number == 0:
            assert report["init"] is not None, "a cold start reports its Init Duration"
            assert billed >= duration + float(report["init"]), "init is billed since 2025-08"
        else:
            assert report["init"] is None
            assert duration <= billed < duration + 1


@pytest.mark.integration
def test_a_line_left_unfinished_in_the_handlers_buffer_is_logged_before_its_end(
    broker, amqp_url, record_file
):
    queue, spec = one_at_a_time(broker, record_file)

    with running(spec, amqp_url) as run:
        broker.publish(queue, b"PARTIAL")
        run.wait_for_reports(1)
        lines = run.lines

    [invocation] = read_records(record_file, "invoke")
    request_id = invocation["context"]["aws_request_id"]
    start, end = frame(lines, "recorder", request_id)
    unfinished = lines.index(f"[recorder] unfinished line of {request_id}")
    assert start < unfinished < end, "the text is its own line, between START and END"
    assert REPORT.fullmatch(lines[end + 1])


@pytest.mark.integration
def test_output_larger_than_a_pipe_holds_arrives_whole_and_in_order_inside_its_frame(
    broker, amqp_url, record_file
):
    queue, spec = one_at_a_time(broker, record_file)

    with running(spec, amqp_url) as run:
        broker.publish(queue, b"FLOOD")
        broker.publish(queue, b"PRINT")
        run.wait_for_reports(2)
        lines = run.lines

    first, second = (i["context"]["aws_request_id"] for i in read_records(record_file, "invoke"))
    start, end = frame(lines, "recorder", first)
    expected = [f"[recorder] flood {number:04d} {'x' * 60}" for number in range(5000)]
    assert lines[start + 1 : end] == expected
    assert end < frame(lines, "recorder", second)[0]


@pytest.mark.integration
def test_every_invocation_is_framed_even_when_the_runtime_is_fed_quickly(
    broker, amqp_url, record_file
):
    """Many small invocations back to back: every handler line lands inside its own frame."""
    queue, spec = one_at_a_time(broker, record_file)
    for _ in range(40):
        broker.publish(queue, b"PRINT")

    with running(spec, amqp_url) as run:
        run.wait_for_reports(40)
        lines = run.lines

    request_ids = [i["context"]["aws_request_id"] for i in read_records(record_file, "invoke")]
    assert len(request_ids) == 40
    for request_id in request_ids:
        start, end = frame(lines, "recorder", request_id)
        output = lines.index(f"[recorder] handler output for {request_id}")
        assert start < output < end
        assert REPORT.fullmatch(lines[end + 1])
        assert not any(line.startswith("[recorder] START") for line in lines[start + 1 : end])


@pytest.mark.integration
def test_the_context_carries_every_field_aws_documents_with_real_values(
    broker, amqp_url, record_file
):
    queue, spec = one_at_a_time(broker, record_file)
    broker.publish(queue, b"hello")

    with running(spec, amqp_url) as run:
        run.wait_for_reports(1)

    [invocation] = read_records(record_file, "invoke")
    context = invocation["context"]
    assert context["function_name"] == "recorder"
    assert context["function_version"] == "$LATEST"
    arn = context["invoked_function_arn"]
    assert arn == "arn:aws:lambda:us-east-1:000000000000:function:recorder"
    assert context["memory_limit_in_mb"] == "256", "a string, as awslambdaric gives it"
    assert uuid.UUID(context["aws_request_id"]).version == 4
    assert context["log_group_name"] == "/aws/lambda/recorder"
    assert LOG_STREAM.fullmatch(context["log_stream_name"])
    assert context["log_stream_name"] == context["environment_log_stream"]
    assert context["identity"] == {"cognito_identity_id": None, "cognito_identity_pool_id": None}
    assert context["client_context"] is None
    assert context["tenant_id"] is None
    assert 0 < context["remaining_ms"] <= spec.function.timeout * 1000


def test_the_context_has_every_attribute_of_powertools_lambda_context():
    documented = {name for name in vars(PowertoolsContext) if not name.startswith("_")}
    arn = "arn:aws:lambda:us-east-1:000000000000:function:fn"
    context = LambdaContext("fn", "128", "request", int(time.time() * 1000) + 3000, arn)
    missing = sorted(name for name in documented if not hasattr(context, name))
    assert documented >= {"function_name", "get_remaining_time_in_millis", "tenant_id"}
    assert missing == []
    assert 2000 < context.get_remaining_time_in_millis() <= 3000
