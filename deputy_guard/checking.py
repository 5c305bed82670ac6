"""``deputy-guard check PATH...``: find the trust policies in files, directories and stdin, and judge them.

The engine (``chalicelib.domain.engine.evaluate``) decides every verdict. This module only feeds it: it
walks the inputs, learns each role's account and partition from what the input proves (a role ARN, a
plan's caller identity) or from the flags, resolves CloudFormation values, and then says what the engine
could not see (a value known only at deploy time, a literal account when the deploying one is unknown,
a duplicate key lost by the loader). Such a result is ``needs_review``, never a pass.

DESIGN section 12 is the contract; docs/shift-left.md explains the choices.
"""

from __future__ import annotations

import os
import re
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from typing import Any, Final

from chalicelib.domain.engine import evaluate
from chalicelib.domain.models import EngineOptions, Evaluation, Problem, ProblemCode, RoleContext, Verdict
from chalicelib.domain.policy import clone_json, service_kind
from deputy_guard.exits import EXIT_ERROR as EXIT_BAD_INPUT
from deputy_guard.exits import EXIT_FINDINGS, EXIT_OK
from deputy_guard.iac.detect import STDIN, WALKED_SUFFIXES, read_text, sites_in
from deputy_guard.iac.site import InputError, Kind, Site
from deputy_guard.iac.values import ACCOUNT_PLACEHOLDER, STAND_IN, Deployment, Resolution, Unresolved, resolve

__all__ = [
    "CHECK_SCHEMA_VERSION",
    "EXIT_BAD_INPUT",
    "EXIT_FINDINGS",
    "EXIT_OK",
    "PASSING",
    "CheckOptions",
    "Failure",
    "Report",
    "Result",
    "check_paths",
]

PASSING: Final = frozenset({Verdict.COMPLIANT, Verdict.NOT_APPLICABLE})
CHECK_SCHEMA_VERSION: Final = "1"

# How a proposed fix names the deploying account when the check was not told it.
_TERRAFORM_ACCOUNT: Final = "${data.aws_caller_identity.current.account_id}"
_CFN_ACCOUNT: Final = {"Ref": "AWS::AccountId"}
_TWELVE_DIGITS: Final = re.compile(r"(?<!\d)\d{12}(?!\d)")


@dataclass(frozen=True)
class CheckOptions:
    """The flags of ``check`` that shape every evaluation."""

    account: str | None = None
    partition: str | None = None
    role_path: str | None = None
    engine: EngineOptions = field(default_factory=EngineOptions)
    ignore_unknown: bool = False


@dataclass(frozen=True)
class Result:
    """One trust policy's outcome, where it was found, and the fix in the input's own terms."""

    path: str
    kind: Kind
    resource: str | None
    label: str
    line: int | None
    verdict: Verdict
    problems: tuple[Problem, ...]
    original: Any = None
    fixed_policy: Any = None
    note: str | None = None

    @property
    def passing(self) -> bool:
        return self.verdict in PASSING

    def to_dict(self) -> dict[str, Any]:
        """The contract's result object (DESIGN section 12)."""
        return {
            "path": self.path,
            "resource": self.resource,
            "line": self.line,
            "verdict": self.verdict.value,
            "problems": [problem.to_dict() for problem in self.problems],
            "fixed_policy": self.fixed_policy,
        }

    def evaluation(self) -> Evaluation:
        return Evaluation(self.verdict, self.problems, self.original, self.fixed_policy)


@dataclass(frozen=True)
class Failure:
    """An input (or one role in it) that could not be checked."""

    path: str
    message: str
    resource: str | None = None


@dataclass
class Report:
    """Everything one ``check`` run found."""

    results: list[Result] = field(default_factory=list)
    failures: list[Failure] = field(default_factory=list)
    files: int = 0
    skipped: int = 0
    # One named input that was one plain policy or one role: printed as before PATH... existed.
    single: bool = False

    @property
    def exit_code(self) -> int:
        if self.failures:
            return EXIT_BAD_INPUT
        return EXIT_OK if all(result.passing for result in self.results) else EXIT_FINDINGS

    def summary(self) -> dict[str, int]:
        counts = {verdict.value: 0 for verdict in Verdict}
        for result in self.results:
            counts[result.verdict.value] += 1
        return counts


# --------------------------------------------------------------------------------------------------
# Inputs


def _walk(directory: str) -> Iterator[str]:
    for root, folders, files in os.walk(directory):
        folders[:] = sorted(name for name in folders if not name.startswith("."))
        for name in sorted(files):
            if not name.startswith(".") and name.lower().endswith(WALKED_SUFFIXES):
                yield os.path.join(root, name)


# --------------------------------------------------------------------------------------------------
# One site


def _role_facts(site: Site, options: CheckOptions) -> tuple[str | None, str]:
    """(the deploying account if known, the partition), refusing flags that contradict the input."""
    source = "the plan" if site.kind == Kind.TERRAFORM else "the role ARN in the input"
    for flag, given, actual in (
        ("--account", options.account, site.account),
        ("--partition", options.partition, site.partition),
    ):
        if given is not None and actual is not None and given != actual:
            raise InputError(f"{flag} {given} contradicts {source} ({actual}); drop {flag}")
    account = site.account or options.account
    if account is None and site.kind == Kind.POLICY:
        raise InputError("the role's account is unknown: pass --account ID, or give a GetRole response as input")
    return account, site.partition or options.partition or "aws"


def _could_name_states(statement: Any) -> bool:
    """Whether a statement may trust Step Functions, judged only from what is known about it."""
    if not isinstance(statement, dict) or "NotPrincipal" in statement:
        return True
    principal = statement.get("Principal")
    if principal == "*" or not isinstance(principal, dict):
        return True
    for kind, value in principal.items():
        for item in value if isinstance(value, list) else [value]:
            if item == "*" or (kind.lower() == "service" and service_kind(item) != "other"):
                return True
    return False


def _statement_at(document: Any, path: tuple[str | int, ...]) -> Any:
    """The statement an unknown value sits in; None when the value is a statement or more."""
    statements = document.get("Statement") if isinstance(document, dict) else None
    if path[:1] != ("Statement",) or len(path) < 2:
        return None
    if isinstance(statements, dict):
        return statements
    if isinstance(statements, list) and len(path) > 2 and isinstance(path[1], int) and path[1] < len(statements):
        return statements[path[1]]
    return None


def _blocking(unresolved: list[Unresolved], document: Any) -> list[Unresolved]:
    """The unknown values the engine cannot see and that may decide the verdict."""
    blocking: list[Unresolved] = []
    for item in unresolved:
        if item.engine_sees_it or item.path[:1] in (("Version",), ("Id",)):
            continue
        statement = _statement_at(document, item.path)
        if statement is not None and (item.path[-1] == "Sid" or not _could_name_states(statement)):
            continue
        blocking.append(item)
    return blocking


def _statement_of(path: tuple[str | int, ...]) -> int | None:
    if path[:1] != ("Statement",):
        return None
    return path[1] if len(path) > 1 and isinstance(path[1], int) else 0


def _explain_unresolved(problems: list[Problem], unresolved: list[Unresolved]) -> list[Problem]:
    """Add to the engine's unresolved_value problems why each value is unknown."""
    reasons: dict[int | None, list[str]] = {}
    for item in unresolved:
        if item.engine_sees_it:
            reasons.setdefault(_statement_of(item.path), []).append(item.reason)
    out: list[Problem] = []
    for problem in problems:
        why = reasons.get(problem.statement)
        if problem.code == ProblemCode.UNRESOLVED_VALUE and why:
            problem = Problem(problem.code, problem.statement, f"{problem.message} ({'; '.join(dict.fromkeys(why))})")
        out.append(problem)
    return out


def _display(value: Any, mapping: Mapping[str, Any]) -> Any:
    """``value`` with every resolved string (and stand-in) written back as the input had it."""
    if isinstance(value, str):
        return clone_json(mapping[value]) if value in mapping else value
    if isinstance(value, list):
        return [_display(item, mapping) for item in value]
    if isinstance(value, dict):
        if len(value) == 1:
            ((key, item),) = value.items()
            stand_in = next(iter(item), None) if isinstance(item, dict) and len(item) == 1 else key
            if isinstance(stand_in, str) and stand_in.startswith(STAND_IN) and stand_in in mapping:
                return clone_json(mapping[stand_in])
        return {key: _display(item, mapping) for key, item in value.items()}
    return value


def _replace_text(value: Any, old: str, new: str) -> Any:
    if isinstance(value, str):
        return value.replace(old, new)
    if isinstance(value, list):
        return [_replace_text(item, old, new) for item in value]
    if isinstance(value, dict):
        return {key: _replace_text(item, old, new) for key, item in value.items()}
    return value


def _cfn_display(resolution: Resolution, context: RoleContext, options: EngineOptions) -> dict[str, Any]:
    mapping = dict(resolution.display)
    mapping.setdefault(context.account_id, _CFN_ACCOUNT)
    for template in options.source_arns:
        rendered = template.format(partition=context.partition, account=context.account_id)
        written = template.format(partition="${AWS::Partition}", account="${AWS::AccountId}")
        mapping.setdefault(rendered, {"Fn::Sub": written})
    return mapping


def _account_unknown(problems: tuple[Problem, ...], kind: Kind) -> tuple[list[Problem], list[str]]:
    """The engine's foreign_account problems, restated: without --account a literal account is unknown."""
    restated: list[Problem] = []
    literals: list[str] = []
    own = "${AWS::AccountId}" if kind == Kind.CLOUDFORMATION else "data.aws_caller_identity"
    for problem in problems:
        if problem.code != ProblemCode.FOREIGN_ACCOUNT:
            continue
        accounts = list(dict.fromkeys(_TWELVE_DIGITS.findall(problem.message)))
        literals.extend(account for account in accounts if account not in literals)
        where = problem.message.split(" names account", 1)[0] if " names account" in problem.message else "a condition"
        restated.append(
            Problem(
                ProblemCode.ACCOUNT_UNKNOWN,
                problem.statement,
                f"{where} names account {', '.join(accounts) or 'a literal account'}, and the deploying account "
                f"is not known: pass --account ID to compare them, or name the deploying account with {own}",
            )
        )
    return restated, literals


class _Judge:
    def __init__(self, options: CheckOptions) -> None:
        self.options = options

    def document(self, site: Site, deployment: Deployment) -> tuple[Any, Resolution | None]:
        if site.template is None:
            return site.policy, None
        resolution = resolve(site.template, site.policy, deployment)
        return resolution.document, resolution

    def run(self, site: Site, account: str, partition: str) -> tuple[Evaluation, Resolution | None, RoleContext]:
        context = RoleContext(
            account_id=account,
            partition=partition,
            path=self.options.role_path or site.role_path,
            role_name=site.role_name,
        )
        document, resolution = self.document(site, Deployment(account, partition))
        return evaluate(document, context, self.options.engine), resolution, context

    def judge(self, path: str, site: Site) -> Result:
        known, partition = _role_facts(site, self.options)

        def result(verdict: Verdict, problems: tuple[Problem, ...], original: Any = None, fixed: Any = None) -> Result:
            return Result(
                path, site.kind, site.resource, site.label, site.line, verdict, problems, original, fixed, site.note
            )

        if site.unknown is not None:
            problem = Problem(ProblemCode.UNRESOLVED_VALUE, None, site.unknown)
            return result(Verdict.NEEDS_REVIEW, (problem,))
        evaluation, resolution, context = self.run(site, known or ACCOUNT_PLACEHOLDER, partition)
        if site.kind in (Kind.POLICY, Kind.GET_ROLE):
            # A policy file that is not a policy is bad input, as it always was for check (exit 2).
            for problem in evaluation.problems:
                if problem.code == ProblemCode.UNPARSEABLE:
                    raise InputError(problem.message)
        verdict, problems = evaluation.verdict, list(evaluation.problems)
        unresolved = resolution.unresolved if resolution is not None else []
        problems = _explain_unresolved(problems, unresolved)
        review: list[Problem] = []
        if site.duplicate_keys:
            review.append(
                Problem(
                    ProblemCode.DUPLICATE_KEYS,
                    None,
                    "an object in the trust policy repeats a key: IAM's handling is undocumented, and the "
                    "template's reader kept only the last value; remove the duplicate",
                )
            )
        blocking = _blocking(unresolved, resolution.document) if resolution is not None else []
        if blocking:
            # What the engine says about a stand-in (or a policy it could not read because of one) is said better here.
            problems = [p for p in problems if p.code != ProblemCode.UNPARSEABLE and STAND_IN not in p.message]
            review.extend(
                Problem(
                    ProblemCode.UNRESOLVED_VALUE,
                    _statement_of(item.path),
                    f"{'.'.join(map(str, item.path)) or 'the policy'} "
                    f"is not known before deployment ({item.reason}), so deputy-guard cannot tell what it allows",
                )
                for item in blocking
            )
        if known is None and any(p.code == ProblemCode.FOREIGN_ACCOUNT for p in problems):
            restated, literals = _account_unknown(evaluation.problems, site.kind)
            if len(literals) == 1:
                # Judge the rest as if that literal were the deploying account: what would remain to fix.
                as_literal, _, _ = self.run(site, literals[0], partition)
                problems = _explain_unresolved(list(as_literal.problems), unresolved)
            else:
                problems = [p for p in problems if p.code != ProblemCode.FOREIGN_ACCOUNT]
            review[:0] = restated
        if review:
            return result(Verdict.NEEDS_REVIEW, (*review, *problems))
        original, fixed = evaluation.original, evaluation.fixed_policy
        if resolution is not None:
            mapping = _cfn_display(resolution, context, self.options.engine)
            original, fixed = _display(original, mapping), _display(fixed, mapping)
        elif known is None and fixed is not None:
            fixed = _replace_text(fixed, ACCOUNT_PLACEHOLDER, _TERRAFORM_ACCOUNT)
        return result(verdict, tuple(problems), original, fixed)


# --------------------------------------------------------------------------------------------------
# The run


def _check_one(report: Report, judge: _Judge, name: str, strict: bool) -> None:
    try:
        sites = sites_in(read_text(name), name, strict=strict)
    except InputError as exc:
        report.failures.append(Failure(name, str(exc)))
        return
    if sites is None:
        report.skipped += 1
        return
    report.files += 1
    for site in sites:
        try:
            report.results.append(judge.judge(name, site))
        except InputError as exc:
            report.failures.append(Failure(name, str(exc), site.resource))


def check_paths(paths: list[str], options: CheckOptions, report: Report | None = None) -> Report:
    """Check every input; unreadable inputs become failures and never stop the others.

    ``report``, when given, is filled as the inputs are checked (a caller stopped part-way sees how far).
    """
    report = report if report is not None else Report()
    judge = _Judge(options)
    seen: set[str] = set()
    for path in paths or [STDIN]:
        if path != STDIN and os.path.isdir(path):
            before = report.files
            for found in _walk(path):
                if found not in seen:
                    seen.add(found)
                    _check_one(report, judge, found, strict=True)
            if report.files == before:
                # Nothing to check where the user pointed: a wrong path or a missing build step, not a pass.
                report.failures.append(
                    Failure(path, "cannot read a trust policy, GetRole response, template or plan in this directory")
                )
        elif path not in seen:
            seen.add(path)
            _check_one(report, judge, path, strict=options.ignore_unknown)
    one_input = len(paths) <= 1 and not (paths and os.path.isdir(paths[0]))
    one_role = len(report.results) == 1 and report.results[0].kind in (Kind.POLICY, Kind.GET_ROLE)
    report.single = one_input and (
        (one_role and not report.failures) or (not report.results and len(report.failures) == 1)
    )
    return report
