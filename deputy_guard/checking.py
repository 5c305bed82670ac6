"""``deputy-guard check PATH...``: find the trust policies in files, directories and stdin, and judge them.

The engine (``chalicelib.domain.engine.evaluate``) decides every verdict. This module only feeds it: it
walks the inputs, learns each role's account and partition from what the input proves (a role ARN, a
plan's caller identity) or from the flags, resolves CloudFormation values, and then says what the engine
could not see (a value known only at deploy time, a literal account when the deploying one is unknown,
a duplicate key lost by the loader). Such a result is ``needs_review``, never a pass.

docs/shift-left.md gives the output and explains the choices.
"""

from __future__ import annotations

import os
import re
from dataclasses import dataclass, field
from typing import Any, Final

from chalicelib.domain.catalogue import DEFAULT_SERVICES, Entry
from chalicelib.domain.engine import evaluate
from chalicelib.domain.models import EngineOptions, Evaluation, Problem, ProblemCode, RoleContext, Verdict
from chalicelib.domain.policy import service_match
from deputy_guard.exits import EXIT_ERROR as EXIT_BAD_INPUT
from deputy_guard.exits import EXIT_FINDINGS, EXIT_OK
from deputy_guard.iac.detect import sites_in
from deputy_guard.iac.display import display_as_written, fix_templates, replace_text, template_display
from deputy_guard.iac.files import DEFAULT_MAX_FILE_SIZE, STDIN, TERRAFORM_SUFFIX, module_files, read_text, walk
from deputy_guard.iac.site import InputError, Kind, Site
from deputy_guard.iac.tfpolicy import marker
from deputy_guard.iac.tfrender import ACCOUNT_REFERENCE, PARTITION_REFERENCE, render_fix, to_terraform
from deputy_guard.iac.tfsource import ROLE_TYPES, TerraformReader, local_sources
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
_TERRAFORM_ACCOUNT: Final = "${" + ACCOUNT_REFERENCE + "}"
_TWELVE_DIGITS: Final = re.compile(r"(?<!\d)\d{12}(?!\d)")
_ENGINE_VIEW: Final = re.compile(r"holds the template value .*: resolve the template first$")
_TERRAFORM_VIEW: Final = "holds a value deputy-guard cannot know before the plan"


@dataclass(frozen=True)
class CheckOptions:
    """The flags of ``check`` that shape every evaluation."""

    account: str | None = None
    partition: str | None = None
    role_path: str | None = None
    engine: EngineOptions = field(default_factory=EngineOptions)
    ignore_unknown: bool = False
    max_file_size: int = DEFAULT_MAX_FILE_SIZE


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
    services: tuple[str, ...] = ()  # the selected principals its in-scope statements trust
    fixed_source: str | None = None
    column: int | None = None

    @property
    def passing(self) -> bool:
        return self.verdict in PASSING

    def to_dict(self, *, with_services: bool = False) -> dict[str, Any]:
        """The contract's result object; ``services``/``auto_fix`` beyond the default selection."""
        row = {
            "path": self.path,
            "resource": self.resource,
            "line": self.line,
            "verdict": self.verdict.value,
            "problems": [problem.to_dict(with_service=with_services) for problem in self.problems],
            "fixed_policy": self.fixed_policy,
        }
        if with_services:
            evaluation = self.evaluation()
            row |= {"services": list(self.services), "auto_fix": evaluation.auto_fix}
        return row

    def evaluation(self) -> Evaluation:
        return Evaluation(self.verdict, self.problems, self.original, self.fixed_policy, self.services)


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
    # Services beyond Step Functions are selected: results say which ones they trust, and whether auto-fixable.
    with_services: bool = False

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


def _could_name_selected(statement: Any, selection: tuple[Entry, ...]) -> bool:
    """Whether a statement may trust a selected service, judged only from what is known about it."""
    if not isinstance(statement, dict) or "NotPrincipal" in statement:
        return True
    principal = statement.get("Principal")
    if principal == "*" or not isinstance(principal, dict) or marker(principal) is not None:
        # A principal known only at deploy time (a dynamic block, a Ref) may name any service.
        return True
    for kind, value in principal.items():
        for item in value if isinstance(value, list) else [value]:
            if item == "*" or (kind.lower() == "service" and service_match(item, selection) is not None):
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


def _blocking(unresolved: list[Unresolved], document: Any, selection: tuple[Entry, ...]) -> list[Unresolved]:
    """The unknown values the engine cannot see and that may decide the verdict."""
    blocking: list[Unresolved] = []
    for item in unresolved:
        if item.engine_sees_it or item.path[:1] in (("Version",), ("Id",)):
            continue
        statement = _statement_at(document, item.path)
        if statement is not None and (item.path[-1] == "Sid" or not _could_name_selected(statement, selection)):
            continue
        blocking.append(item)
    return blocking


def _unknown_principal_types(blocking: list[Unresolved], document: Any) -> dict[int | None, str]:
    """Statement -> the intrinsic its whole Principal is written as, which the engine reads as a principal type."""
    found: dict[int | None, str] = {}
    for item in blocking:
        statement = _statement_at(document, item.path)
        if isinstance(statement, dict) and len(item.path) >= 2 and item.path[-1] in ("Principal", "NotPrincipal"):
            key = marker(statement.get(item.path[-1]))
            if key is not None:
                found[_statement_of(item.path)] = key
    return found


def _statement_of(path: tuple[str | int, ...]) -> int | None:
    if path[:1] != ("Statement",):
        return None
    return path[1] if len(path) > 1 and isinstance(path[1], int) else 0


def _explain_unresolved(
    problems: list[Problem], unresolved: list[Unresolved], terraform: bool = False
) -> list[Problem]:
    """Add to the engine's unresolved_value problems why each value is unknown.

    For Terraform sources the engine's view of the value (the reader's internal form) says nothing to the
    reader of the report: the reason, which names the expression as written, says it instead.
    """
    reasons: dict[int | None, list[str]] = {}
    for item in unresolved:
        if item.engine_sees_it:
            reasons.setdefault(_statement_of(item.path), []).append(item.reason)
    out: list[Problem] = []
    for problem in problems:
        why = reasons.get(problem.statement)
        if problem.code == ProblemCode.UNRESOLVED_VALUE and why:
            message = _ENGINE_VIEW.sub(_TERRAFORM_VIEW, problem.message) if terraform else problem.message
            problem = Problem(problem.code, problem.statement, f"{message} ({'; '.join(dict.fromkeys(why))})")
        out.append(problem)
    return out


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
        path = site.path or path

        def result(
            verdict: Verdict,
            problems: tuple[Problem, ...],
            original: Any = None,
            fixed: Any = None,
            services: tuple[str, ...] = (),
            source: str | None = None,
        ) -> Result:
            return Result(
                path,
                site.kind,
                site.resource,
                site.label,
                site.line,
                verdict,
                problems,
                original,
                fixed,
                site.note,
                services,
                source,
                site.column,
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
        from_source = site.source_form is not None
        problems = _explain_unresolved(problems, unresolved, from_source)
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
        selection = self.options.engine.services
        blocking = _blocking(unresolved, resolution.document, selection) if resolution is not None else []
        if blocking:
            # What the engine says about a stand-in, about a principal known only at deploy time, or about a policy
            # it could not read because of one, is said better here.
            unknown = _unknown_principal_types(blocking, resolution.document) if resolution is not None else {}
            problems = [
                p
                for p in problems
                if p.code != ProblemCode.UNPARSEABLE
                and STAND_IN not in p.message
                and not (p.code == ProblemCode.INVALID_DOCUMENT and f"'{unknown.get(p.statement)}'" in p.message)
            ]
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
                problems = _explain_unresolved(list(as_literal.problems), unresolved, from_source)
            else:
                problems = [p for p in problems if p.code != ProblemCode.FOREIGN_ACCOUNT]
            review[:0] = restated
        if review:
            return result(Verdict.NEEDS_REVIEW, (*review, *problems), services=evaluation.services)
        original, fixed = evaluation.original, evaluation.fixed_policy
        if fixed is None:
            # Nothing to show: the written form of a policy matters only beside its fix.
            return result(verdict, tuple(problems), original, services=evaluation.services)
        if resolution is not None:
            mapping = template_display(resolution, context, self.options.engine)
            fixed = display_as_written(fixed, mapping)
            # A Terraform fix is shown as the source writes it, not as a diff of the JSON: no original needed.
            original = display_as_written(original, mapping) if site.source_form is None else None
        elif known is None and fixed is not None and site.source_form == "file":
            pass  # file() reads the JSON as it is, never interpolating: the account stays a placeholder to fill in
        elif known is None and fixed is not None:
            if site.source_form is not None and site.partition is None and self.options.partition is None:
                # The added aws:SourceArn names the partition as the account is named: by its data source.
                written = {"partition": "${" + PARTITION_REFERENCE + "}", "account": ACCOUNT_PLACEHOLDER}
                fixed = display_as_written(
                    fixed,
                    {
                        template.format(partition=partition, account=ACCOUNT_PLACEHOLDER): template.format(**written)
                        for template in fix_templates(self.options.engine)
                    },
                )
            fixed = replace_text(fixed, ACCOUNT_PLACEHOLDER, _TERRAFORM_ACCOUNT)
        if site.source_form is None:
            return result(verdict, tuple(problems), original, fixed, evaluation.services)
        fixed = to_terraform(fixed)
        role_type = (site.resource or "").rsplit(".", 2)[-2].split("[")[0] if site.resource else ""
        source = render_fix(fixed, site.source_form, ROLE_TYPES.get(role_type, "assume_role_policy"))
        return result(verdict, tuple(problems), original, fixed, evaluation.services, source)


# --------------------------------------------------------------------------------------------------
# The run


def _check_one(report: Report, judge: _Judge, name: str, strict: bool) -> None:
    try:
        sites = sites_in(read_text(name, judge.options.max_file_size), name, strict=strict)
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


def _check_terraform(report: Report, judge: _Judge, directories: dict[str, list[str]], only: str | None = None) -> None:
    """The roles of the Terraform modules in ``directories`` (or of the file ``only``), local modules included.

    ``directories`` maps each module directory to the ``.tf`` files a walk already vetted there (empty: list
    them). A directory that another one calls as a local module is read through that call, with its
    arguments. Each root module is read with a reader of its own, so the parse trees of one module at a time
    stay in memory (a walk of thousands of modules would otherwise keep every tree for the garbage collector
    to visit).
    """
    limit = judge.options.max_file_size
    reported = {failure.path for failure in report.failures}

    def listed(directory: str) -> list[str]:
        if directories.get(directory):
            return directories[directory]
        files = module_files(directory, limit)
        for item in files:
            if item.refusal is not None and item.path not in reported:
                reported.add(item.path)
                report.failures.append(Failure(item.path, item.refusal))
        return [item.path for item in files if item.refusal is None]

    def read(name: str) -> str:
        return read_text(name, limit)

    called: set[str] = set()
    if only is None:
        for directory, files in directories.items():
            for name in files:
                try:
                    sources = local_sources(read(name))
                except InputError:
                    continue  # reported when the module is read
                called.update(os.path.realpath(os.path.join(directory, source)) for source in sources)
    files_read: set[str] = set()
    directories_read: set[str] = set()

    def check_root(directory: str) -> None:
        reader = TerraformReader(read, listed)
        for site in reader.sites(directory, only):
            try:
                report.results.append(judge.judge(site.path or directory, site))
            except InputError as exc:
                report.failures.append(Failure(site.path or directory, str(exc), site.resource))
        for path, message in reader.failures:
            if path not in reported:
                reported.add(path)
                report.failures.append(Failure(path, message))
        files_read.update(reader.files_read)
        directories_read.update(reader.directories_read)
        reader.close()

    for directory in directories:
        if os.path.realpath(directory) not in called:
            check_root(directory)
    # A directory some `source` line named but no module call read (the line was not a module's) is a root.
    for directory in directories:
        if os.path.realpath(directory) not in directories_read:
            check_root(directory)
    report.files += 1 if only is not None else len(files_read)


def check_paths(paths: list[str], options: CheckOptions, report: Report | None = None) -> Report:
    """Check every input; unreadable inputs become failures and never stop the others.

    ``report``, when given, is filled as the inputs are checked (a caller stopped part-way sees how far).
    """
    report = report if report is not None else Report()
    report.with_services = options.engine.services != DEFAULT_SERVICES
    judge = _Judge(options)
    seen: set[str] = set()
    for path in paths or [STDIN]:
        if path != STDIN and os.path.isdir(path):
            before = report.files, len(report.failures)
            modules: dict[str, list[str]] = {}
            for found in walk(path, options.max_file_size):
                if found.path in seen:
                    continue
                seen.add(found.path)
                if found.refusal is not None:
                    report.failures.append(Failure(found.path, found.refusal))
                elif found.path.endswith(TERRAFORM_SUFFIX):
                    modules.setdefault(os.path.dirname(found.path), []).append(found.path)
                else:
                    _check_one(report, judge, found.path, strict=True)
            if modules:
                _check_terraform(report, judge, modules)
            if (report.files, len(report.failures)) == before:
                # Nothing to check where the user pointed: a wrong path or a missing build step, not a pass.
                report.failures.append(
                    Failure(path, "cannot read a trust policy, GetRole response, template or plan in this directory")
                )
        elif path not in seen:
            seen.add(path)
            if path.endswith(TERRAFORM_SUFFIX) and os.path.isfile(path):
                _check_terraform(report, judge, {os.path.dirname(path) or ".": []}, only=path)
            else:
                _check_one(report, judge, path, strict=options.ignore_unknown)
    one_input = len(paths) <= 1 and not (paths and os.path.isdir(paths[0]))
    one_role = len(report.results) == 1 and report.results[0].kind in (Kind.POLICY, Kind.GET_ROLE)
    report.single = one_input and (
        (one_role and not report.failures) or (not report.results and len(report.failures) == 1)
    )
    return report
