"""CloudFormation values as one deployment would see them (pure).

``resolve`` walks a trust policy written with intrinsics and returns the policy the engine judges:

- pseudo parameters become the deploying account, partition, region and URL suffix;
- ``Ref``/``Fn::GetAtt`` of a Step Functions state machine or activity in the same template becomes its ARN,
  in the deploying account (``!Ref MyStateMachine`` is the ARN); ``Fn::GetAtt X.Arn`` of any other resource
  becomes an ARN in the deploying account too;
- ``Fn::Sub``, ``Fn::Join``, ``Fn::Select``, ``Fn::Split`` and ``Fn::FindInMap`` are evaluated when their
  inputs are known, and ``Ref AWS::NoValue`` removes the value;
- anything else (a parameter, an import, a condition, a resource's generated name) is unknown. An unknown
  piece only in the resource part of an ARN (after its fifth colon) does not change which account the ARN
  pins, so it reads as ``*`` there; anywhere else the whole value stays the intrinsic as written, the engine
  sees a template value, and ``unresolved`` says why.

``display`` maps every resolved string back to the intrinsic it came from, so a proposed fix reads in the
template's own terms.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any, Final

__all__ = ["ACCOUNT_PLACEHOLDER", "REGION_PLACEHOLDER", "STAND_IN", "Deployment", "Resolution", "Unresolved", "resolve"]

# Stand-ins when the deploying account or region is not known. Neither has a ':' nor a wildcard, so ARNs
# built from them keep their six fields; the account is not twelve digits, so no literal can equal it.
ACCOUNT_PLACEHOLDER: Final = "<deploying-account>"
REGION_PLACEHOLDER: Final = "deploying-region"
# Stand-ins (numbered) for unknown values where the engine needs text: shaped like an action or a condition key.
STAND_IN: Final = "deputy-guard:unresolved-"

_VARIABLE: Final = re.compile(r"\$\{([^}]*)\}")
_STEP_FUNCTIONS: Final = {
    "AWS::StepFunctions::StateMachine": ("stateMachine", "StateMachineName"),
    "AWS::Serverless::StateMachine": ("stateMachine", "Name"),
    "AWS::StepFunctions::Activity": ("activity", "Name"),
}


@dataclass(frozen=True)
class Deployment:
    """Where the template is deployed, as far as the check knows."""

    account: str
    partition: str = "aws"
    region: str = REGION_PLACEHOLDER

    @property
    def url_suffix(self) -> str:
        return "amazonaws.com.cn" if self.partition == "aws-cn" else "amazonaws.com"


@dataclass(frozen=True)
class Unresolved:
    """A value the check cannot know: where it sits in the policy, why, and whether the engine sees it.

    The engine reads an intrinsic left in a principal or a condition value as a template value and reports
    it. Anywhere else (an Action, a whole Condition block, a statement) the engine would only see a broken
    document, so a stand-in takes its place (``stand_in``) and the check decides what it means.
    """

    path: tuple[str | int, ...]
    reason: str
    engine_sees_it: bool


@dataclass
class Resolution:
    document: Any
    unresolved: list[Unresolved] = field(default_factory=list)
    # resolved text -> the intrinsic it came from (the first one, when several give the same text)
    display: dict[str, Any] = field(default_factory=dict)


class _Unknown:
    __slots__ = ("reason",)

    def __init__(self, reason: str) -> None:
        self.reason = reason


class _Partial:
    """Text with unknown pieces (None) in it."""

    __slots__ = ("parts", "reasons")

    def __init__(self, parts: list[str | None], reasons: list[str]) -> None:
        self.parts = parts
        self.reasons = reasons


_NO_VALUE: Final = object()


def _intrinsic(value: Any) -> tuple[str, Any] | None:
    if isinstance(value, dict) and len(value) == 1:
        ((name, argument),) = value.items()
        if name == "Ref" or (isinstance(name, str) and name.startswith("Fn::")):
            return name, argument
    return None


def _parts(value: Any) -> _Partial | _Unknown:
    """A resolved value as text parts, or unknown when it is not text (a list, a number...)."""
    if isinstance(value, str):
        return _Partial([value], [])
    if isinstance(value, _Partial):
        return value
    if isinstance(value, _Unknown):
        return _Partial([None], [value.reason])
    if isinstance(value, bool) or value is None or not isinstance(value, int | float):
        return _Unknown("a value that is not text where text is needed")
    return _Partial([str(value)], [])


def _concat(pieces: list[Any], separator: str = "") -> Any:
    parts: list[str | None] = []
    reasons: list[str] = []
    for index, piece in enumerate(pieces):
        text = _parts(piece)
        if isinstance(text, _Unknown):
            return text
        if index and separator:
            parts.append(separator)
        parts.extend(text.parts)
        reasons.extend(text.reasons)
    return _simplify(_Partial(parts, reasons))


def _simplify(text: _Partial) -> Any:
    if all(part is not None for part in text.parts):
        return "".join(part for part in text.parts if part is not None)
    return text


def _finish(text: _Partial) -> str | None:
    """Known text, with unknown pieces in an ARN's resource part read as ``*``; None if that is not safe."""
    seen = ""
    out: list[str] = []
    for part in text.parts:
        if part is None:
            if not (seen.startswith("arn:") and seen.count(":") >= 5):
                return None
            out.append("*")
        else:
            seen += part
            out.append(part)
    return "".join(out)


class _Resolver:
    def __init__(self, template: Mapping[str, Any], deployment: Deployment) -> None:
        resources = template.get("Resources")
        self.resources: Mapping[str, Any] = resources if isinstance(resources, Mapping) else {}
        parameters = template.get("Parameters")
        self.parameters: Mapping[str, Any] = parameters if isinstance(parameters, Mapping) else {}
        mappings = template.get("Mappings")
        self.mappings: Mapping[str, Any] = mappings if isinstance(mappings, Mapping) else {}
        self.deployment = deployment
        self.display: dict[str, Any] = {}

    # --- pseudo parameters, Ref and GetAtt ---------------------------------------------------------

    def pseudo(self, name: str) -> Any:
        deployment = self.deployment
        known = {
            "AWS::AccountId": deployment.account,
            "AWS::Partition": deployment.partition,
            "AWS::Region": deployment.region,
            "AWS::URLSuffix": deployment.url_suffix,
        }
        if name in known:
            return known[name]
        if name == "AWS::NoValue":
            return _NO_VALUE
        return _Unknown(f"{name} is known only at deploy time")

    def _resource(self, name: str) -> Mapping[str, Any] | None:
        resource = self.resources.get(name)
        return resource if isinstance(resource, Mapping) else None

    def _step_functions_arn(self, name: str, resource: Mapping[str, Any]) -> str | None:
        kind = _STEP_FUNCTIONS.get(str(resource.get("Type")))
        if kind is None:
            return None
        resource_type, name_property = kind
        properties = resource.get("Properties")
        given = properties.get(name_property) if isinstance(properties, Mapping) else None
        physical = given if isinstance(given, str) else name
        deployment = self.deployment
        return f"arn:{deployment.partition}:states:{deployment.region}:{deployment.account}:{resource_type}:{physical}"

    def ref(self, name: Any) -> Any:
        if not isinstance(name, str):
            return _Unknown("Ref of something that is not a name")
        if name.startswith("AWS::"):
            return self.pseudo(name)
        if name in self.parameters:
            return _Unknown(f"Ref {name}: a template parameter, known only at deploy time")
        resource = self._resource(name)
        if resource is None:
            return _Unknown(f"Ref {name}: not a parameter or resource of this template")
        arn = self._step_functions_arn(name, resource)
        if arn is not None:
            return arn
        return _Unknown(f"Ref {name}: the physical id of a {resource.get('Type')}, known only at deploy time")

    def get_att(self, argument: Any) -> Any:
        if isinstance(argument, str):
            argument = argument.split(".", 1)
        if not (isinstance(argument, list) and len(argument) == 2 and isinstance(argument[0], str)):
            return _Unknown("Fn::GetAtt with an argument that is not [resource, attribute]")
        name, attribute = argument[0], self.value(argument[1])
        resource = self._resource(name)
        if resource is None:
            return _Unknown(f"Fn::GetAtt {name}: not a resource of this template")
        if attribute == "Arn":
            arn = self._step_functions_arn(name, resource)
            if arn is not None:
                return arn
            kind = str(resource.get("Type"))
            parts = kind.split("::")
            if len(parts) == 3 and parts[0] == "AWS":
                deployment = self.deployment
                region = "" if parts[1] == "IAM" else deployment.region
                return f"arn:{deployment.partition}:{parts[1].lower()}:{region}:{deployment.account}:{name}"
        if attribute == "Name" and resource.get("Type") in _STEP_FUNCTIONS:
            arn = self._step_functions_arn(name, resource)
            if arn is not None and not arn.endswith(f":{name}"):
                return arn.rsplit(":", 1)[1]
        return _Unknown(f"Fn::GetAtt {name}.{attribute}: known only at deploy time")

    # --- the other intrinsics ----------------------------------------------------------------------

    def sub(self, argument: Any) -> Any:
        variables: Mapping[str, Any] = {}
        if isinstance(argument, list) and len(argument) == 2 and isinstance(argument[1], Mapping):
            argument, variables = argument[0], argument[1]
        if not isinstance(argument, str):
            return _Unknown("Fn::Sub with a template that is not a string")
        pieces: list[Any] = []
        position = 0
        for match in _VARIABLE.finditer(argument):
            pieces.append(argument[position : match.start()])
            position = match.end()
            name = match.group(1).strip()
            if name.startswith("!"):
                pieces.append("${" + match.group(1)[1:] + "}")
            elif name in variables:
                pieces.append(self.value(variables[name]))
            elif "." in name:
                pieces.append(self.get_att(name))
            else:
                pieces.append(self.ref(name))
        pieces.append(argument[position:])
        return _concat(pieces)

    def join(self, argument: Any) -> Any:
        if not (isinstance(argument, list) and len(argument) == 2 and isinstance(argument[0], str)):
            return _Unknown("Fn::Join with an argument that is not [delimiter, list]")
        items = self.value(argument[1])
        if not isinstance(items, list):
            return items if isinstance(items, _Unknown) else _Unknown("Fn::Join of something that is not a list")
        return _concat(items, argument[0])

    def select(self, argument: Any) -> Any:
        if not (isinstance(argument, list) and len(argument) == 2):
            return _Unknown("Fn::Select with an argument that is not [index, list]")
        index, items = self.value(argument[0]), self.value(argument[1])
        if isinstance(index, str) and index.isdigit():
            index = int(index)
        if isinstance(index, int) and not isinstance(index, bool) and isinstance(items, list):
            return items[index] if 0 <= index < len(items) else _Unknown("Fn::Select index out of range")
        return items if isinstance(items, _Unknown) else _Unknown("Fn::Select of a value known only at deploy time")

    def split(self, argument: Any) -> Any:
        if not (isinstance(argument, list) and len(argument) == 2 and isinstance(argument[0], str)):
            return _Unknown("Fn::Split with an argument that is not [delimiter, string]")
        text = self.value(argument[1])
        if isinstance(text, str) and argument[0]:
            return text.split(argument[0])
        return text if isinstance(text, _Unknown) else _Unknown("Fn::Split of a value known only at deploy time")

    def find_in_map(self, argument: Any) -> Any:
        if not (isinstance(argument, list) and len(argument) == 3):
            return _Unknown("Fn::FindInMap with an argument that is not [map, key, key]")
        keys = [self.value(item) for item in argument]
        if not all(isinstance(key, str) for key in keys):
            return _Unknown("Fn::FindInMap with a key known only at deploy time")
        level: Any = self.mappings
        for key in keys:
            level = level.get(key) if isinstance(level, Mapping) else None
        if level is None:
            return _Unknown(f"Fn::FindInMap {'/'.join(keys)}: not in the template's Mappings")
        return self.value(level)

    def intrinsic(self, name: str, argument: Any) -> Any:
        handlers = {
            "Ref": self.ref,
            "Fn::GetAtt": self.get_att,
            "Fn::Sub": self.sub,
            "Fn::Join": self.join,
            "Fn::Select": self.select,
            "Fn::Split": self.split,
            "Fn::FindInMap": self.find_in_map,
        }
        handler = handlers.get(name)
        if handler is not None:
            return handler(argument)
        if name == "Fn::If" and isinstance(argument, list) and argument and isinstance(argument[0], str):
            return _Unknown(f"Fn::If {argument[0]}: depends on a template condition")
        if name == "Fn::Unresolved" and isinstance(argument, str):
            # What a reader already knew it could not resolve (a Terraform variable...), with why.
            return _Unknown(argument)
        if name == "Fn::ImportValue":
            return _Unknown("Fn::ImportValue: another stack's export, known only at deploy time")
        return _Unknown(f"{name} is known only at deploy time")

    # --- walking -----------------------------------------------------------------------------------

    def value(self, value: Any) -> Any:
        """Resolve inside intrinsics: may return _Unknown, _Partial or _NO_VALUE."""
        found = _intrinsic(value)
        if found is not None:
            return self.intrinsic(*found)
        if isinstance(value, list):
            items = [self.value(item) for item in value]
            return [item for item in items if item is not _NO_VALUE]
        if isinstance(value, dict):
            resolved = {key: self.value(item) for key, item in value.items()}
            return {key: item for key, item in resolved.items() if item is not _NO_VALUE}
        return value

    def document(self, value: Any, path: tuple[str | int, ...], unresolved: list[Unresolved]) -> Any:
        """Resolve a policy value for the engine: plain JSON, with unknown intrinsics left as written."""
        found = _intrinsic(value)
        if found is not None:
            result = self.intrinsic(*found)
            if isinstance(result, _Partial):
                finished = _finish(result)
                if finished is None:
                    return self.unknown(value, path, "; ".join(dict.fromkeys(result.reasons)), unresolved)
                result = finished
            if isinstance(result, _Unknown):
                return self.unknown(value, path, result.reason, unresolved)
            if result is _NO_VALUE:
                return _NO_VALUE
            if isinstance(result, str):
                self.display.setdefault(result, value)
                return result
            return self.document(result, path, unresolved)
        if isinstance(value, list):
            items = [self.document(item, (*path, index), unresolved) for index, item in enumerate(value)]
            return [item for item in items if item is not _NO_VALUE]
        if isinstance(value, dict):
            resolved = {key: self.document(item, (*path, key), unresolved) for key, item in value.items()}
            return {key: item for key, item in resolved.items() if item is not _NO_VALUE}
        if isinstance(value, _Partial | _Unknown):
            # Only lists and maps that an intrinsic produced get here; their unknown items stay unknown.
            reason = value.reason if isinstance(value, _Unknown) else "; ".join(value.reasons)
            return self.unknown({"Fn::Unresolved": reason}, path, reason, unresolved)
        return value

    def unknown(self, value: Any, path: tuple[str | int, ...], reason: str, unresolved: list[Unresolved]) -> Any:
        slot = _slot(path)
        unresolved.append(Unresolved(path, reason, engine_sees_it=slot == "engine"))
        if slot in ("engine", "whole"):
            return value
        stand_in = f"{STAND_IN}{len(unresolved)}"
        self.display[stand_in] = value
        if slot == "block":
            return {"StringEquals": {stand_in: stand_in}}
        if slot == "operator":
            return {stand_in: stand_in}
        return stand_in


def _slot(path: tuple[str | int, ...]) -> str:
    """How an unknown value at ``path`` reaches the engine: as a template value it reports, or a stand-in.

    ``engine``: a principal or a condition value, kept as written. ``whole``: the document, the statement
    list or a statement, kept as written (the engine cannot read the policy at all). ``block``/``operator``:
    a whole Condition or operator block. ``text``: any other field.
    """
    if path[:1] != ("Statement",):
        return "text" if path[:1] in (("Version",), ("Id",)) else "whole"
    rest = path[1:]
    if rest and isinstance(rest[0], int):
        rest = rest[1:]
    if not rest:
        return "whole"
    if rest[0] in ("Principal", "NotPrincipal"):
        return "engine" if len(rest) in (2, 3) else "whole"
    if rest[0] == "Condition":
        return {1: "block", 2: "operator"}.get(len(rest), "engine")
    return "text"


def resolve(template: Mapping[str, Any], policy: Any, deployment: Deployment) -> Resolution:
    """The policy as ``deployment`` would see it, what could not be known, and how to show it back."""
    resolver = _Resolver(template, deployment)
    unresolved: list[Unresolved] = []
    document = resolver.document(policy, (), unresolved)
    if document is _NO_VALUE:
        document = None
    return Resolution(document, unresolved, resolver.display)
