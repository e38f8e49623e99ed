"""An installed runtime (a wheel, not `pip install -e .`) finds the functions it is pointed at."""

from __future__ import annotations

import shutil

import pytest

from tests.compose.composefile import ROOT

FUNCTIONS = ROOT / "functions"
SHIPPED = ["age_rule", "value_rule"]


def listed(stdout: str) -> list[str]:
    return [line.split()[0] for line in stdout.splitlines() if line.strip()]


def test_the_installed_package_is_the_wheel_not_this_checkout(installed, tmp_path):
    code = "import credit, local_runtime; print(credit.__file__, local_runtime.__file__)"

    result = installed.run("python", "-c", code, cwd=tmp_path)

    assert result.returncode == 0, result.stderr
    assert all(path.startswith(str(installed.venv)) for path in result.stdout.split())


def test_it_runs_the_functions_folder_of_the_current_directory(installed, tmp_path):
    shutil.copytree(FUNCTIONS, tmp_path / "functions")

    result = installed.run("credit-runtime", "list", cwd=tmp_path)

    assert result.returncode == 0, result.stderr
    assert listed(result.stdout) == SHIPPED


def test_it_runs_the_folder_functions_dir_names(installed, tmp_path):
    elsewhere = tmp_path / "project" / "lambdas"
    shutil.copytree(FUNCTIONS, elsewhere)
    (tmp_path / "cwd").mkdir()

    result = installed.run(
        "credit-runtime", "--functions-dir", str(elsewhere), "list", cwd=tmp_path / "cwd"
    )

    assert result.returncode == 0, result.stderr
    assert listed(result.stdout) == SHIPPED


@pytest.mark.parametrize("command", [["list"], ["start", "--no-api"], ["invoke", "age_rule"]])
def test_with_no_functions_it_refuses_in_one_line_naming_the_folder(installed, tmp_path, command):
    result = installed.run("credit-runtime", *command, cwd=tmp_path)

    assert result.returncode == 2
    assert result.stdout == ""
    assert result.stderr.splitlines() == [
        f"error: no functions in {tmp_path / 'functions'} (no */function.json); "
        "run from the folder that holds functions/, or pass --functions-dir"
    ]


def test_without_the_api_folder_start_refuses_before_starting_anything(installed, tmp_path):
    shutil.copytree(FUNCTIONS / "age_rule", tmp_path / "functions" / "age_rule")

    result = installed.run("credit-runtime", "start", cwd=tmp_path)

    assert result.returncode == 2
    assert result.stderr.splitlines() == [
        f"error: no API in {tmp_path / 'functions' / 'api'} (no app.py); "
        "pass --no-api to run only functions"
    ]
