"""A fixed trust policy written back in the Terraform form the source used (pure).

``to_terraform`` turns the values a policy was resolved from back into Terraform text (the account and
partition become their data sources, a template its ``${...}`` as written). ``render_fix`` writes the whole
fix: an ``aws_iam_policy_document`` data block for a policy document, ``jsonencode({...})`` for
jsonencode, the file's JSON for ``file()``, and a heredoc for JSON written in the ``.tf`` file.
"""

from __future__ import annotations

import json
import re
from typing import Any, Final

from deputy_guard.iac.tfpolicy import STATEMENT_KEYS
from deputy_guard.iac.values import ACCOUNT_PLACEHOLDER

__all__ = ["ACCOUNT_REFERENCE", "PARTITION_REFERENCE", "render_fix", "to_terraform"]

ACCOUNT_REFERENCE: Final = "data.aws_caller_identity.current.account_id"
PARTITION_REFERENCE: Final = "data.aws_partition.current.partition"
_PSEUDO_TEXT: Final = {
    "AWS::AccountId": ACCOUNT_REFERENCE,
    "AWS::Partition": PARTITION_REFERENCE,
    "AWS::Region": "data.aws_region.current.name",
    "AWS::URLSuffix": "data.aws_partition.current.dns_suffix",
}
_IDENTIFIER: Final = re.compile(r"[A-Za-z_][A-Za-z0-9_-]*")
_PSEUDO_VARIABLE: Final = re.compile(r"\$\{(AWS::[A-Za-z]+)\}")
_CONDITION_ORDER: Final = ("test", "variable", "values")


def _sub_text(argument: Any) -> str | None:
    text = argument[0] if isinstance(argument, list) and argument else argument
    if not isinstance(text, str):
        return None
    text = _PSEUDO_VARIABLE.sub(lambda found: "${" + _PSEUDO_TEXT.get(found.group(1), found.group(1)) + "}", text)
    return text.replace("${!", "$${")


def to_terraform(value: Any) -> Any:
    """``value`` with every intrinsic written as the Terraform text it stands for."""
    if isinstance(value, dict):
        if len(value) == 1:
            ((key, argument),) = value.items()
            if key == "Ref" and argument in _PSEUDO_TEXT:
                return "${" + _PSEUDO_TEXT[argument] + "}"
            if key == "Fn::Sub" and (text := _sub_text(argument)) is not None:
                return text
        return {key: to_terraform(item) for key, item in value.items()}
    if isinstance(value, list):
        return [to_terraform(item) for item in value]
    return value


def _hcl(value: Any, indent: int) -> str:
    """A value as an HCL expression (object keys quoted when they are not identifiers)."""
    pad = "  " * (indent + 1)
    if isinstance(value, dict):
        if not value:
            return "{}"
        lines = [
            f"{pad}{key if _IDENTIFIER.fullmatch(key) else json.dumps(key)} = {_hcl(item, indent + 1)}"
            for key, item in value.items()
        ]
        return "{\n" + "\n".join(lines) + "\n" + "  " * indent + "}"
    if isinstance(value, list):
        if all(not isinstance(item, dict | list) for item in value):
            return "[" + ", ".join(_hcl(item, indent) for item in value) + "]"
        return "[\n" + ",\n".join(pad + _hcl(item, indent + 1) for item in value) + "\n" + "  " * indent + "]"
    return json.dumps(value, ensure_ascii=False)


def _listed(value: Any) -> list[Any]:
    return value if isinstance(value, list) else [value]


def _statement_block(statement: dict[str, Any]) -> list[str]:
    lines = ["  statement {"]
    for argument, key in STATEMENT_KEYS.items():
        if key in statement:
            value = statement[key] if key in ("Sid", "Effect") else _listed(statement[key])
            lines.append(f"    {argument} = {_hcl(value, 2)}")
    for key, block in (("Principal", "principals"), ("NotPrincipal", "not_principals")):
        principal = statement.get(key)
        entries = {"*": ["*"]} if principal == "*" else principal if isinstance(principal, dict) else {}
        for kind, identifiers in entries.items():
            lines += [f"    {block} {{", f"      type        = {json.dumps(kind)}"]
            lines += [f"      identifiers = {_hcl(_listed(identifiers), 3)}", "    }"]
    conditions = statement.get("Condition")
    for test, keys in conditions.items() if isinstance(conditions, dict) else ():
        for variable, values in keys.items() if isinstance(keys, dict) else ():
            lines += ["    condition {", f"      test     = {json.dumps(test)}"]
            lines += [
                f"      variable = {json.dumps(variable)}",
                f"      values   = {_hcl(_listed(values), 3)}",
                "    }",
            ]
    return [*lines, "  }"]


def render_fix(policy: Any, form: str, attribute: str) -> str:
    """The fixed policy as Terraform text in ``form`` (see ``Site.source_form``), for people to paste."""
    policy = to_terraform(policy)
    if form.startswith("policy_document:") and isinstance(policy, dict):
        name = form.split(":", 1)[1]
        lines = [f'data "aws_iam_policy_document" "{name}" {{']
        if "Id" in policy:
            lines.append(f"  policy_id = {_hcl(policy['Id'], 1)}")
        statements = policy.get("Statement")
        for statement in _listed(statements) if statements is not None else []:
            if isinstance(statement, dict):
                lines += _statement_block(statement)
        return "\n".join([*lines, "}"]) + "\n"
    if form == "jsonencode":
        return f"{attribute} = jsonencode({_hcl(policy, 0)})\n"
    body = json.dumps(policy, indent=2, ensure_ascii=False).replace("${!", "$${")
    if form == "file":
        fill = (
            f" (file() does not interpolate: write the deploying account's id for {ACCOUNT_PLACEHOLDER}, or run with "
            "--account)"
            if ACCOUNT_PLACEHOLDER in body
            else ""
        )
        return f"# the JSON file that {attribute} reads with file(){fill}:\n{body}\n"
    return f"{attribute} = <<EOT\n{body}\nEOT\n"
