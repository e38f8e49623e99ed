"""The one error a declaration raises: what is wrong, and where (file, resource, property)."""

from __future__ import annotations


class TemplateError(ValueError):
    """A template AWS would refuse, or one the local runtime cannot run.

    `where` names the place as a person finds it in the template: the file, then the
    resource's logical id and the property path (`AgeRule: Properties.Timeout`).
    """

    def __init__(self, where: str, problem: str) -> None:
        self.where, self.problem = where, problem
        super().__init__(f"{where}: {problem}" if where else problem)
