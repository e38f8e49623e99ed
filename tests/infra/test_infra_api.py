"""The API's Chalice stages, and `chalice package` output that cfn-lint accepts."""

from __future__ import annotations

import json
import shutil
import zipfile
from pathlib import Path

import pytest

from infra import api
from infra.errors import PackageError
from infra.package import skip_dependencies

CONFIG = api.API_DIR / ".chalice" / "config.json"
MINIMAL_APP = '''"""A minimal app standing in for functions/api/app.py."""
from chalice import Chalice

import credit

app = Chalice(app_name="credit-api")


@app.route("/health")
def health():
    return {"ok": credit.__name__ == "credit"}
'''


def lint(template: Path) -> list[str]:
    cfnlint_api = pytest.importorskip("cfnlint.api", reason="cfn-lint is not installed")
    return [str(match) for match in cfnlint_api.lint(template.read_text())]


def packaged(app_dir: Path, tmp_path: Path, stage: str) -> api.ApiPackage:
    return api.package(
        tmp_path / "out", stage, app_dir, build_dir=tmp_path / "build", vendor=skip_dependencies
    )


@pytest.fixture
def minimal_app(tmp_path: Path) -> Path:
    """A tiny Chalice app carrying the repository's real .chalice/config.json."""
    app_dir = tmp_path / "api"
    (app_dir / ".chalice").mkdir(parents=True)
    (app_dir / "app.py").write_text(MINIMAL_APP)
    shutil.copy(CONFIG, app_dir / ".chalice" / "config.json")
    return app_dir


@pytest.mark.parametrize("stage", ["dev", "prod"])
def test_stages_carry_service_urls_rules_and_vpc_settings(stage):
    settings = json.loads(CONFIG.read_text())["stages"][stage]

    assert set(settings["environment_variables"]) == {
        "AMQP_URL", "REDIS_URL", "MYSQL_URL", "CREDIT_RULES"
    }  # fmt: skip
    assert settings["environment_variables"]["CREDIT_RULES"] == "age,value"
    assert settings["environment_variables"]["AMQP_URL"].startswith("amqps://")
    assert settings["subnet_ids"] and settings["security_group_ids"]


def test_placeholders_are_reported_until_replaced():
    found = api.placeholders(CONFIG, "dev")

    assert "environment_variables.MYSQL_URL" in found
    assert "subnet_ids" in found and "security_group_ids" in found
    assert "environment_variables.CREDIT_RULES" not in found
    assert api.placeholders(CONFIG, "prod").count("subnet_ids") == 1


@pytest.mark.slow
def test_chalice_package_output_passes_cfn_lint(minimal_app, tmp_path):
    result = packaged(minimal_app, tmp_path, "dev")

    assert lint(result.template) == []
    template = json.loads(result.template.read_text())
    handler = template["Resources"]["APIHandler"]["Properties"]
    assert handler["VpcConfig"]["SubnetIds"] == ["subnet-00000000000000000"]
    assert handler["Environment"]["Variables"]["CREDIT_RULES"] == "age,value"
    with zipfile.ZipFile(result.zip_path) as archive:
        contents = set(archive.namelist())
    assert {"app.py", "credit/__init__.py", "credit/settings.py", "chalice/app.py"} <= contents


def test_packaging_leaves_the_source_tree_untouched(minimal_app, tmp_path):
    before = sorted(p.relative_to(minimal_app) for p in minimal_app.rglob("*"))

    packaged(minimal_app, tmp_path, "dev")

    assert sorted(p.relative_to(minimal_app) for p in minimal_app.rglob("*")) == before
    staged = tmp_path / "build" / "app"
    assert (staged / ".chalice" / "policy-dev.json").is_file()
    assert (staged / "vendor" / "credit" / "__init__.py").is_file()


def test_requirements_are_vendored_not_left_to_chalice(minimal_app, tmp_path):
    (minimal_app / "requirements.txt").write_text("simplejson==3.19.3  # for speed\n")
    asked: list[str] = []

    def vendor(requirements, target, runtime):
        asked.extend(requirements)

    staged = api.stage_app(minimal_app, tmp_path / "staged", vendor)

    assert asked[-1] == "simplejson==3.19.3" and "pika>=1.3,<2" in asked
    assert not [
        line
        for line in (staged / "requirements.txt").read_text().splitlines()
        if not line.startswith("#")
    ]


def test_missing_app_is_a_clear_error(tmp_path):
    with pytest.raises(PackageError, match=r"app\.py does not exist yet"):
        api.package(tmp_path / "out", api_dir=tmp_path)


@pytest.mark.slow
@pytest.mark.skipif(
    not (api.API_DIR / "app.py").is_file(), reason="functions/api/app.py is not written yet"
)
@pytest.mark.parametrize("stage", ["dev", "prod"])
def test_the_real_api_packages_and_passes_cfn_lint(tmp_path, stage):
    result = packaged(api.API_DIR, tmp_path, stage)

    assert lint(result.template) == []
    with zipfile.ZipFile(result.zip_path) as archive:
        contents = set(archive.namelist())
    assert {"app.py", "credit/__init__.py"} <= contents
