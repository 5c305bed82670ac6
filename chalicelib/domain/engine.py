"""The confused-deputy engine: evaluate a trust policy and plan its fix (pure, no I/O).

What "protected" means and how a fix narrows are the README's "How it works". Everything reads the normalised view from
``chalicelib.domain.policy``; ``chalicelib.domain.fix`` builds the fix on a deep copy of the document as written.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass, replace
from functools import lru_cache
from typing import Any, Final

from chalicelib.domain.catalogue import DEFAULT_SERVICES, Entry
from chalicelib.domain.fix import SOURCE_ACCOUNT, SOURCE_ARN, FixPlan, to_fixed_document
from chalicelib.domain.grammar import document_flaws
from chalicelib.domain.models import (
    EngineOptions,
    Evaluation,
    PolicyDoc,
    Problem,
    ProblemCode,
    Require,
    RoleContext,
    Verdict,
)
from chalicelib.domain.policy import (
    ConditionEntry,
    NormalStatement,
    ParsedPolicy,
    PolicyError,
    compact_size,
    iam_glob_match,
    normalise_policy,
    read_policy,
    scalar_text,
    service_match,
    to_compact_json,
)

__all__ = ["SOURCE_ACCOUNT", "SOURCE_ARN", "evaluate", "plan_fix"]

_DEFAULT_OPTIONS: Final = EngineOptions()

_ASSUME_ROLE: Final = "sts:AssumeRole"
_TWELVE_DIGITS: Final = re.compile(r"\d{12}")

# Operators that can pin each key (folded, without ForAnyValue:).
_ACCOUNT_OPERATORS: Final = frozenset({"stringequals", "stringlike", "stringequalsignorecase"})
_ARN_OPERATORS: Final = frozenset({"arnlike", "arnequals", "stringlike", "stringequals"})


@dataclass(frozen=True, slots=True)
class _Operator:
    base: str
    qualifier: str
    if_exists: bool

    @property
    def positive(self) -> bool:
        return "not" not in self.base and self.base != "null"

    @property
    def can_pin(self) -> bool:
        # IfExists is true when the key is absent, ForAllValues is true for an empty set: neither pins.
        return self.positive and not self.if_exists and self.qualifier in ("", "foranyvalue")


@lru_cache(maxsize=512)
def _operator(folded: str) -> _Operator:
    qualifier, _, base = folded.rpartition(":")
    if_exists = base.endswith("ifexists")
    if if_exists:
        base = base.removesuffix("ifexists")
    return _Operator(base=base, qualifier=qualifier, if_exists=if_exists)


@dataclass(frozen=True, slots=True)
class _KeyCheck:
    pinned: bool
    reasons: tuple[str, ...]
    problems: tuple[Problem, ...]
    # Pins that hold but can never match a request: warnings that leave the verdict alone.
    warnings: tuple[Problem, ...] = ()


def _has_wildcard(text: str) -> bool:
    return "*" in text or "?" in text


def _foreign_account(text: str, account: str) -> str | None:
    """The concrete 12-digit account a value names, when it is not the role's own."""
    if _TWELVE_DIGITS.fullmatch(text):
        return text if text != account else None
    parts = text.split(":", 5)
    if len(parts) == 6 and parts[0] == "arn" and _TWELVE_DIGITS.fullmatch(parts[4]) and parts[4] != account:
        return parts[4]
    return None


def _account_value_flaw(text: str, ctx: RoleContext) -> str | None:
    if text == ctx.account_id:
        return None
    return "is a wildcard" if _has_wildcard(text) else "is not this role's account"


def _account_value_flaw_under(text: str, ctx: RoleContext, operator_base: str, entry: Entry) -> str | None:
    return _account_value_flaw(text, ctx)


def _a(label: str) -> str:
    return f"an {label}" if label[:1] in "AEIOU" else f"a {label}"


def _arn_value_flaw(text: str, ctx: RoleContext, operator_base: str, entry: Entry) -> str | None:
    parts = text.split(":", 5)
    if len(parts) != 6 or parts[0] != "arn":
        return "is not an ARN"
    if operator_base == "stringlike" and any(_has_wildcard(part) for part in parts[1:4]):
        # Unlike ArnLike, StringLike's * also matches ':', so a wildcard before the account field lets a
        # foreign ARN such as arn:aws:states:REGION:OTHER:stateMachine:ACCOUNT:1 match: no pin.
        return "has a wildcard before the account field, which StringLike lets match ':' (use ArnLike)"
    if parts[1] != ctx.partition:
        return f"is not in partition {ctx.partition}"
    service, prefix = parts[2], entry.arn_prefix
    if service != prefix and not (_has_wildcard(service) and iam_glob_match(service, prefix, ignore_case=False)):
        # Each service sends its own ARN: a Scheduler role pinned to Step Functions ARNs is not pinned.
        return f"is not {_a(entry.label)} ARN"
    if parts[4] != ctx.account_id:
        return "has a wildcard account" if _has_wildcard(parts[4]) else "is not in this role's account"
    return None


def _unresolved(entry: ConditionEntry) -> str:
    values = [value for value in entry.values if scalar_text(value) is None]
    shown = to_compact_json(values[0] if len(values) == 1 else values)
    return shown if len(shown) <= 80 else shown[:77] + "..."


def _check_key(statement: NormalStatement, key: str, ctx: RoleContext, entry: Entry) -> _KeyCheck:
    """Whether an in-scope statement pins one key, why not, and what a human must look at."""
    folded = key.lower()
    is_account = key == SOURCE_ACCOUNT
    allowed = _ACCOUNT_OPERATORS if is_account else _ARN_OPERATORS
    value_flaw = _account_value_flaw_under if is_account else _arn_value_flaw
    pinned = False
    reasons: list[str] = []
    problems: list[Problem] = []
    warnings: list[Problem] = []
    for condition in statement.conditions:
        if condition.key_folded != folded:
            continue
        operator = _operator(condition.operator_folded)
        texts = [scalar_text(value) for value in condition.values]
        if operator.positive:
            foreign = sorted(
                {account for text in texts if text is not None and (account := _foreign_account(text, ctx.account_id))}
            )
            if foreign:
                problems.append(
                    Problem(
                        ProblemCode.FOREIGN_ACCOUNT,
                        statement.index,
                        f"{condition.key} under {condition.operator} names account {', '.join(foreign)}, not this "
                        f"role's {ctx.account_id}: a confused deputy waiting to happen, or a backdoor",
                        entry.principal,
                    )
                )
        if any(text is None for text in texts):
            problems.append(
                Problem(
                    ProblemCode.UNRESOLVED_VALUE,
                    statement.index,
                    f"{condition.key} under {condition.operator} holds the template value {_unresolved(condition)}: "
                    "resolve the template first",
                    entry.principal,
                )
            )
        reason: str | None
        if not operator.can_pin:
            reason = f"under {condition.operator}, which pins nothing"
        elif operator.base not in allowed:
            reason = f"under {condition.operator}, which cannot pin {key}"
        elif not texts:
            reason = f"under {condition.operator} with no values"
        else:
            reason = None
            for text in texts:
                if text is None:
                    reason = f"under {condition.operator} with an unresolved template value"
                    break
                flaw = value_flaw(text, ctx, operator.base, entry)
                if flaw is not None:
                    reason = f"under {condition.operator} with value {text!r}, which {flaw}"
                    break
        if reason is None:
            pinned = True
            if not is_account and operator.base == "stringequals" and all(_has_wildcard(t or "") for t in texts):
                warnings.append(_unusable_pin(statement, condition, texts, entry))
        else:
            reasons.append(reason)
    return _KeyCheck(pinned, tuple(reasons), tuple(problems), tuple(warnings))


def _shown(value: str) -> str:
    text = repr(value)
    return text if len(text) <= 60 else text[:57] + "..."


def _unusable_pin(
    statement: NormalStatement, condition: ConditionEntry, texts: list[str | None], entry: Entry
) -> Problem:
    shown = _shown(texts[0] or "") if len(texts) == 1 else f"{len(texts)} values, each"
    return Problem(
        ProblemCode.UNUSABLE_PIN,
        statement.index,
        f"{condition.key} under {condition.operator} holds {shown} with * or ?, which StringEquals compares "
        f"literally: no {entry.label} ARN equals it, so {entry.label} can never use this statement (safe, but "
        "probably meant as ArnLike)",
        entry.principal,
    )


def _missing(statement: NormalStatement, key: str, check: _KeyCheck, ctx: RoleContext, entry: Entry) -> Problem:
    if key == SOURCE_ACCOUNT:
        code = ProblemCode.MISSING_SOURCE_ACCOUNT
        absent = f"no {SOURCE_ACCOUNT} condition pins account {ctx.account_id}"
    else:
        code = ProblemCode.MISSING_SOURCE_ARN
        absent = f"no {SOURCE_ARN} condition pins {entry.label} ARNs to account {ctx.account_id}"
    if not check.reasons:
        return Problem(code, statement.index, f"{entry.label} can assume this role: {absent}", entry.principal)
    return Problem(code, statement.index, f"{key} appears only {', and '.join(check.reasons)}", entry.principal)


def _allows_assume_role(statement: NormalStatement) -> bool:
    if statement.actions is not None:
        return any(iam_glob_match(action, _ASSUME_ROLE, ignore_case=True) for action in statement.actions)
    if statement.not_actions is not None:
        return not any(iam_glob_match(action, _ASSUME_ROLE, ignore_case=True) for action in statement.not_actions)
    return False


def _public(statement: NormalStatement) -> bool:
    return statement.principal_star or any("*" in values for _, values in statement.principals)


def _selected_values(statement: NormalStatement, selection: tuple[Entry, ...]) -> tuple[tuple[Entry, ...], bool]:
    """(the selected services the statement names, in order of appearance; whether a template may name one)."""
    named: list[Entry] = []
    template = False
    for kind, values in statement.principals:
        if kind != "service":
            continue
        for value in values:
            found = service_match(value, selection)
            if isinstance(found, Entry):
                if found not in named:
                    named.append(found)
            elif found is not None:
                template = True
    return tuple(named), template


def _who(selection: tuple[Entry, ...]) -> str:
    """Who a statement-wide problem endangers: the one selected service, or all of them."""
    return selection[0].label if len(selection) == 1 else "every guarded service"


def _review_problems(statement: NormalStatement, names_selected: bool, who: str) -> list[Problem]:
    problems: list[Problem] = []
    if _public(statement) and _allows_assume_role(statement):
        shown = 'Principal "*"' if statement.principal_star else 'A "*" principal'
        problems.append(
            Problem(
                ProblemCode.PUBLIC_PRINCIPAL, statement.index, f"{shown} lets anyone assume the role, {who} included"
            )
        )
    if statement.not_principal:
        problems.append(
            Problem(
                ProblemCode.NOT_PRINCIPAL,
                statement.index,
                f"NotPrincipal in an Allow statement trusts everyone not listed, {who} included",
            )
        )
    if statement.not_actions is not None and (names_selected or _public(statement) or statement.not_principal):
        problems.append(
            Problem(
                ProblemCode.NOT_ACTION,
                statement.index,
                f"NotAction in an Allow statement grants {who} every action it does not list",
            )
        )
    return problems


# --------------------------------------------------------------------------------------------------
# Public API


def evaluate(
    document: Mapping[str, Any] | str, ctx: RoleContext, options: EngineOptions = _DEFAULT_OPTIONS
) -> Evaluation:
    """Evaluate a trust policy for a role; never raises, whatever the document holds."""
    try:
        evaluation = _evaluate(document, ctx, options)
    except RecursionError:
        # Documents nested past MAX_DEPTH are refused while being read, so this only happens when the
        # caller itself is already deep in its stack; it is still an answer, not a crash. The answer is
        # built in advance: with the stack this low, even constructing it could run out of frames.
        return _TOO_DEEP_EVALUATION
    if options.services != DEFAULT_SERVICES:
        evaluation = replace(evaluation, wide=True)
    if all(problem.message.isprintable() for problem in evaluation.problems):
        return evaluation
    # A message quotes names from the document, which may hold line breaks: each problem stays one line.
    problems = tuple(replace(p, message=" ".join(p.message.split())) for p in evaluation.problems)
    return replace(evaluation, problems=problems)


_TOO_DEEP: Final = "the document is nested too deeply to evaluate"
_TOO_DEEP_EVALUATION: Final = Evaluation(Verdict.NEEDS_REVIEW, (Problem(ProblemCode.UNPARSEABLE, None, _TOO_DEEP),))


def _evaluate(document: Mapping[str, Any] | str, ctx: RoleContext, options: EngineOptions) -> Evaluation:
    try:
        read = read_policy(document)
    except PolicyError as exc:
        if ctx.service_linked:
            return Evaluation(Verdict.NOT_APPLICABLE)
        return Evaluation(Verdict.NEEDS_REVIEW, (Problem(ProblemCode.UNPARSEABLE, None, str(exc)),))
    if ctx.service_linked:
        # IAM lets no one edit a service-linked role's trust policy, so there is nothing to decide.
        return Evaluation(Verdict.NOT_APPLICABLE, original=read.document)
    refused = _refused(read)
    if refused is not None:
        return refused
    return _judge(read, ctx, options)


def _refused(read: ParsedPolicy) -> Evaluation | None:
    """needs_review for a document IAM would refuse or read ambiguously: never judged, never fixed."""
    if read.duplicate_keys:
        names = ", ".join(_shown(key) for key in read.duplicate_keys[:5])
        more = f" and {len(read.duplicate_keys) - 5} more" if len(read.duplicate_keys) > 5 else ""
        duplicates = Problem(
            ProblemCode.DUPLICATE_KEYS,
            None,
            f"the JSON repeats {names}{more} within one object; which of the values IAM would use is "
            "undocumented, so the document is neither judged nor rewritten",
        )
        # No original: the parsed copy kept only the last of each repeated key, which is not the document.
        return Evaluation(Verdict.NEEDS_REVIEW, (duplicates,))
    problems = [
        Problem(ProblemCode.INVALID_DOCUMENT, index, message) for index, message in document_flaws(read.document)
    ]
    if read.lone_surrogates:
        problems.append(
            Problem(
                ProblemCode.INVALID_DOCUMENT,
                None,
                "a string holds a lone surrogate (an unpaired \\ud800-\\udfff escape), which is not Unicode text",
            )
        )
    return Evaluation(Verdict.NEEDS_REVIEW, tuple(problems), read.document) if problems else None


def _judge(read: ParsedPolicy, ctx: RoleContext, options: EngineOptions) -> Evaluation:
    """The verdict on a document IAM would accept, with its fix."""
    parsed = read.document
    problems: list[Problem] = []
    review = False
    in_scope = False
    named: set[Entry] = set()
    plans: list[FixPlan] = []
    either = options.require == Require.EITHER
    selection = options.services
    who = _who(selection)
    for statement in normalise_policy(parsed):
        if not statement.allow:
            continue
        entries, template = _selected_values(statement, selection)
        found = _review_problems(statement, bool(entries) or template, who)
        if not (
            (entries or template)
            and statement.actions is not None
            and any(iam_glob_match(action, _ASSUME_ROLE, ignore_case=True) for action in statement.actions)
        ):
            problems.extend(found)
            review = review or bool(found)
            continue
        in_scope = True
        named.update(entries)
        if template:
            found.append(
                Problem(
                    ProblemCode.UNRESOLVED_VALUE,
                    statement.index,
                    f"Principal.Service holds a template value that may render to {who}: resolve the template first",
                )
            )
        # A template alone names no service for certain: its pins are read as the first selected service's.
        checks = [
            (entry, _check_key(statement, SOURCE_ACCOUNT, ctx, entry), _check_key(statement, SOURCE_ARN, ctx, entry))
            for entry in entries or selection[:1]
        ]
        # Foreign accounts and template values belong to the statement, whichever service reads them: listed once.
        found.extend(checks[0][1].problems)
        found.extend(checks[0][2].problems)
        review = review or bool(found)
        problems.extend(found)
        for entry, account, arn in checks:
            problems.extend(_plan_entry(statement, entry, account, arn, ctx, either, plans))

    services = tuple(entry.principal for entry in selection if entry in named)
    if review:
        return Evaluation(Verdict.NEEDS_REVIEW, tuple(problems), parsed, services=services)
    if not in_scope:
        return Evaluation(Verdict.NOT_APPLICABLE, original=parsed)
    if not plans:
        return Evaluation(Verdict.COMPLIANT, tuple(problems), parsed, services=services)

    fixed, fix_problems = to_fixed_document(parsed, plans, ctx, options)
    if fix_problems:
        return Evaluation(Verdict.NEEDS_REVIEW, (*problems, *fix_problems), parsed, services=services)
    size = compact_size(fixed, number_literals=read.number_literals)
    if size > options.size_quota:
        too_large = Problem(
            ProblemCode.TOO_LARGE,
            None,
            f"the fixed policy would be {size} characters, over the trust-policy size quota of {options.size_quota}",
        )
        return Evaluation(Verdict.NEEDS_REVIEW, (*problems, too_large), parsed, services=services)
    return Evaluation(Verdict.NON_COMPLIANT, tuple(problems), parsed, fixed, services=services)


def _plan_entry(
    statement: NormalStatement,
    entry: Entry,
    account: _KeyCheck,
    arn: _KeyCheck,
    ctx: RoleContext,
    either: bool,
    plans: list[FixPlan],
) -> list[Problem]:
    """One service's missing pins in one statement (appending its fix plan), then its warnings."""
    # require=both asks for aws:SourceAccount only from the services that send it.
    checks = ((SOURCE_ACCOUNT, account), (SOURCE_ARN, arn)) if entry.sends_source_account else ((SOURCE_ARN, arn),)
    missing: tuple[str, ...]
    if either:
        missing = () if any(check.pinned for _, check in checks) else tuple(key for key, _ in checks)
    else:
        missing = tuple(key for key, check in checks if not check.pinned)
    problems = [_missing(statement, key, account if key == SOURCE_ACCOUNT else arn, ctx, entry) for key in missing]
    if missing:
        plans.append(FixPlan(statement.index, missing, either, entry))
    # Warnings (a pin that can never match) are listed beside any verdict and never decide it.
    return [*problems, *account.warnings, *arn.warnings]


def plan_fix(
    document: Mapping[str, Any] | str, ctx: RoleContext, options: EngineOptions = _DEFAULT_OPTIONS
) -> PolicyDoc | None:
    """The fixed document, or None when the policy needs no change or a human must decide."""
    return evaluate(document, ctx, options).fixed_policy
