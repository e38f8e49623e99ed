"""The stage's template: one stack from the SAM declarations and Chalice, what each resource
is given, and cfn-lint's verdict on it."""

from __future__ import annotations

import json
import shutil
from typing import Any

import pytest
from cfnlint.api import ManualArgs, lint

from declarations.reader import read
from infra.config import LOG_RETENTION
from infra.deploy import build
from infra.errors import LimitError
from infra.package import no_dependencies
from infra.template import NETWORK_ACTIONS, SERVERLESS_FUNCTION, Declarations, check_parameters
from tests.infra.conftest import ROOT, named, stage

RULE_FUNCTIONS = ("AgeRule", "ValueRule")
CHALICE_FUNCTIONS = ("APIHandler", "Relay")


def resources(built: Any, kind: str | None = None) -> dict[str, Any]:
    found: dict[str, Any] = built.template["Resources"]
    return {lid: r for lid, r in found.items() if kind is None or r["Type"] == kind}


def statements(built: Any, function: str) -> list[dict[str, Any]]:
    role = resources(built)[f"{function}ExecutionRole"]
    [policy] = role["Properties"]["Policies"]
    result: list[dict[str, Any]] = policy["PolicyDocument"]["Statement"]
    return result


def actions(built: Any, function: str) -> set[str]:
    found: set[str] = set()
    for statement in statements(built, function):
        action = statement["Action"]
        found |= {action} if isinstance(action, str) else set(action)
    return found


@pytest.mark.parametrize("which", ["dev_stack", "prod_stack"])
def test_cfn_lint_finds_no_error_or_warning_in_the_template(which, request):
    built = request.getfixturevalue(which)

    # Regions where the stack's smallest broker (mq.t3.micro) is offered.
    regions = ["us-east-1", "eu-west-1"]
    matches = lint(json.dumps(built.template), config=ManualArgs(regions=regions))

    # Errors and warnings; informational rules (I...) are opinions, not defects.
    assert [str(match) for match in matches if match.rule.id[0] in "EW"] == []


def test_the_stack_holds_every_declared_function_and_chalices_once(dev_stack):
    functions = set(resources(dev_stack, SERVERLESS_FUNCTION))

    assert functions == {*RULE_FUNCTIONS, *CHALICE_FUNCTIONS, "TopologyFunction"}
    # CreditApi is the local runtime's view of the app Chalice deploys as APIHandler.
    assert "CreditApi" not in dev_stack.template["Resources"]
    assert resources(dev_stack, "AWS::Serverless::Api").keys() == {"RestAPI"}


def test_rule_functions_keep_their_declared_mq_events(dev_stack):
    for function, queue in (("AgeRule", "rule.age"), ("ValueRule", "rule.value")):
        [event] = resources(dev_stack)[function]["Properties"]["Events"].values()

        assert event["Type"] == "MQ"
        assert event["Properties"]["Queues"] == [queue]
        assert event["Properties"]["BatchSize"] == 100
        assert event["Properties"]["MaximumBatchingWindowInSeconds"] == 0
        assert event["Properties"]["Broker"] == {
            "Fn::If": [
                "CreateBroker",
                {"Fn::GetAtt": ["Broker", "Arn"]},
                {"Ref": "ExistingBrokerArn"},
            ]
        }


def test_each_function_has_a_role_of_its_own_with_only_what_it_uses(dev_stack):
    roles = {
        function: resources(dev_stack)[function]["Properties"]["Role"]
        for function in resources(dev_stack, SERVERLESS_FUNCTION)
    }
    base = {
        "logs:CreateLogStream",
        "logs:PutLogEvents",
        "secretsmanager:GetSecretValue",
        *NETWORK_ACTIONS,
    }

    assert len({json.dumps(role) for role in roles.values()}) == len(roles)
    for function in RULE_FUNCTIONS:
        assert actions(dev_stack, function) == base | {"mq:DescribeBroker"}
    for function in (*CHALICE_FUNCTIONS, "TopologyFunction"):
        assert actions(dev_stack, function) == base
    for function in roles:
        for statement in statements(dev_stack, function):
            if statement["Resource"] == "*":
                assert statement["Action"] == NETWORK_ACTIONS  # EC2 grants no narrower
    # Chalice's own roles are gone: nothing refers to them any more.
    assert set(resources(dev_stack, "AWS::IAM::Role")) == {f"{f}ExecutionRole" for f in roles}


def test_rule_functions_may_read_the_broker_secret_and_only_they(dev_stack):
    broker_user = {
        "Fn::If": ["CreateBroker", {"Ref": "BrokerSecret"}, {"Ref": "ExistingBrokerSecretArn"}]
    }
    for function in resources(dev_stack, SERVERLESS_FUNCTION):
        granted = [
            statement["Resource"]
            for statement in statements(dev_stack, function)
            if statement["Action"] == "secretsmanager:GetSecretValue"
        ]
        expected = [{"Ref": "ServicesSecret"}]
        if function in RULE_FUNCTIONS:
            expected.append(broker_user)
        assert granted == expected, function


def test_every_function_logs_to_its_own_group_with_retention(dev_stack):
    for function, resource in resources(dev_stack, SERVERLESS_FUNCTION).items():
        group = resources(dev_stack)[f"{function}LogGroup"]

        assert group["Type"] == "AWS::Logs::LogGroup"
        assert group["Properties"]["RetentionInDays"] == {"Ref": LOG_RETENTION}
        assert resource["Properties"]["LoggingConfig"]["LogGroup"] == {"Ref": f"{function}LogGroup"}
    assert dev_stack.template["Globals"]["Function"]["LoggingConfig"]["LogFormat"] == "Text"


def test_retention_days_follow_the_stage():
    assert stage("dev").parameters()[LOG_RETENTION] == "14"
    assert stage("prod").parameters()[LOG_RETENTION] == "90"
    assert stage("dev", log_retention_days=30).parameters()[LOG_RETENTION] == "30"
    document = Declarations.load(ROOT).document
    check_parameters(document, stage("dev").parameters())
    with pytest.raises(LimitError, match="parameter LogRetentionDays: '10': must be one of 1, 3"):
        check_parameters(document, stage("dev", log_retention_days=10).parameters())
    with pytest.raises(LimitError, match="parameter DatabaseSecretArn: 'x': must match"):
        check_parameters(document, stage("dev", database_secret_arn="x").parameters())


def test_production_retains_the_broker_and_secrets_and_dev_does_not(dev_stack, prod_stack):
    kept = ("Broker", "BrokerSecret", "ServicesSecret")
    for logical_id in kept:
        prod = resources(prod_stack)[logical_id]
        dev = resources(dev_stack)[logical_id]

        assert (prod["DeletionPolicy"], prod["UpdateReplacePolicy"]) == ("Retain", "Retain")
        assert "DeletionPolicy" not in dev and "UpdateReplacePolicy" not in dev
    assert stage("staging", production=True).is_production


def test_no_secret_in_a_parameter_or_a_function_variable(dev_stack):
    parameters = stage("dev").parameters()
    declared = {"AgeRule": {"MIN_AGE"}, "ValueRule": {"MAX_VALUE"}}

    assert all(not name.lower().endswith("password") for name in dev_stack.template["Parameters"])
    assert all("resolve:" not in value for value in parameters.values())
    for function, resource in resources(dev_stack, SERVERLESS_FUNCTION).items():
        variables = resource["Properties"]["Environment"]["Variables"]
        assert variables["CREDIT_SECRET_ID"] == {"Ref": "ServicesSecret"}
        assert set(variables) - {"CREDIT_SECRET_ID", "CREDIT_RULES"} == declared.get(
            function, set()
        )
        assert "resolve:" not in json.dumps(variables)
    # Passwords are read by CloudFormation itself, only where AWS takes them.
    text = {lid: json.dumps(r) for lid, r in resources(dev_stack).items()}
    assert {lid for lid, body in text.items() if "{{resolve:secretsmanager" in body} == {
        "Broker",
        "ServicesSecret",
    }
    generated = resources(dev_stack)["BrokerSecret"]["Properties"]["GenerateSecretString"]
    assert generated["GenerateStringKey"] == "password"


def test_the_services_secret_names_the_settings_credit_reads(dev_stack):
    secret = resources(dev_stack)["ServicesSecret"]["Properties"]["SecretString"]
    text, _variables = secret["Fn::Sub"]

    document = json.loads(text.replace("${BrokerUser}", "u").replace("${BrokerHost}", "h"))
    assert set(document) == {"AMQP_URL", "MYSQL_URL", "REDIS_URL"}
    assert document["AMQP_URL"].startswith("amqps://")


def test_the_topology_resource_declares_the_consumed_rules(dev_stack):
    topology = resources(dev_stack)["BrokerTopology"]

    assert topology["Type"] == "Custom::BrokerTopology"
    assert topology["Properties"]["Rules"] == ["age", "value"]
    assert topology["Properties"]["ServiceToken"] == {"Fn::GetAtt": ["TopologyFunction", "Arn"]}


def test_functions_start_once_the_topology_exists(dev_stack):
    for function, resource in resources(dev_stack, SERVERLESS_FUNCTION).items():
        if function == "TopologyFunction":
            assert "DependsOn" not in resource
        else:
            assert "BrokerTopology" in resource["DependsOn"], function


def test_code_is_named_by_its_hash_and_chalices_functions_share_one_zip(dev_stack):
    for function, resource in resources(dev_stack, SERVERLESS_FUNCTION).items():
        artifact = dev_stack.artifacts[function]
        assert resource["Properties"]["CodeUri"] == named(artifact)
    assert dev_stack.artifacts["APIHandler"] is dev_stack.artifacts["Relay"]


def test_the_root_template_still_reads_locally_without_warnings():
    project = read(ROOT)

    assert project.warnings == ()
    assert set(project.functions) == {"AgeRule", "ValueRule", "CreditApi"}


def test_a_removed_rule_the_api_still_requires_is_refused_before_any_call(project_copy, tmp_path):
    shutil.rmtree(project_copy / "functions" / "value_rule")

    with pytest.raises(LimitError, match=r"CREDIT_RULES.*value.*PENDING"):
        build(project_copy, stage("dev"), tmp_path / "build", no_dependencies, named)


def test_a_removed_function_leaves_the_template_with_its_mapping(project_copy, tmp_path):
    shutil.rmtree(project_copy / "functions" / "value_rule")
    config = project_copy / "functions" / "api" / ".chalice" / "config.json"
    config.write_text(config.read_text().replace('"age,value"', '"age"'))

    built = build(project_copy, stage("dev"), tmp_path / "build", no_dependencies, named)

    assert "ValueRule" not in built.template["Resources"]
    assert not [lid for lid in built.template["Resources"] if lid.startswith("ValueRule")]
    assert built.template["Resources"]["BrokerTopology"]["Properties"]["Rules"] == ["age"]


def test_credentials_declared_as_a_variable_are_refused(project_copy, tmp_path):
    fragment = project_copy / "functions" / "age_rule" / "template.yaml"
    fragment.write_text(
        fragment.read_text().replace('MIN_AGE: "18"', 'MIN_AGE: "18"\n          MYSQL_URL: x')
    )

    with pytest.raises(LimitError, match=r"MYSQL_URL.*never go into a Lambda variable"):
        build(project_copy, stage("dev"), tmp_path / "build", no_dependencies, named)


def test_options_aws_would_refuse_are_named_together():
    config = stage("Dev!", subnet_ids=(), database_secret_arn="")

    with pytest.raises(LimitError) as raised:
        config.check()

    fields = {violation.field for violation in raised.value.violations}
    assert fields == {"stage", "VpcConfig", "DatabaseSecretArn"}


def test_the_template_command_prints_the_same_template(capsys, tmp_path):
    from infra.cli import main

    status = main(
        [
            "template", "--skip-deps", "--build-dir", str(tmp_path), "--subnet-ids",
            ",".join(stage().subnet_ids), "--security-group-ids", "sg-0a1b2c3d4e5f60718",
            "--database-secret-arn", stage().database_secret_arn,
        ]
    )  # fmt: skip

    assert status == 0
    printed = json.loads(capsys.readouterr().out)
    assert set(printed["Resources"]) >= {"AgeRule", "ValueRule", "APIHandler", "BrokerTopology"}
    assert (tmp_path / "AgeRule.zip").is_file()
