"""The plan: one line per resource saying what deploy or teardown does (or did) to it."""

from __future__ import annotations

import enum
from collections import Counter
from dataclasses import dataclass, field


class Action(enum.StrEnum):
    """What happens to one resource."""

    CREATE = "create"
    UPDATE = "update"
    REPLACE = "replace"
    UNCHANGED = "unchanged"
    DELETE = "delete"
    ABSENT = "absent"
    SKIP = "skip"

    @property
    def writes(self) -> bool:
        return self in (Action.CREATE, Action.UPDATE, Action.REPLACE, Action.DELETE)


@dataclass(frozen=True)
class Change:
    """One resource, the action on it and, for updates and skips, why."""

    kind: str
    name: str
    action: Action
    detail: str = ""

    def render(self) -> str:
        line = f"  {self.action.value:<10} {self.kind:<16} {self.name}"
        return f"{line}  ({self.detail})" if self.detail else line


@dataclass
class Plan:
    """The changes in the order they are applied, plus warnings worth reading before applying."""

    dry_run: bool
    changes: list[Change] = field(default_factory=list)
    warnings: list[str] = field(default_factory=list)

    def add(self, change: Change) -> Change:
        self.changes.append(change)
        return change

    @property
    def changed(self) -> bool:
        return any(change.action.writes for change in self.changes)

    def find(self, kind: str, name: str) -> Change:
        """The change for one resource; KeyError when the plan has none."""
        for change in self.changes:
            if (change.kind, change.name) == (kind, name):
                return change
        raise KeyError(f"{kind} {name}")

    def summary(self) -> str:
        counts = Counter(change.action.value for change in self.changes)
        parts = [f"{counts[a.value]} {a.value}" for a in Action if counts[a.value]]
        return ", ".join(parts) or "nothing to do"

    def render(self, title: str) -> str:
        mode = "plan (dry run: nothing was changed)" if self.dry_run else "applied"
        lines = [f"{title}: {mode}"]
        lines += [change.render() for change in self.changes]
        lines += [f"  warning: {warning}" for warning in self.warnings]
        lines.append(f"  {self.summary()}")
        return "\n".join(lines)
