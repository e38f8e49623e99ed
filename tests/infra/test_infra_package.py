"""Function zips: locked dependencies (hashes, Lambda's platform), the same bytes from the
same commit, and the layout Lambda imports from."""

from __future__ import annotations

import re
import subprocess
import sys
import tomllib
import zipfile

import pytest
from packaging.requirements import Requirement

from infra.errors import PackageError
from infra.package import LOCK_FILE, LockedVendor, build_zip, dependencies, lock_python
from tests.infra.conftest import ROOT

PYPROJECT = tomllib.loads((ROOT / "pyproject.toml").read_text())
PIN = re.compile(r"^([A-Za-z0-9_.-]+)==([^\s;]+)", re.MULTILINE)


def locked() -> dict[str, str]:
    text = LOCK_FILE.read_text()
    return {name.lower(): version for name, version in PIN.findall(text)}


def lambda_group() -> list[Requirement]:
    return [Requirement(line) for line in PYPROJECT["dependency-groups"]["lambda"]]


def test_the_lock_says_how_to_regenerate_it_from_pyproject():
    header = LOCK_FILE.read_text().splitlines()[:2]

    assert "uv pip compile --group pyproject.toml:lambda --generate-hashes" in header[1]
    assert "--python-platform x86_64-manylinux2014" in header[1]
    assert f"-o infra/{LOCK_FILE.name}" in header[1]


def test_the_lock_pins_every_lambda_dependency_within_pyprojects_bounds():
    pins = locked()

    for requirement in lambda_group():
        name = requirement.name.lower()
        assert name in pins, f"{name} is in pyproject's lambda group but not in the lock"
        assert requirement.specifier.contains(pins[name]), (
            f"{name}=={pins[name]} is outside pyproject's {requirement.specifier}: "
            "regenerate the lock with the command at its top"
        )
        for extra in requirement.extras:
            assert extra in pins  # redis[hiredis] brings hiredis, which the lock must pin


def test_the_lambda_group_repeats_pyprojects_own_requirements_exactly():
    declared = set(PYPROJECT["project"]["dependencies"]) | set(
        PYPROJECT["project"]["optional-dependencies"]["dev"]
    )

    for line in PYPROJECT["dependency-groups"]["lambda"]:
        assert line in declared, f"{line!r}: not the requirement pyproject gives elsewhere"


def test_every_pin_carries_hashes():
    blocks = re.split(r"\n(?=[A-Za-z0-9_.-]+==)", LOCK_FILE.read_text())

    for block in blocks[1:]:
        assert "--hash=sha256:" in block, block.splitlines()[0]


def test_dependencies_install_only_from_the_lock_for_lambdas_platform(tmp_path):
    command = LockedVendor().command(tmp_path, "python3.11")

    assert {"--require-hashes", "--no-deps", "--only-binary=:all:"} <= set(command)
    assert command[command.index("-r") + 1] == str(LOCK_FILE)
    assert command[command.index("--platform") + 1] == "manylinux2014_x86_64"
    assert command[command.index("--python-version") + 1] == "3.11"


def test_a_runtime_the_lock_was_not_resolved_for_is_refused(tmp_path):
    with pytest.raises(
        PackageError, match=r"resolved for python3\.11, a function declares python3\.12"
    ):
        LockedVendor().__call__(tmp_path, "python3.12")
    assert lock_python() == "3.11"


@pytest.fixture(scope="session")
def two_installs(tmp_path_factory):
    """The locked dependencies installed twice, into two fresh folders (pip, from PyPI)."""
    vendor = LockedVendor()
    return [
        dependencies(tmp_path_factory.mktemp(f"deps-{n}"), "python3.11", vendor) for n in (1, 2)
    ]


@pytest.mark.slow
def test_two_builds_of_one_commit_are_the_same_bytes(two_installs, tmp_path):
    code = ROOT / "functions" / "age_rule"

    first = build_zip("AgeRule", code, tmp_path / "a.zip", two_installs[0])
    second = build_zip("AgeRule", code, tmp_path / "b.zip", two_installs[1])

    assert first.sha256 == second.sha256
    assert (tmp_path / "a.zip").read_bytes() == (tmp_path / "b.zip").read_bytes()


@pytest.mark.slow
def test_the_zip_holds_the_handler_the_shared_package_and_the_pinned_libraries(
    two_installs, tmp_path
):
    artifact = build_zip(
        "AgeRule", ROOT / "functions" / "age_rule", tmp_path / "f.zip", two_installs[0]
    )
    names = zipfile.ZipFile(artifact.path).namelist()

    assert {"handler.py", "rule.py", "credit/__init__.py", "pika/__init__.py"} <= set(names)
    assert f"pika-{locked()['pika']}.dist-info/METADATA" in names
    assert not [n for n in names if n.endswith((".pyc", "template.yaml", "function.json"))]
    unzipped = tmp_path / "task-root"
    zipfile.ZipFile(artifact.path).extractall(unzipped)
    probe = "import credit, handler, pika, pymysql, redis; print(pika.__file__)"
    result = subprocess.run(
        [sys.executable, "-I", "-c", f"import sys; sys.path.insert(0, {str(unzipped)!r}); {probe}"],
        capture_output=True, text=True, check=False, cwd=unzipped,
    )  # fmt: skip
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip().startswith(str(unzipped))


def test_chalices_zip_is_rewritten_the_same_way_every_time(dev_stack, prod_stack):
    # Two chalice package runs (two stages) give the API one zip, byte for byte.
    assert dev_stack.artifacts["APIHandler"].sha256 == prod_stack.artifacts["APIHandler"].sha256
    names = zipfile.ZipFile(dev_stack.artifacts["APIHandler"].path).namelist()
    assert {"app.py", "chalice/app.py", "chalicelib/dependencies.py", "credit/settings.py"} <= set(
        names
    )
    info = zipfile.ZipFile(dev_stack.artifacts["APIHandler"].path).infolist()
    assert {entry.date_time for entry in info} == {(1980, 1, 1, 0, 0, 0)}


def test_the_topology_handler_ships_without_infra(dev_stack):
    names = zipfile.ZipFile(dev_stack.artifacts["TopologyFunction"].path).namelist()

    assert "handler.py" in names and "credit/topology.py" in names
    assert not [n for n in names if n.startswith("infra/")]
