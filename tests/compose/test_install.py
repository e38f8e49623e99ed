"""An installed runtime (a wheel, not `pip install -e .`) finds the template it is pointed at."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest

from tests.compose.composefile import ROOT

SHIPPED = ["AgeRule", "CreditApi", "ValueRule"]


def listed(stdout: str) -> list[str]:
    return [line.split()[0] for line in stdout.splitlines() if line and not line.startswith(" ")]


def project_copy(into: Path) -> Path:
    into.mkdir(parents=True, exist_ok=True)
    shutil.copy2(ROOT / "template.yaml", into / "template.yaml")
    shutil.copytree(
        ROOT / "functions", into / "functions", ignore=shutil.ignore_patterns("__pycache__")
    )
    return into


def test_the_installed_package_is_the_wheel_not_this_checkout(installed, tmp_path):
    code = (
        "import credit, declarations, local_runtime; "
        "print(credit.__file__, declarations.__file__, local_runtime.__file__)"
    )

    result = installed.run("python", "-c", code, cwd=tmp_path)

    assert result.returncode == 0, result.stderr
    assert all(path.startswith(str(installed.venv)) for path in result.stdout.split())


def test_it_runs_the_template_of_the_current_directory(installed, tmp_path):
    project_copy(tmp_path)

    result = installed.run("credit-runtime", "list", cwd=tmp_path)

    assert result.returncode == 0, result.stderr
    assert listed(result.stdout) == SHIPPED


def test_it_runs_the_template_named_by_template(installed, tmp_path):
    elsewhere = project_copy(tmp_path / "project")
    (tmp_path / "cwd").mkdir()

    result = installed.run(
        "credit-runtime",
        "--template",
        str(elsewhere / "template.yaml"),
        "list",
        cwd=tmp_path / "cwd",
    )

    assert result.returncode == 0, result.stderr
    assert listed(result.stdout) == SHIPPED


@pytest.mark.parametrize(
    "command", [["list"], ["start", "--no-api"], ["invoke", "AgeRule", "-e", "/dev/null"]]
)
def test_with_no_template_it_refuses_in_one_line_naming_the_folder(installed, tmp_path, command):
    result = installed.run("credit-runtime", *command, cwd=tmp_path)

    assert result.returncode == 2
    assert result.stdout == ""
    assert result.stderr.splitlines() == [
        "error: .: no template.yaml or template.yml or template.json in this folder"
    ]
