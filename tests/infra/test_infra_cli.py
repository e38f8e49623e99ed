"""`python -m infra`: commands, their output, and exit codes for bad input."""

from __future__ import annotations

import json
import subprocess
import sys
import zipfile
from pathlib import Path

import pytest

from infra.cli import main


def declare(root: Path, name: str = "echo", **event_source) -> Path:
    """A function folder with a handler and a declaration under root."""
    folder = root / name
    folder.mkdir(parents=True)
    (folder / "handler.py").write_text("def handler(event, context):\n    return event\n")
    source = {"queue": f"rule.{name}", "exchange": "credit-requests", "routing_key": name}
    declaration = {"name": name, "handler": "handler.handler", "timeout": 30}
    declaration["event_source"] = {**source, **event_source}
    (folder / "function.json").write_text(json.dumps(declaration))
    return root


def test_module_entry_point_lists_the_commands():
    result = subprocess.run(
        [sys.executable, "-m", "infra", "--help"], capture_output=True, text=True, check=True
    )

    for command in ("deploy", "teardown", "package", "definitions", "api-package"):
        assert command in result.stdout


def test_package_builds_one_zip_per_function(tmp_path, capsys):
    assert main(["package", "--skip-deps", "--build-dir", str(tmp_path)]) == 0

    out = capsys.readouterr().out
    assert "age_rule.zip" in out and "value_rule.zip" in out
    with zipfile.ZipFile(tmp_path / "age_rule.zip") as archive:
        assert "handler.py" in archive.namelist()


def test_deploy_dry_run_prints_a_plan_and_creates_nothing(aws, tmp_path, capsys):
    import boto3

    code = main(
        ["deploy", "--dry-run", "--skip-deps", "--stage", "cli", "--build-dir", str(tmp_path)]
    )

    out = capsys.readouterr().out
    assert code == 0
    assert "deploy cli (us-east-1): plan (dry run: nothing was changed)" in out
    assert "create     lambda-function  credit-cli-age_rule" in out
    assert "create     secret           credit-cli/services  (without AMQP_URL, MYSQL_URL" in out
    assert "create     event-source     credit-cli-value_rule <- rule.value" in out
    assert "warning: option --mysql-url" in out
    assert boto3.client("lambda").list_functions()["Functions"] == []


def test_deploy_without_service_urls_is_refused(aws, tmp_path, capsys):
    code = main(["deploy", "--skip-deps", "--stage", "cli", "--build-dir", str(tmp_path)])

    assert code == 2
    assert "option --mysql-url: MYSQL_URL: is required" in capsys.readouterr().err


def test_deploy_names_the_function_and_field_aws_would_refuse(aws, tmp_path, capsys):
    functions = declare(tmp_path / "functions", maximum_batching_window=1.5)

    code = main(["deploy", "--dry-run", "--skip-deps", "--functions-dir", str(functions)])

    assert code == 2
    err = capsys.readouterr().err
    assert "function echo: event_source.maximum_batching_window: AWS takes whole seconds" in err


def test_a_declaration_over_the_limits_is_refused_naming_file_and_field(aws, tmp_path, capsys):
    functions = declare(tmp_path / "functions", batch_size=20_000)

    code = main(["deploy", "--dry-run", "--skip-deps", "--functions-dir", str(functions)])

    assert code == 2
    err = capsys.readouterr().err
    assert "echo/function.json: event_source.batch_size" in err


def test_teardown_dry_run_on_an_empty_account_finds_nothing(aws, capsys):
    assert main(["teardown", "--dry-run", "--stage", "cli"]) == 0

    out = capsys.readouterr().out
    assert "absent     lambda-function  credit-cli-age_rule" in out
    assert "absent     mq-broker        credit-cli" in out
    assert "absent     secret           credit-cli/services" in out


def test_partial_broker_credentials_are_refused(aws, tmp_path, monkeypatch, capsys):
    monkeypatch.setenv("CREDIT_BROKER_USERNAME", "ops")

    code = main(["deploy", "--dry-run", "--skip-deps", "--build-dir", str(tmp_path)])

    assert code == 1
    assert "CREDIT_BROKER_PASSWORD" in capsys.readouterr().err


@pytest.mark.parametrize("flag", ["--subnet-ids", "--security-group-ids"])
def test_id_lists_are_comma_separated(flag):
    from infra.cli import parser

    args = parser().parse_args(["deploy", flag, "a, b,c"])

    assert getattr(args, flag.lstrip("-").replace("-", "_")) == ("a", "b", "c")
