"""Teardown: delete what deploy created for a stage, found by name and tags; safe to repeat."""

from __future__ import annotations

import logging
from collections.abc import Sequence

from infra.clients import Clients
from infra.config import StageConfig
from infra.plan import Action, Change, Plan
from infra.resources import broker, function, mapping, role, secret
from local_runtime.declaration import FunctionSpec

LOGGER = logging.getLogger(__name__)


def teardown(
    specs: Sequence[FunctionSpec], config: StageConfig, clients: Clients, dry_run: bool = False
) -> Plan:
    """Mappings, functions, role, the stage's own broker, then the secrets; absent ones reported."""
    plan = Plan(dry_run)
    owned = function.owned(clients.lambda_, config)
    for name in owned:
        plan.changes += mapping.delete_all(clients.mappings, name, dry_run)
        plan.add(function.delete(clients.lambda_, name, dry_run))
    for spec in specs:
        name = config.function_name(spec.name)
        if name not in owned:
            plan.add(Change(function.KIND, name, Action.ABSENT))
    plan.changes += role.delete(clients.iam, config, dry_run)
    if config.manages_broker:
        plan.add(broker.delete(clients.mq, config, dry_run))
    plan.add(secret.delete(clients.secrets, config, config.secret_name, dry_run))
    plan.add(secret.delete(clients.secrets, config, config.services_secret_name, dry_run))
    return plan
