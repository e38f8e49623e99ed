"""Deploy: from the declarations to secrets, broker, role, functions, mappings and topology."""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass

from infra import limits
from infra.clients import Clients
from infra.config import StageConfig
from infra.errors import Violation
from infra.package import Artifact
from infra.plan import Action, Change, Plan
from infra.resources import broker, function, mapping, role, secret, topology
from infra.resources.common import is_pending
from local_runtime.declaration import FunctionSpec

LOGGER = logging.getLogger(__name__)


@dataclass(frozen=True)
class Options:
    """How to run a deploy; `connect` replaces the TLS connection to the broker (tests)."""

    dry_run: bool = False
    apply_topology: bool = False
    wait_for_broker: bool = True
    connect: topology.Connect | None = None
    sleep: Callable[[float], None] = time.sleep


def deploy(
    specs: Sequence[FunctionSpec],
    artifacts: Mapping[str, Artifact],
    config: StageConfig,
    clients: Clients,
    options: Options | None = None,
) -> Plan:
    """Create or update everything; with dry_run only read APIs are called. Idempotent."""
    options = options or Options()
    sizes = {name: (a.size, a.unzipped_size) for name, a in artifacts.items()}
    limits.check(specs, config, sizes, require_services=not options.dry_run)
    plan = Plan(options.dry_run, warnings=warnings(specs, config))
    secret_ref, broker_ref = _broker(plan, clients, config, options)
    broker_ref = _ready_broker(clients, broker_ref, specs, options)
    services_arn = _services_secret(plan, clients, specs, config, secret_ref, broker_ref, options)
    policy = role.execution_policy(config, secret_ref.arn, broker_ref.arn, services_arn)
    role_changes, role_arn = role.ensure(clients.iam, config, policy, options.dry_run)
    plan.changes += role_changes
    if options.apply_topology:  # before the mappings, so they never poll a missing queue
        plan.changes += _apply_topology(specs, broker_ref, secret_ref, options)
    for spec in specs:
        artifact = artifacts[spec.name]
        plan.add(_deploy_function(clients, spec, config, artifact, role_arn, services_arn, options))
        if spec.event_source is not None:
            plan.add(_deploy_mapping(clients, spec, config, broker_ref, secret_ref, plan, options))
    return plan


def warnings(specs: Sequence[FunctionSpec], config: StageConfig) -> list[str]:
    """Things that deploy but behave differently on AWS than locally, or are not usable yet."""
    found = [
        f"{spec.name}: event_source.concurrency {spec.event_source.concurrency} is local only; "
        "AWS runs one poller per mapping"
        for spec in specs
        if spec.event_source is not None and spec.event_source.concurrency > 1
    ]
    found += [str(v) for v in limits.config_violations(config) if _is_missing_setting(v)]
    return found


def _is_missing_setting(violation: Violation) -> bool:
    """Settings a real deploy requires but a dry run can do without."""
    return violation.problem.startswith("is required")


def _broker(
    plan: Plan, clients: Clients, config: StageConfig, options: Options
) -> tuple[secret.SecretRef, broker.BrokerRef]:
    """The broker user's secret, then the broker it is a user of."""
    secret_change, secret_ref = secret.ensure(clients.secrets, config, options.dry_run)
    plan.add(secret_change)
    broker_change, broker_ref = broker.ensure(
        clients.mq, config, secret_ref.credentials, options.dry_run
    )
    plan.add(broker_change)
    return secret_ref, broker_ref


def service_settings(
    specs: Sequence[FunctionSpec],
    config: StageConfig,
    secret_ref: secret.SecretRef,
    broker_ref: broker.BrokerRef,
) -> dict[str, str | None]:
    """The services secret's value; AMQP_URL only once the broker has an amqps endpoint."""
    endpoint = broker_ref.amqp_endpoint
    amqp_url = None
    if endpoint is not None:
        vhost = topology.default_vhost(specs)
        amqp_url = topology.amqp_url(endpoint, secret_ref.credentials, vhost)
    return config.service_settings(amqp_url)


def _services_secret(
    plan: Plan,
    clients: Clients,
    specs: Sequence[FunctionSpec],
    config: StageConfig,
    secret_ref: secret.SecretRef,
    broker_ref: broker.BrokerRef,
    options: Options,
) -> str:
    """The secret the functions' CREDIT_SECRET_ID names; returns its ARN."""
    wanted = service_settings(specs, config, secret_ref, broker_ref)
    change, arn = secret.ensure_services(clients.secrets, config, wanted, options.dry_run)
    plan.add(change)
    return arn


def _ready_broker(
    clients: Clients, ref: broker.BrokerRef, specs: Sequence[FunctionSpec], options: Options
) -> broker.BrokerRef:
    """Wait for a new broker before the mappings and the topology need it."""
    needed = any(spec.event_source is not None for spec in specs)
    if options.dry_run or not needed or ref.state == broker.RUNNING or not options.wait_for_broker:
        return ref
    return broker.wait_until_running(clients.mq, ref, sleep=options.sleep)


def _deploy_function(
    clients: Clients,
    spec: FunctionSpec,
    config: StageConfig,
    artifact: Artifact,
    role_arn: str,
    secret_id: str,
    options: Options,
) -> Change:
    change, _ = function.ensure(
        clients.lambda_,
        spec,
        config,
        artifact,
        role_arn,
        secret_id,
        options.dry_run,
        options.sleep,
    )
    return change


def _deploy_mapping(
    clients: Clients,
    spec: FunctionSpec,
    config: StageConfig,
    broker_ref: broker.BrokerRef,
    secret_ref: secret.SecretRef,
    plan: Plan,
    options: Options,
) -> Change:
    name = config.function_name(spec.name)
    desired = mapping.desired_mapping(spec, name, broker_ref.arn, secret_ref.arn)
    if not options.dry_run and broker_ref.state != broker.RUNNING:
        return Change(
            mapping.KIND,
            mapping.label(desired),
            Action.SKIP,
            "broker not running yet: deploy again",
        )
    exists = plan.find(function.KIND, name).action is not Action.CREATE  # a new one has none
    return mapping.ensure(clients.mappings, desired, exists, options.dry_run)


def _apply_topology(
    specs: Sequence[FunctionSpec],
    broker_ref: broker.BrokerRef,
    secret_ref: secret.SecretRef,
    options: Options,
) -> list[Change]:
    connect = options.connect
    if connect is None:
        endpoint = broker_ref.amqp_endpoint
        if is_pending(broker_ref.arn) or endpoint is None:
            action = Action.CREATE if options.dry_run else Action.SKIP
            return [
                Change(topology.KIND, f"vhost {vhost}", action, "once the broker runs")
                for vhost in sorted(topology.queues_by_vhost(specs))
            ]
        connect = topology.connector(endpoint, secret_ref.credentials)
    return topology.ensure(connect, specs, options.dry_run)
