"""CloudFormation's ``AWS::LanguageExtensions`` transform, expanded before a template is read (pure).

``Fn::ForEach::Name: [Identifier, Collection, {OutputKey: OutputValue}]`` (in ``Resources``, ``Conditions``,
``Outputs`` and resource properties, nested loops included) repeats its fragment once per item of a literal
collection, replacing ``${Identifier}`` and ``&{Identifier}`` (the item without its non-alphanumeric
characters) in every key and string of the fragment, and ``Ref: Identifier`` by the item.
``Fn::Length`` of a literal list and ``Fn::ToJsonString`` of a literal value are evaluated too.

A template ``check`` cannot expand (a collection known only at deploy time, another transform, a macro
through ``Fn::Transform``) raises ``InputError``: its roles are unknown, so it is reported unreadable, never
passed in silence.
"""

from __future__ import annotations

import json
import re
from collections.abc import Mapping
from typing import Any, Final

from deputy_guard.iac.site import InputError

__all__ = ["LANGUAGE_EXTENSIONS", "SAM", "expand", "transforms"]

LANGUAGE_EXTENSIONS: Final = "AWS::LanguageExtensions"
SAM: Final = "AWS::Serverless-2016-10-31"
FOR_EACH: Final = "Fn::ForEach::"
_NOT_ALPHANUMERIC: Final = re.compile(r"[^A-Za-z0-9]")
# More copies than CloudFormation's 500-resource quota could ever use: a bound on hostile nesting.
MAX_EXPANDED: Final = 10_000
# Keys and values the copies may hold in all: a small loop over a large fragment is bounded too.
MAX_EXPANDED_VALUES: Final = 1_000_000


def transforms(template: Mapping[str, Any]) -> list[Any]:
    """The template's ``Transform`` as a list (a macro may be named with parameters, as a mapping)."""
    value = template.get("Transform")
    if value is None:
        return []
    return value if isinstance(value, list) else [value]


def _has(value: Any, predicate: Any) -> bool:
    stack = [value]
    while stack:
        current = stack.pop()
        if isinstance(current, dict):
            if any(predicate(key) for key in current):
                return True
            stack.extend(current.values())
        elif isinstance(current, list):
            stack.extend(current)
    return False


def _substitute(value: Any, identifier: str, item: str, budget: list[int]) -> Any:
    """``value`` with the loop's identifier replaced by ``item``; each value made is taken from ``budget``."""
    plain, compact = "${" + identifier + "}", "&{" + identifier + "}"
    stripped = _NOT_ALPHANUMERIC.sub("", item)

    def text(raw: str) -> str:
        return raw.replace(plain, item).replace(compact, stripped)

    def walk(node: Any) -> Any:
        budget[0] -= 1
        if budget[0] < 0:
            raise InputError(f"Fn::ForEach loops expand past {MAX_EXPANDED_VALUES:,} values; not read")
        if isinstance(node, str):
            return text(node)
        if isinstance(node, list):
            return [walk(child) for child in node]
        if isinstance(node, dict):
            if node == {"Ref": identifier}:
                return item
            return {text(key) if isinstance(key, str) else key: walk(child) for key, child in node.items()}
        return node

    return walk(value)


class _Expander:
    def __init__(self) -> None:
        self.copies = 0
        self.budget = [MAX_EXPANDED_VALUES]

    def loop(self, name: str, argument: Any) -> dict[str, Any]:
        """One ``Fn::ForEach`` as the keys and values it expands to."""
        if not (isinstance(argument, list) and len(argument) == 3 and isinstance(argument[0], str)):
            raise InputError(f"{name}: not [Identifier, Collection, {{OutputKey: OutputValue}}]")
        identifier, collection, fragment = argument
        collection = self.value(collection)
        if not (isinstance(collection, list) and all(isinstance(item, str) for item in collection)):
            raise InputError(
                f"{name}: its collection is known only at deploy time (a parameter or another intrinsic), so "
                "deputy-guard cannot tell which roles the loop makes"
            )
        if not isinstance(fragment, dict):
            raise InputError(f"{name}: its fragment is not a mapping of OutputKey to OutputValue")
        out: dict[str, Any] = {}
        for item in collection:
            self.copies += 1
            if self.copies > MAX_EXPANDED:
                raise InputError(f"Fn::ForEach loops expand past {MAX_EXPANDED} copies; not read")
            out.update(self.value(_substitute(fragment, identifier, item, self.budget)))
        return out

    def value(self, value: Any) -> Any:
        """``value`` expanded; the very same object when nothing in it changes (so its lines stay known)."""
        if isinstance(value, list):
            items = [self.value(item) for item in value]
            return value if all(new is old for new, old in zip(items, value, strict=True)) else items
        if not isinstance(value, dict):
            return value
        if len(value) == 1:
            ((key, argument),) = value.items()
            if key == "Fn::Length":
                items = self.value(argument)
                if isinstance(items, list):
                    return len(items)
            if key == "Fn::ToJsonString":
                encoded = self.value(argument)
                if not _has(encoded, lambda name: isinstance(name, str) and name.startswith(("Fn::", "Ref"))):
                    return json.dumps(encoded, separators=(",", ":"))
        out: dict[str, Any] = {}
        changed = False
        for key, item in value.items():
            if isinstance(key, str) and key.startswith(FOR_EACH):
                out.update(self.loop(key, item))
                changed = True
            else:
                out[key] = self.value(item)
                changed = changed or out[key] is not item
        return out if changed else value


def expand(template: Mapping[str, Any]) -> tuple[dict[str, Any], dict[str, str]]:
    """The template with the language extensions expanded, and each expanded resource's loop name.

    Raises InputError for a template whose roles cannot be known before deployment.
    """
    names = transforms(template)
    for name in names:
        if name not in (LANGUAGE_EXTENSIONS, SAM):
            shown = name if isinstance(name, str) else json.dumps(name, sort_keys=True)
            raise InputError(
                f"the transform {shown} rewrites the template when it is deployed, and deputy-guard cannot expand "
                "it: check the processed template (aws cloudformation get-template --template-stage Processed)"
            )
    if _has(template, lambda key: key == "Fn::Transform"):
        raise InputError(
            "Fn::Transform runs a macro when the template is deployed, and deputy-guard cannot expand it: check "
            "the processed template (aws cloudformation get-template --template-stage Processed)"
        )
    uses_loops = _has(template, lambda key: isinstance(key, str) and key.startswith(FOR_EACH))
    if not uses_loops:
        return dict(template), {}
    if LANGUAGE_EXTENSIONS not in names:
        raise InputError(f"Fn::ForEach needs the {LANGUAGE_EXTENSIONS} transform, which the template does not name")
    expander = _Expander()
    origins: dict[str, str] = {}
    expanded: dict[str, Any] = {}
    for key, item in template.items():
        if key == "Resources" and isinstance(item, dict):
            resources: dict[str, Any] = {}
            for name, resource in item.items():
                if isinstance(name, str) and name.startswith(FOR_EACH):
                    made = expander.loop(name, resource)
                    origins.update(dict.fromkeys(made, name))
                    resources.update(made)
                else:
                    resources[name] = expander.value(resource)
            expanded[key] = resources
        else:
            expanded[key] = expander.value(item) if key in ("Conditions", "Outputs") else item
    return expanded, origins
