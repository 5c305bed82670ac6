"""SARIF 2.1.0 for code scanning (GitHub's upload-sarif and any other SARIF consumer).

One run; one rule per problem code (id = the code); one result per problem of every role that does not
pass, at ``error`` for ``non_compliant`` and ``warning`` for ``needs_review``. Locations are relative to
the directory ``check`` ran in (the repository root in CI). ``partialFingerprints`` hash the file, the
resource, the code and the statement, not the line, so an alert survives edits above it and a re-run
never duplicates it. Inputs that could not be read are tool notifications, and make the invocation fail.

Rules' ``helpUri`` values are relative to the deputy-guard repository root: ``docs/shift-left.md#<code>``,
one heading per code there; each rule also carries the same text in ``help``, which GitHub shows inline.
"""

from __future__ import annotations

import hashlib
import os
from importlib import metadata
from pathlib import Path
from typing import Any, Final
from urllib.parse import quote

from chalicelib.domain.catalogue import entry_named
from chalicelib.domain.models import ProblemCode, Verdict
from chalicelib.domain.render import evidence_line
from deputy_guard.checking import Failure, Report, Result
from deputy_guard.iac.files import STDIN

__all__ = ["RULES", "SARIF_SCHEMA", "SARIF_VERSION", "TOOL_NAME", "artifact_uri", "rule", "to_sarif", "tool_version"]

SARIF_VERSION: Final = "2.1.0"
SARIF_SCHEMA: Final = "https://docs.oasis-open.org/sarif/sarif/v2.1.0/errata01/os/schemas/sarif-schema-2.1.0.json"
TOOL_NAME: Final = "deputy-guard"
DOCS: Final = "docs/shift-left.md"
FINGERPRINT: Final = "deputyGuardFinding/v1"
_LEVELS: Final = {Verdict.NON_COMPLIANT: "error", Verdict.NEEDS_REVIEW: "warning"}
_FIX_HINT: Final = (
    "Add both pins to every statement that trusts states.amazonaws.com: StringEquals aws:SourceAccount = "
    "the role's account, and ArnLike aws:SourceArn = arn:PARTITION:states:*:ACCOUNT:*. "
    "`deputy-guard check` prints the fixed policy."
)

# code -> (short description, full description)
RULES: Final[dict[str, tuple[str, str]]] = {
    ProblemCode.MISSING_SOURCE_ACCOUNT: (
        "Step Functions trust without aws:SourceAccount",
        "A statement lets states.amazonaws.com assume the role without an aws:SourceAccount condition that pins "
        "the role's own account, so a state machine in another account can be used to assume it (the "
        "cross-service confused deputy).",
    ),
    ProblemCode.MISSING_SOURCE_ARN: (
        "Step Functions trust without aws:SourceArn",
        "A statement lets states.amazonaws.com assume the role without an aws:SourceArn condition that pins "
        "Step Functions ARNs in the role's own account and partition (the cross-service confused deputy).",
    ),
    ProblemCode.FOREIGN_ACCOUNT: (
        "Step Functions trust pinned to another account",
        "A condition pins aws:SourceAccount or aws:SourceArn to an account that is not the role's own: a "
        "confused deputy waiting to happen, or a backdoor. A human must decide.",
    ),
    ProblemCode.PUBLIC_PRINCIPAL: (
        "Trust policy with a public principal",
        'Principal "*" (or {"AWS": "*"}) lets anyone assume the role, Step Functions included.',
    ),
    ProblemCode.NOT_PRINCIPAL: (
        "NotPrincipal in an Allow statement",
        "NotPrincipal in an Allow statement trusts everyone it does not list, Step Functions included.",
    ),
    ProblemCode.NOT_ACTION: (
        "NotAction in an Allow statement",
        "NotAction in an Allow statement grants every action it does not list, sts:AssumeRole included.",
    ),
    ProblemCode.UNRESOLVED_VALUE: (
        "Trust policy value known only at deploy time",
        "A value of the trust policy (a template parameter, an import, a condition, or a Terraform value "
        "known only after apply) cannot be known before deployment, so it pins nothing and the verdict "
        "needs a human.",
    ),
    ProblemCode.ACCOUNT_UNKNOWN: (
        "Literal account with the deploying account unknown",
        "The trust policy names an account by its literal id and the check was not told the deploying "
        "account: pass --account, or name the deploying account with ${AWS::AccountId}.",
    ),
    ProblemCode.UNPARSEABLE: (
        "Trust policy that cannot be read",
        "The trust policy is not a document IAM would accept, so it cannot be judged.",
    ),
    ProblemCode.TOO_LARGE: (
        "Fix over the trust-policy size quota",
        "Adding the pins would take the trust policy over the account's size quota; a human must shorten it.",
    ),
    ProblemCode.CANNOT_MERGE: (
        "Pins that cannot be merged",
        "Every operator block the fix may use already holds the key with other values; a human must merge "
        "the conditions.",
    ),
    ProblemCode.INVALID_DOCUMENT: (
        "Trust policy IAM would refuse",
        "A statement has an Effect other than Allow or Deny, lacks Action or Principal, or has an unknown key.",
    ),
    ProblemCode.DUPLICATE_KEYS: (
        "Trust policy with a duplicate key",
        "An object of the trust policy repeats a key; IAM's handling is undocumented, so it is never judged safe.",
    ),
    ProblemCode.UNUSABLE_PIN: (
        "Pin that cannot hold",
        "A condition meant to pin the caller cannot do so as written.",
    ),
    ProblemCode.TAG_KEY_CASE: (
        "Control tag key in another case",
        "The role carries a deputy-guard control tag spelled in another case; it is read exactly, as IAM's "
        "conditions compare tag keys, so that tag is ignored.",
    ),
}


_EVIDENCE_HINT: Final = (
    "Each result names the AWS page that documents its service's pin; `deputy-guard services` lists every "
    "guarded service with its evidence."
)


def rule(code: ProblemCode) -> dict[str, Any]:
    """The SARIF reportingDescriptor for one problem code (shared with `scan --format sarif`)."""
    short, full = RULES.get(code, (code.value.replace("_", " "), f"deputy-guard problem {code.value}."))
    return {
        "id": code.value,
        "name": "".join(part.capitalize() for part in code.value.split("_")),
        "shortDescription": {"text": short},
        "fullDescription": {"text": full},
        "helpUri": f"{DOCS}#{code.value}",
        "help": {
            "text": f"{full} {_FIX_HINT} {_EVIDENCE_HINT}",
            "markdown": f"{full}\n\n{_FIX_HINT}\n\n{_EVIDENCE_HINT}",
        },
        "defaultConfiguration": {"level": "warning"},
        "properties": {"tags": ["security", "iam", "confused-deputy"], "precision": "high"},
    }


def artifact_uri(path: str, root: str | None = None) -> str:
    """``path`` relative to ``root`` (the working directory) with forward slashes; stdin is ``stdin``."""
    if path == STDIN:
        return "stdin"
    # The link itself, not its target: a refused symlink is named where the repository holds it.
    written = Path(os.path.abspath(path))
    absolute = written.parent.resolve() / written.name
    try:
        relative = absolute.relative_to(Path(root or os.getcwd()).resolve())
    except ValueError:
        return absolute.as_uri()
    return quote(relative.as_posix(), safe="/")


def tool_version() -> str:
    """deputy-guard's installed version, for SARIF's tool.driver.version."""
    try:
        return metadata.version(TOOL_NAME)
    except metadata.PackageNotFoundError:
        return "0+unknown"


def _location(uri: str, line: int | None, column: int | None = None) -> dict[str, Any]:
    physical: dict[str, Any] = {"artifactLocation": {"uri": uri}}
    if line is not None:
        physical["region"] = {"startLine": line} | ({"startColumn": column} if column is not None else {})
    return {"physicalLocation": physical}


def _fingerprint(*parts: str) -> str:
    return hashlib.sha256("\x00".join(parts).encode("utf-8")).hexdigest()


def _results(result: Result, uri: str, rule_index: dict[str, int], seen: dict[str, int]) -> list[dict[str, Any]]:
    level = _LEVELS.get(result.verdict)
    if level is None:
        return []
    out: list[dict[str, Any]] = []
    for problem in result.problems:
        code = problem.code.value
        where = "the policy" if problem.statement is None else f"statement {problem.statement}"
        key = _fingerprint(uri, result.resource or "", code, str(problem.statement))
        seen[key] = seen.get(key, 0) + 1
        note = f" {result.note}." if result.note else ""
        entry = entry_named(problem.service) if problem.service else None
        if entry is not None:
            note += f" E{evidence_line(entry)[1:]}."
        out.append(
            {
                "ruleId": code,
                "ruleIndex": rule_index[code],
                "level": level,
                "message": {"text": f"Role {result.label} ({result.verdict.value}), {where}: {problem.message}.{note}"},
                "locations": [_location(uri, result.line, result.column)],
                "partialFingerprints": {FINGERPRINT: _fingerprint(key, str(seen[key]))},
            }
        )
    return out


def _notification(failure: Failure, root: str | None) -> dict[str, Any]:
    where = f" ({failure.resource})" if failure.resource else ""
    return {
        "level": "error",
        "message": {"text": f"{failure.message}{where}"},
        "locations": [_location(artifact_uri(failure.path, root), None)],
    }


def to_sarif(report: Report, root: str | None = None) -> dict[str, Any]:
    """The report as a SARIF 2.1.0 log with one run."""
    codes = list(ProblemCode)
    rule_index = {code.value: index for index, code in enumerate(codes)}
    seen: dict[str, int] = {}
    results = [
        item
        for result in report.results
        for item in _results(result, artifact_uri(result.path, root), rule_index, seen)
    ]
    invocation: dict[str, Any] = {"executionSuccessful": not report.failures}
    if report.failures:
        invocation["toolExecutionNotifications"] = [_notification(failure, root) for failure in report.failures]
    return {
        "$schema": SARIF_SCHEMA,
        "version": SARIF_VERSION,
        "runs": [
            {
                "tool": {
                    "driver": {
                        "name": TOOL_NAME,
                        "version": tool_version(),
                        "rules": [rule(code) for code in codes],
                    }
                },
                "invocations": [invocation],
                "columnKind": "unicodeCodePoints",
                "results": results,
            }
        ],
    }
