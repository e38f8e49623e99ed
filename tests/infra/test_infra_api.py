"""The API's Chalice stages, and `chalice package` output that cfn-lint accepts."""

from __future__ import annotations

import fnmatch
import json
import shutil
import zipfile
from pathlib import Path
from typing import Any

import boto3
import pytest

from infra import api
from infra.config import StageConfig
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


def secret_statements(policy: dict[str, Any]) -> list[dict[str, Any]]:
    return [s for s in policy["Statement"] if "secretsmanager:GetSecretValue" in s["Action"]]


def assert_functions_hold_no_credentials(template: dict[str, Any], stage: str) -> None:
    """Every Lambda function in the template names the secret and carries no URL."""
    functions = [
        resource["Properties"]
        for resource in template["Resources"].values()
        if resource["Type"] in ("AWS::Serverless::Function", "AWS::Lambda::Function")
    ]
    assert functions
    for function in functions:
        variables = function["Environment"]["Variables"]
        assert variables["CREDIT_SECRET_ID"] == f"credit-{stage}/services"
        assert not {"AMQP_URL", "MYSQL_URL", "REDIS_URL"} & set(variables)
        assert not [value for value in variables.values() if "://" in value]


def assert_roles_may_read_the_secret(template: dict[str, Any], stage: str) -> None:
    roles = [r for r in template["Resources"].values() if r["Type"] == "AWS::IAM::Role"]
    assert roles
    for resource in roles:
        [policy] = resource["Properties"]["Policies"]
        [statement] = secret_statements(policy["PolicyDocument"])
        assert statement["Resource"] == api.secret_resource(f"credit-{stage}/services")


@pytest.fixture
def minimal_app(tmp_path: Path) -> Path:
    """A tiny Chalice app carrying the repository's real .chalice/config.json."""
    app_dir = tmp_path / "api"
    (app_dir / ".chalice").mkdir(parents=True)
    (app_dir / "app.py").write_text(MINIMAL_APP)
    shutil.copy(CONFIG, app_dir / ".chalice" / "config.json")
    return app_dir


@pytest.mark.parametrize("stage", ["dev", "prod"])
def test_stages_name_the_secret_and_carry_no_credentials(stage):
    settings = json.loads(CONFIG.read_text())["stages"][stage]
    variables = settings["environment_variables"]

    assert set(variables) == {"CREDIT_SECRET_ID", "CREDIT_RULES"}
    assert variables["CREDIT_SECRET_ID"] == StageConfig(stage=stage).services_secret_name
    assert variables["CREDIT_RULES"] == "age,value"
    assert not [value for value in variables.values() if "://" in value]
    assert settings["subnet_ids"] and settings["security_group_ids"]
    assert api.secret_warnings(CONFIG, stage) == []


def test_placeholders_are_reported_until_replaced():
    found = api.placeholders(CONFIG, "dev")

    assert "subnet_ids" in found and "security_group_ids" in found
    assert "environment_variables.CREDIT_SECRET_ID" not in found
    assert "environment_variables.CREDIT_RULES" not in found
    assert api.placeholders(CONFIG, "prod").count("subnet_ids") == 1


def test_credentials_in_a_stage_or_a_missing_secret_id_are_warned_about(tmp_path):
    config = {
        "environment_variables": {"MYSQL_URL": "mysql://credit:pw@db/credit"},
        "stages": {
            "dev": {"environment_variables": {"CREDIT_SECRET_ID": "credit-dev/services"}},
            "bare": {},
        },
    }
    path = tmp_path / "config.json"
    path.write_text(json.dumps(config))

    [dev] = api.secret_warnings(path, "dev")
    bare = api.secret_warnings(path, "bare")

    assert dev.startswith("environment_variables.MYSQL_URL would be a Lambda variable")
    assert len(bare) == 2 and "CREDIT_SECRET_ID is not set" in bare[1]


def test_policies_grant_reading_each_stages_secret_and_nothing_else(minimal_app, tmp_path):
    staged = api.stage_app(minimal_app, tmp_path / "staged", skip_dependencies)

    for stage in ("dev", "prod"):
        policy = json.loads((staged / ".chalice" / f"policy-{stage}.json").read_text())
        [statement] = secret_statements(policy)
        assert (
            statement["Resource"]
            == f"arn:*:secretsmanager:*:*:secret:credit-{stage}/services-??????"
        )


def test_the_policy_resource_matches_the_secret_deploy_creates(aws):
    client = boto3.client("secretsmanager", region_name="us-east-1")
    ours = client.create_secret(Name="credit-dev/services", SecretString="{}")["ARN"]
    longer = client.create_secret(Name="credit-dev/services-old", SecretString="{}")["ARN"]
    resource = api.secret_resource("credit-dev/services")

    assert fnmatch.fnmatchcase(ours, resource)  # IAM's * and ? mean what fnmatch's do
    assert not fnmatch.fnmatchcase(longer, resource)
    assert api.secret_resource(ours) == ours


def test_a_stage_without_a_secret_id_gets_no_secret_statement():
    assert secret_statements(api.api_policy(None)) == []
    assert api.api_policy(None) == api.API_POLICY


@pytest.mark.slow
def test_chalice_package_output_passes_cfn_lint(minimal_app, tmp_path):
    result = packaged(minimal_app, tmp_path, "dev")

    assert lint(result.template) == []
    template = json.loads(result.template.read_text())
    handler = template["Resources"]["APIHandler"]["Properties"]
    assert handler["VpcConfig"]["SubnetIds"] == ["subnet-00000000000000000"]
    assert handler["Environment"]["Variables"]["CREDIT_RULES"] == "age,value"
    assert_functions_hold_no_credentials(template, "dev")
    assert_roles_may_read_the_secret(template, "dev")
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
    template = json.loads(result.template.read_text())
    assert_functions_hold_no_credentials(template, stage)
    assert_roles_may_read_the_secret(template, stage)
    with zipfile.ZipFile(result.zip_path) as archive:
        contents = set(archive.namelist())
    assert {"app.py", "credit/__init__.py"} <= contents
