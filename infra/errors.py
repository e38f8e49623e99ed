"""The deploy layer's own errors; AWS and pika failures are turned into these with context."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass


class InfraError(Exception):
    """Base of every error infra raises on purpose; the CLI prints it as one line."""


@dataclass(frozen=True)
class Violation:
    """One value AWS would refuse, named by its subject (a function or an option) and field."""

    subject: str
    field: str
    problem: str

    def __str__(self) -> str:
        return f"{self.subject}: {self.field}: {self.problem}"


class LimitError(InfraError):
    """The declarations or options break AWS limits; raised before any AWS call is made."""

    def __init__(self, violations: Sequence[Violation]) -> None:
        self.violations = list(violations)
        lines = "\n".join(f"  {violation}" for violation in self.violations)
        super().__init__(f"{len(self.violations)} problem(s), nothing was changed:\n{lines}")


class DeployError(InfraError):
    """A resource could not be read, created, updated or deleted."""


class PackageError(InfraError):
    """A function zip or the API package could not be built."""
