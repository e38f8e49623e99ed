"""Helpers every resource module shares: AWS error codes and placeholders for dry runs."""

from __future__ import annotations

from botocore.exceptions import ClientError

from infra.errors import DeployError

PENDING_PREFIX = "<pending:"


def error_code(exc: ClientError) -> str:
    return str(exc.response.get("Error", {}).get("Code", ""))


def is_not_found(exc: ClientError) -> bool:
    return error_code(exc) in {"ResourceNotFoundException", "NoSuchEntity", "NotFoundException"}


def pending(kind: str, name: str) -> str:
    """Stands in for the ARN of a resource a dry run would create."""
    return f"{PENDING_PREFIX} {kind} {name}>"


def is_pending(value: str) -> bool:
    return value.startswith(PENDING_PREFIX)


def failed(action: str, kind: str, name: str, exc: ClientError) -> DeployError:
    """A DeployError naming what was being done to which resource, and AWS's reason."""
    message = exc.response.get("Error", {}).get("Message", str(exc))
    return DeployError(f"could not {action} {kind} {name}: {error_code(exc)}: {message}")
