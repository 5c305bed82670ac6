"""A resolved policy shown in the terms its input wrote it in (pure).

``values.resolve`` maps every string it resolved back to the intrinsic it came from; these helpers put
those intrinsics back, and name the deploying account and the added ``aws:SourceArn`` the template's way.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, Final

from chalicelib.domain.catalogue import STATES
from chalicelib.domain.models import EngineOptions, RoleContext
from chalicelib.domain.policy import clone_json
from deputy_guard.iac.values import STAND_IN, Resolution

__all__ = ["display_as_written", "fix_templates", "replace_text", "template_display"]

# How a fix names the deploying account in a template.
_TEMPLATE_ACCOUNT: Final = {"Ref": "AWS::AccountId"}


def display_as_written(value: Any, mapping: Mapping[str, Any]) -> Any:
    """``value`` with every resolved string (and stand-in) written back as the input had it."""
    if isinstance(value, str):
        return clone_json(mapping[value]) if value in mapping else value
    if isinstance(value, list):
        return [display_as_written(item, mapping) for item in value]
    if isinstance(value, dict):
        if len(value) == 1:
            ((key, item),) = value.items()
            stand_in = next(iter(item), None) if isinstance(item, dict) and len(item) == 1 else key
            if isinstance(stand_in, str) and stand_in.startswith(STAND_IN) and stand_in in mapping:
                return clone_json(mapping[stand_in])
        return {key: display_as_written(item, mapping) for key, item in value.items()}
    return value


def replace_text(value: Any, old: str, new: str) -> Any:
    """``value`` with ``old`` replaced by ``new`` in every string."""
    if isinstance(value, str):
        return value.replace(old, new)
    if isinstance(value, list):
        return [replace_text(item, old, new) for item in value]
    if isinstance(value, dict):
        return {key: replace_text(item, old, new) for key, item in value.items()}
    return value


def fix_templates(options: EngineOptions) -> tuple[str, ...]:
    """The aws:SourceArn templates a fix may add: Step Functions' setting, and each other selected entry's."""
    others = (entry.source_arn_template for entry in options.services if entry != STATES)
    return (*options.source_arns, *others)


def template_display(resolution: Resolution, context: RoleContext, options: EngineOptions) -> dict[str, Any]:
    """Resolved text -> how the template writes it, with the deploying account and the fix's source ARNs."""
    mapping = dict(resolution.display)
    mapping.setdefault(context.account_id, _TEMPLATE_ACCOUNT)
    for template in fix_templates(options):
        rendered = template.format(partition=context.partition, account=context.account_id)
        written = template.format(partition="${AWS::Partition}", account="${AWS::AccountId}")
        mapping.setdefault(rendered, {"Fn::Sub": written})
    return mapping
