"""CloudFormation's intrinsic functions, resolved the way they resolve for a local stack.

Parameters take their override or their Default; pseudo parameters come from the chosen
region, account and stack name; `Ref` and `Fn::GetAtt` of a resource give the name or ARN the
resource has locally; `Fn::ImportValue` takes the value given for its export name (another
stack's output has no local value otherwise). What cannot have a local value (an export not
given, `Fn::Cidr`, a parameter without Default or override) is an error naming where it was
met, raised only when a value the runtime needs depends on it.
"""

from __future__ import annotations

import base64
import json
import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

from declarations.errors import TemplateError

NO_VALUE = object()  # AWS::NoValue: the property or list item is left out
_SUB_VARIABLE = re.compile(r"\$\{([^}]*)\}")


@dataclass
class Stack:
    """The identity of the local stack the template is read as."""

    region: str
    account: str
    name: str

    @property
    def partition(self) -> str:
        if self.region.startswith("cn-"):
            return "aws-cn"
        if self.region.startswith("us-gov-"):
            return "aws-us-gov"
        return "aws"

    @property
    def url_suffix(self) -> str:
        return "amazonaws.com.cn" if self.partition == "aws-cn" else "amazonaws.com"

    def arn(self, service: str, resource: str, region: bool = True) -> str:
        where = self.region if region else ""
        return f"arn:{self.partition}:{service}:{where}:{self.account}:{resource}"


@dataclass
class Resolver:
    """Resolves intrinsic functions in template values.

    `ref` and `get_att` give a resource's local physical name and attributes; they are the
    reader's, since only it knows what each resource type returns.
    """

    body: Mapping[str, Any]
    stack: Stack
    parameters: Mapping[str, Any]
    ref: Callable[[str], Any]
    get_att: Callable[[str, str], Any]
    exports: Mapping[str, str] = field(default_factory=dict)
    _conditions: dict[str, bool] = field(default_factory=dict)

    def resolve(self, value: Any, where: str) -> Any:
        """The value with every intrinsic replaced; NO_VALUE where AWS::NoValue left it out."""
        if isinstance(value, list):
            items = [self.resolve(item, f"{where}[{i}]") for i, item in enumerate(value)]
            return [item for item in items if item is not NO_VALUE]
        if not isinstance(value, dict):
            return value
        if len(value) == 1:
            ((key, argument),) = value.items()
            function = _FUNCTIONS.get(key)
            if function is not None:
                return function(self, argument, f"{where}.{key}")
        resolved = {k: self.resolve(v, f"{where}.{k}") for k, v in value.items()}
        return {k: v for k, v in resolved.items() if v is not NO_VALUE}

    def condition(self, name: str, where: str) -> bool:
        """A named condition of the Conditions section, evaluated once."""
        if name not in self._conditions:
            conditions = self.body.get("Conditions", {}) or {}
            if name not in conditions:
                raise TemplateError(where, f"no condition named {name!r}")
            self._conditions[name] = _truth(self.resolve(conditions[name], f"Conditions.{name}"))
        return self._conditions[name]

    def text(self, value: Any, where: str) -> str:
        """A value that must come out as a string (numbers and booleans as CloudFormation
        writes them)."""
        resolved = self.resolve(value, where)
        if isinstance(resolved, bool):
            return "true" if resolved else "false"
        if isinstance(resolved, int | float | str):
            return str(resolved)
        raise TemplateError(where, f"must resolve to a string, got {json.dumps(resolved)[:80]}")

    def pseudo(self, name: str, where: str) -> Any:
        values: dict[str, Any] = {
            "AWS::Region": self.stack.region,
            "AWS::AccountId": self.stack.account,
            "AWS::StackName": self.stack.name,
            "AWS::StackId": self.stack.arn("cloudformation", f"stack/{self.stack.name}/local"),
            "AWS::Partition": self.stack.partition,
            "AWS::URLSuffix": self.stack.url_suffix,
            "AWS::NotificationARNs": [],
            "AWS::NoValue": NO_VALUE,
        }
        if name not in values:
            raise TemplateError(where, f"unknown pseudo parameter {name}")
        return values[name]

    def lookup(self, name: str, where: str) -> Any:
        """What `Ref: name` gives: a parameter, a pseudo parameter or a resource."""
        if name.startswith("AWS::"):
            return self.pseudo(name, where)
        if name in self.parameters:
            return self.parameters[name]
        declared = self.body.get("Parameters", {}) or {}
        if name in declared:
            raise TemplateError(
                where, f"parameter {name} has no Default: give it with --parameter-overrides"
            )
        if name in (self.body.get("Resources", {}) or {}):
            return self.ref(name)
        raise TemplateError(where, f"Ref to {name!r}, which is no parameter or resource")


def _ref(resolver: Resolver, argument: Any, where: str) -> Any:
    if not isinstance(argument, str):
        raise TemplateError(where, "Ref takes the name of a parameter or resource")
    return resolver.lookup(argument, where)


def _get_att(resolver: Resolver, argument: Any, where: str) -> Any:
    if isinstance(argument, str):
        argument = argument.split(".", 1)
    argument = resolver.resolve(argument, where)
    if not (isinstance(argument, list) and len(argument) == 2):
        raise TemplateError(where, "Fn::GetAtt takes [LogicalId, Attribute]")
    logical_id, attribute = argument
    if logical_id not in (resolver.body.get("Resources", {}) or {}):
        raise TemplateError(where, f"Fn::GetAtt of {logical_id!r}, which is no resource")
    return resolver.get_att(str(logical_id), str(attribute))


def _sub(resolver: Resolver, argument: Any, where: str) -> str:
    variables: dict[str, Any] = {}
    if isinstance(argument, list):
        if len(argument) != 2 or not isinstance(argument[1], dict):
            raise TemplateError(where, "Fn::Sub takes a string, or [string, {name: value}]")
        template, raw = argument
        variables = {k: resolver.resolve(v, f"{where}.{k}") for k, v in raw.items()}
    else:
        template = argument
    if not isinstance(template, str):
        raise TemplateError(where, "Fn::Sub's template must be a string")

    def substitute(match: re.Match[str]) -> str:
        name = match.group(1)
        if name.startswith("!"):
            return "${" + name[1:] + "}"  # ${!Literal} is written as ${Literal}
        if name in variables:
            value = variables[name]
        elif "." in name and not name.startswith("AWS::"):
            value = _get_att(resolver, name.split(".", 1), where)
        else:
            value = resolver.lookup(name, where)
        return resolver.text(value, where)

    return _SUB_VARIABLE.sub(substitute, template)


def _join(resolver: Resolver, argument: Any, where: str) -> str:
    resolved = resolver.resolve(argument, where)
    if not (isinstance(resolved, list) and len(resolved) == 2 and isinstance(resolved[1], list)):
        raise TemplateError(where, "Fn::Join takes [delimiter, [values]]")
    delimiter, values = resolved
    return str(delimiter).join(resolver.text(v, where) for v in values)


def _select(resolver: Resolver, argument: Any, where: str) -> Any:
    resolved = resolver.resolve(argument, where)
    if not (isinstance(resolved, list) and len(resolved) == 2 and isinstance(resolved[1], list)):
        raise TemplateError(where, "Fn::Select takes [index, [values]]")
    index, values = int(resolved[0]), resolved[1]
    if not 0 <= index < len(values):
        raise TemplateError(where, f"index {index} is outside a list of {len(values)}")
    return values[index]


def _split(resolver: Resolver, argument: Any, where: str) -> list[str]:
    resolved = resolver.resolve(argument, where)
    if not (isinstance(resolved, list) and len(resolved) == 2):
        raise TemplateError(where, "Fn::Split takes [delimiter, string]")
    return resolver.text(resolved[1], where).split(str(resolved[0]))


def _if(resolver: Resolver, argument: Any, where: str) -> Any:
    if not (isinstance(argument, list) and len(argument) == 3):
        raise TemplateError(where, "Fn::If takes [condition, value if true, value if false]")
    chosen = argument[1] if resolver.condition(str(argument[0]), where) else argument[2]
    return resolver.resolve(chosen, where)


def _equals(resolver: Resolver, argument: Any, where: str) -> bool:
    resolved = resolver.resolve(argument, where)
    if not (isinstance(resolved, list) and len(resolved) == 2):
        raise TemplateError(where, "Fn::Equals takes [a, b]")
    return bool(resolver.text(resolved[0], where) == resolver.text(resolved[1], where))


def _not(resolver: Resolver, argument: Any, where: str) -> bool:
    if not (isinstance(argument, list) and len(argument) == 1):
        raise TemplateError(where, "Fn::Not takes [condition]")
    return not _truth(_condition_value(resolver, argument[0], where))


def _and(resolver: Resolver, argument: Any, where: str) -> bool:
    return all(_truth(item) for item in _conditions(resolver, argument, where))


def _or(resolver: Resolver, argument: Any, where: str) -> bool:
    return any(_truth(item) for item in _conditions(resolver, argument, where))


def _find_in_map(resolver: Resolver, argument: Any, where: str) -> Any:
    resolved = resolver.resolve(argument, where)
    if not (isinstance(resolved, list) and len(resolved) in (3, 4)):
        raise TemplateError(where, "Fn::FindInMap takes [map, top-level key, second-level key]")
    name, top, second = (resolver.text(item, where) for item in resolved[:3])
    try:
        return resolver.body["Mappings"][name][top][second]
    except (KeyError, TypeError):
        if len(resolved) == 4 and isinstance(resolved[3], dict) and "DefaultValue" in resolved[3]:
            return resolved[3]["DefaultValue"]
        raise TemplateError(where, f"Mappings has no {name}.{top}.{second}") from None


def _base64(resolver: Resolver, argument: Any, where: str) -> str:
    return base64.b64encode(resolver.text(argument, where).encode()).decode()


def _get_azs(resolver: Resolver, argument: Any, where: str) -> list[str]:
    region = resolver.text(argument, where) or resolver.stack.region
    return [f"{region}{zone}" for zone in "abc"]


def _unresolvable(resolver: Resolver, argument: Any, where: str) -> Any:
    function = where.rsplit(".", 1)[-1]
    raise TemplateError(
        where, f"{function} has no local value; put the value in a parameter instead"
    )


def _import_value(resolver: Resolver, argument: Any, where: str) -> str:
    name = resolver.text(argument, where)
    if name not in resolver.exports:
        hint = f"give it with --import-value {name}=VALUE"
        raise TemplateError(where, f"the export {name!r} has no local value: {hint}")
    return resolver.exports[name]


def _conditions(resolver: Resolver, argument: Any, where: str) -> list[Any]:
    if not isinstance(argument, list) or not 2 <= len(argument) <= 10:
        raise TemplateError(where, "takes a list of 2 to 10 conditions")
    return [_condition_value(resolver, item, where) for item in argument]


def _condition_value(resolver: Resolver, item: Any, where: str) -> Any:
    """A condition operand: `{"Condition": name}` names another condition (only here is
    `Condition` a function; elsewhere it may be a property's own key)."""
    if isinstance(item, dict) and list(item) == ["Condition"]:
        return resolver.condition(str(item["Condition"]), where)
    return resolver.resolve(item, where)


def _truth(value: Any) -> bool:
    if isinstance(value, bool):
        return value
    if isinstance(value, str) and value.lower() in ("true", "false"):
        return value.lower() == "true"
    raise TemplateError("Conditions", f"a condition must be true or false, got {value!r}")


_FUNCTIONS: dict[str, Callable[[Resolver, Any, str], Any]] = {
    "Ref": _ref,
    "Fn::GetAtt": _get_att,
    "Fn::Sub": _sub,
    "Fn::Join": _join,
    "Fn::Select": _select,
    "Fn::Split": _split,
    "Fn::If": _if,
    "Fn::Equals": _equals,
    "Fn::Not": _not,
    "Fn::And": _and,
    "Fn::Or": _or,
    "Fn::FindInMap": _find_in_map,
    "Fn::Base64": _base64,
    "Fn::GetAZs": _get_azs,
    "Fn::ImportValue": _import_value,
    "Fn::Cidr": _unresolvable,
    "Fn::Transform": _unresolvable,
    "Fn::ToJsonString": lambda r, a, w: json.dumps(r.resolve(a, w), separators=(",", ":")),
    "Fn::Length": lambda r, a, w: len(r.resolve(a, w)),
}
