"""AWS limits are checked before any AWS call, and errors name the function and the field."""

from __future__ import annotations

import dataclasses

import pytest

from infra import limits
from infra.config import StageConfig
from infra.deploy import deploy
from infra.errors import LimitError


def with_event_source(spec, **changes):
    return dataclasses.replace(spec, event_source=dataclasses.replace(spec.event_source, **changes))


def problems(specs, config, **kwargs) -> list[str]:
    with pytest.raises(LimitError) as raised:
        limits.check(specs, config, **kwargs)
    return [str(violation) for violation in raised.value.violations]


@pytest.mark.parametrize(
    ("change", "expected"),
    [
        ({"timeout": 841.0}, "function age_rule: timeout: must be 1 to 840 s for an Amazon MQ"),
        ({"timeout": 2.5}, "function age_rule: timeout: Lambda takes whole seconds, got 2.5"),
        ({"memory_size": 64}, "function age_rule: memory_size: must be 128 to 10240 MB, got 64"),
        ({"memory_size": 10241}, "function age_rule: memory_size: must be 128 to 10240 MB"),
        ({"runtime": "python3.9"}, "function age_rule: runtime: must be one of python3.10"),
        ({"name": "a" * 60}, "name: 'credit-test-" + "a" * 60 + "' is over 64 characters"),
        ({"environment": {"BIG": "x" * 5000}}, "function age_rule: environment: is 5"),
        (
            {"environment": {"MYSQL_URL": "mysql://u:p@db/credit"}},
            "function age_rule: environment.MYSQL_URL: credentials never go into Lambda",
        ),
        (
            {"environment": {"AMQP_URL": "amqps://u:p@mq:5671/%2F"}},
            "function age_rule: environment.AMQP_URL: credentials never go into Lambda",
        ),
        (
            {"environment": {"CREDIT_SECRET_ID": "elsewhere"}},
            "function age_rule: environment.CREDIT_SECRET_ID: is set by deploy",
        ),
    ],
)
def test_function_limits_name_function_and_field(specs, config, change, expected):
    spec = dataclasses.replace(specs[0], **change)

    found = problems([spec], config)

    assert len(found) == 1 and expected in found[0]


def test_environment_size_counts_the_secret_id_deploy_adds(specs, config):
    declared = {"BIG": "x" * (limits.MAX_ENVIRONMENT_BYTES - len("BIG") - 16)}
    spec = dataclasses.replace(specs[0], environment=declared)

    found = problems([spec], config)

    assert len(found) == 1 and "function age_rule: environment: is " in found[0]


def test_timeout_limit_is_15_minutes_without_an_mq_trigger(specs, config):
    plain = dataclasses.replace(specs[0], timeout=900.0, event_source=None)

    limits.check([plain], config)


@pytest.mark.parametrize(
    ("change", "expected"),
    [
        ({"batch_size": 10_001}, "event_source.batch_size: must be 1 to 10000, got 10001"),
        ({"batch_size": 0}, "event_source.batch_size: must be 1 to 10000, got 0"),
        ({"maximum_batching_window": 301.0}, "maximum_batching_window: must be 0 to 300 s"),
        ({"maximum_batching_window": 1.5}, "AWS takes whole seconds (or the 0.5 s default)"),
    ],
)
def test_event_source_limits_name_function_and_field(specs, config, change, expected):
    found = problems([with_event_source(specs[1], **change)], config)

    assert len(found) == 1
    assert found[0].startswith("function value_rule: event_source.")
    assert expected in found[0]


def test_every_violation_is_reported_at_once(specs, config):
    age = dataclasses.replace(specs[0], timeout=900.0, memory_size=1)
    value = with_event_source(specs[1], batch_size=20_000)

    found = problems([age, value], config)

    assert [f.split(":")[0:2] for f in found] == [
        ["function age_rule", " timeout"],
        ["function age_rule", " memory_size"],
        ["function value_rule", " event_source.batch_size"],
    ]


def test_oversized_zip_is_refused(specs, config):
    found = problems(specs[:1], config, zip_sizes={"age_rule": (60 * 1024 * 1024, 1)})

    assert found == ["function age_rule: package: zip is 62914560 bytes, over 52428800"]


@pytest.mark.parametrize(
    ("change", "expected"),
    [
        ({"stage": "Prod"}, "option --stage: stage: must be 1-20"),
        ({"security_group_ids": ()}, "give both subnets and security groups, or neither"),
        (
            {"security_group_ids": (), "subnet_ids": ()},
            "VpcConfig: is required: ElastiCache and a private broker are reachable only inside",
        ),
        ({"mysql_url": None}, "option --mysql-url: MYSQL_URL: is required: infra creates no"),
        ({"redis_url": "redis://127.0.0.1:6379/0"}, "REDIS_URL: 127.0.0.1 is not reachable"),
        (
            {"broker_deployment_mode": "CLUSTER_MULTI_AZ"},
            "option --broker-instance-type: HostInstanceType: mq.t3.micro is single-instance",
        ),
    ],
)
def test_option_problems_name_the_option(config, change, expected):
    found = problems([], dataclasses.replace(config, **change))

    assert len(found) == 1 and expected in found[0]


def test_service_urls_are_not_required_for_a_dry_run():
    limits.check([], StageConfig(stage="dev"), require_services=False)


def test_deploy_checks_limits_before_calling_aws(specs, artifacts, config, clients, calls):
    bad = with_event_source(specs[0], batch_size=10_001)

    with pytest.raises(LimitError, match=r"age_rule: event_source\.batch_size"):
        deploy([bad, specs[1]], artifacts, config, clients)
    assert calls.operations == []


def test_the_repository_declarations_are_within_limits(specs, config):
    limits.check(specs, config)
    assert limits.batching_window(specs[0]) == 0  # declared: invoke as soon as messages wait
