"""Function zips: Lambda's task root layout, the shared package inside, reproducible bytes."""

from __future__ import annotations

import subprocess
import sys
import zipfile
from pathlib import Path

import pytest

from infra.errors import PackageError
from infra.package import LAYER_REQUIREMENTS, PipVendor, build_all, build_zip


def names(path: Path) -> set[str]:
    with zipfile.ZipFile(path) as archive:
        return set(archive.namelist())


def test_zip_has_the_function_folder_at_its_root_and_credit_beside_it(artifacts):
    contents = names(artifacts["age_rule"].path)

    assert {"handler.py", "rule.py"} <= contents
    assert {"credit/__init__.py", "credit/rule_function.py", "credit/topology.py"} <= contents
    assert "credit/migrations/0001_init.sql" in contents


def test_zip_leaves_out_the_declaration_and_bytecode(artifacts):
    contents = names(artifacts["value_rule"].path)

    assert "function.json" not in contents  # applied as Lambda configuration, not code
    assert not [name for name in contents if "__pycache__" in name or name.endswith(".pyc")]


def test_zips_are_reproducible(specs, tmp_path):
    first = build_zip(specs[0], tmp_path / "one.zip")
    second = build_zip(specs[0], tmp_path / "two.zip")

    assert first.code_sha256 == second.code_sha256
    assert first.path.read_bytes() == second.path.read_bytes()


def test_vendored_dependencies_sit_at_the_zip_root_like_a_layer(specs, tmp_path):
    def fake_vendor(requirements, target, runtime):
        assert list(requirements) == list(LAYER_REQUIREMENTS) and runtime == "python3.11"
        (target / "pika").mkdir()
        (target / "pika" / "__init__.py").write_text("")
        (target / "bin").mkdir()
        (target / "bin" / "script").write_text("")

    artifacts = build_all(specs, tmp_path, fake_vendor)

    contents = names(artifacts["age_rule"].path)
    assert "pika/__init__.py" in contents
    assert "bin/script" not in contents


def test_handler_imports_from_the_unzipped_package_as_lambda_would(artifacts, tmp_path):
    with zipfile.ZipFile(artifacts["age_rule"].path) as archive:
        archive.extractall(tmp_path)
    probe = (
        "import sys; sys.path.insert(0, sys.argv[1]); import handler, credit, rule; "
        "print(credit.__file__); print(handler.handler.__module__, rule.judge(30).passed)"
    )

    result = subprocess.run(
        [sys.executable, "-c", probe, str(tmp_path)],
        capture_output=True,
        text=True,
        check=True,
        cwd=tmp_path,
    )

    credit_file, outcome = result.stdout.splitlines()
    assert Path(credit_file).is_relative_to(tmp_path)
    assert outcome == "handler True"


def test_pip_vendor_asks_for_lambda_platform_wheels(tmp_path):
    command = PipVendor(python="python").command(["pika"], tmp_path, "python3.12")

    assert command[:3] == ["python", "-m", "pip"]
    assert command[command.index("--target") + 1] == str(tmp_path)
    assert "--platform" in command and "manylinux2014_x86_64" in command
    assert "--only-binary=:all:" in command
    assert command[command.index("--python-version") + 1] == "3.12"
    assert command[-1] == "pika"


def test_pip_vendor_falls_back_to_a_plain_install(tmp_path):
    seen: list[list[str]] = []

    def run(command):
        seen.append(command)
        return subprocess.CompletedProcess(command, 1 if len(seen) == 1 else 0, "", "no wheel")

    PipVendor(python="python", run=run)(["pika"], tmp_path, "python3.11")

    assert "--platform" in seen[0] and "--platform" not in seen[1]


def test_pip_vendor_failure_is_a_package_error(tmp_path):
    def run(command):
        return subprocess.CompletedProcess(command, 1, "", "no such package")

    with pytest.raises(PackageError, match="no such package"):
        PipVendor(python="python", run=run)(["nothing-here"], tmp_path, "python3.11")
