"""The pure decision, branch by branch: verdict, exemptions, tags, mode, CloudFormation, cap -> action (no AWS)."""

from __future__ import annotations

from datetime import UTC, date, datetime
from typing import Any

import pytest

from chalicelib.domain.models import Action, Evaluation, Mode, Problem, ProblemCode, RoleRecord, Verdict
from chalicelib.domain.plan import CFN_STACK_TAG, MODE_TAG, Run, decide, tag_key_problems, tag_value
from chalicelib.domain.settings import Exemption, Settings

TODAY = datetime(2026, 11, 30, 12, 0, tzinfo=UTC)
ACCOUNT = "111122223333"
FINDING = Evaluation(Verdict.NON_COMPLIANT, (Problem(ProblemCode.MISSING_SOURCE_ACCOUNT, 0, "no pin"),))
REVIEW = Evaluation(Verdict.NEEDS_REVIEW, (Problem(ProblemCode.FOREIGN_ACCOUNT, 0, "another account"),))


def role(name: str = "pipeline", path: str = "/", **tags: str) -> RoleRecord:
    return RoleRecord(name=name, arn=f"arn:aws:iam::{ACCOUNT}:role{path}{name}", path=path, document={}, tags=tags)


def run(mode: Mode, *, forced: bool = False, fixes: int = 0, cap: int = 50) -> Run:
    return Run(mode=mode, trigger="test", max_fixes=cap, forced=forced, fixes=fixes)


CASES: list[tuple[str, Evaluation, RoleRecord, Settings, Run, Action, str]] = [
    # verdicts that need nothing
    ("compliant", Evaluation(Verdict.COMPLIANT), role(), Settings(), run(Mode.ENFORCE), Action.NONE, "compliant"),
    (
        "not applicable",
        Evaluation(Verdict.NOT_APPLICABLE),
        role(),
        Settings(),
        run(Mode.ENFORCE),
        Action.NONE,
        "no statement lets Step Functions",
    ),
    (
        "service-linked",
        Evaluation(Verdict.NOT_APPLICABLE),
        role(path="/aws-service-role/states.amazonaws.com/"),
        Settings(),
        run(Mode.ENFORCE),
        Action.NONE,
        "service-linked",
    ),
    # exemptions come before everything else, the central list before the tag
    (
        "central exemption by glob",
        FINDING,
        role("legacy-etl"),
        Settings(exemptions=(Exemption(name_glob="legacy-*", reason="migrating"),)),
        run(Mode.ENFORCE),
        Action.EXEMPT,
        "central exemption (name 'legacy-*'): migrating",
    ),
    (
        "central exemption by path",
        FINDING,
        role(path="/sandbox/"),
        Settings(exemptions=(Exemption(path_prefix="/sandbox/"),)),
        run(Mode.ENFORCE),
        Action.EXEMPT,
        "central exemption (path '/sandbox/')",
    ),
    (
        "expired exemption no longer applies",
        FINDING,
        role("legacy-etl"),
        Settings(exemptions=(Exemption(name_glob="legacy-*", expires=date(2026, 11, 29)),)),
        run(Mode.ENFORCE),
        Action.FIXED,
        "enforce mode",
    ),
    (
        "exemption lasts to the end of its day",
        FINDING,
        role("legacy-etl"),
        Settings(exemptions=(Exemption(name_glob="legacy-*", expires=date(2026, 11, 30)),)),
        run(Mode.ENFORCE),
        Action.EXEMPT,
        "until 2026-11-30",
    ),
    ("exempt tag", FINDING, role(**{MODE_TAG: "exempt"}), Settings(), run(Mode.ENFORCE), Action.EXEMPT, "tag"),
    (
        "exempt tag value in any case and spacing",
        FINDING,
        role(**{MODE_TAG: " EXEMPT "}),
        Settings(),
        run(Mode.ENFORCE),
        Action.EXEMPT,
        "exempt",
    ),
    (
        "a mode key in another case is ignored, as IAM's aws:TagKeys guard ignores it",
        FINDING,
        role(**{"Deputy-Guard:Mode": "exempt"}),
        Settings(),
        run(Mode.ENFORCE),
        Action.FIXED,
        "enforce mode",
    ),
    (
        "exempt even for a remediation request",
        FINDING,
        role(**{MODE_TAG: "exempt"}),
        Settings(),
        run(Mode.ENFORCE, forced=True),
        Action.EXEMPT,
        "exempt",
    ),
    (
        "needs review is never rewritten",
        REVIEW,
        role(),
        Settings(),
        run(Mode.ENFORCE, forced=True),
        Action.REVIEW,
        "foreign_account",
    ),
    (
        "exemption beats needs review",
        REVIEW,
        role(**{MODE_TAG: "exempt"}),
        Settings(),
        run(Mode.ENFORCE),
        Action.EXEMPT,
        "exempt",
    ),
    # modes
    ("dry run", FINDING, role(), Settings(), run(Mode.DRY_RUN), Action.WOULD_FIX, "dry-run mode"),
    ("notify", FINDING, role(), Settings(), run(Mode.NOTIFY), Action.NOTIFIED, "notify mode"),
    ("enforce", FINDING, role(), Settings(), run(Mode.ENFORCE), Action.FIXED, "enforce mode"),
    # the role tag overrides the global mode, except a dry run
    (
        "enforce tag in notify mode",
        FINDING,
        role(**{MODE_TAG: "enforce"}),
        Settings(),
        run(Mode.NOTIFY),
        Action.FIXED,
        f"tag {MODE_TAG}=enforce",
    ),
    (
        "notify tag in enforce mode",
        FINDING,
        role(**{MODE_TAG: "notify"}),
        Settings(),
        run(Mode.ENFORCE),
        Action.NOTIFIED,
        f"tag {MODE_TAG}=notify",
    ),
    (
        "a tag never turns a dry run into a write",
        FINDING,
        role(**{MODE_TAG: "enforce"}),
        Settings(),
        run(Mode.DRY_RUN),
        Action.WOULD_FIX,
        "dry-run mode",
    ),
    (
        "an unknown tag value changes nothing",
        FINDING,
        role(**{MODE_TAG: "sometimes"}),
        Settings(),
        run(Mode.NOTIFY),
        Action.NOTIFIED,
        "notify mode",
    ),
    (
        "a remediation request fixes whatever the mode",
        FINDING,
        role(**{MODE_TAG: "notify"}),
        Settings(),
        run(Mode.NOTIFY, forced=True),
        Action.FIXED,
        "explicit remediation request",
    ),
    # CloudFormation-managed roles get the patch, not a rewrite, unless configured or requested
    (
        "cloudformation in enforce",
        FINDING,
        role(**{CFN_STACK_TAG: "orders"}),
        Settings(),
        run(Mode.ENFORCE),
        Action.NOTIFIED,
        "managed by CloudFormation stack 'orders'",
    ),
    (
        "cloudformation in dry run",
        FINDING,
        role(**{CFN_STACK_TAG: "orders"}),
        Settings(),
        run(Mode.DRY_RUN),
        Action.WOULD_NOTIFY,
        "managed by CloudFormation stack 'orders': owners would get the patch",
    ),
    (
        "cloudformation fixed when configured",
        FINDING,
        role(**{CFN_STACK_TAG: "orders"}),
        Settings(fix_cloudformation=True),
        run(Mode.ENFORCE),
        Action.FIXED,
        "enforce mode",
    ),
    (
        "cloudformation fixed on request",
        FINDING,
        role(**{CFN_STACK_TAG: "orders"}),
        Settings(),
        run(Mode.NOTIFY, forced=True),
        Action.FIXED,
        "explicit remediation request",
    ),
    # the cap
    ("below the cap", FINDING, role(), Settings(), run(Mode.ENFORCE, fixes=49, cap=50), Action.FIXED, "enforce"),
    ("at the cap", FINDING, role(), Settings(), run(Mode.ENFORCE, fixes=50, cap=50), Action.CAPPED, "cap of 50"),
    (
        "the cap does not hold back notices",
        FINDING,
        role(),
        Settings(),
        run(Mode.NOTIFY, fixes=50, cap=50),
        Action.NOTIFIED,
        "notify mode",
    ),
]


@pytest.mark.parametrize(
    ("evaluation", "record", "settings", "state", "action", "reason"),
    [pytest.param(*case[1:], id=case[0]) for case in CASES],
)
def test_decide(
    evaluation: Evaluation, record: RoleRecord, settings: Settings, state: Run, action: Action, reason: str
) -> None:
    # Given an evaluated role, the settings and the run / When deciding / Then the action and its reason
    got, why = decide(evaluation, record, settings=settings, run=state, today=TODAY)
    assert got is action
    assert reason in why


def test_decide_is_pure() -> None:
    # Given a run at the cap / When deciding twice / Then the run is not changed by deciding
    state = run(Mode.ENFORCE, fixes=3)
    before: dict[str, Any] = dict(vars(state))
    decide(FINDING, role(), settings=Settings(), run=state, today=TODAY)
    decide(FINDING, role(), settings=Settings(), run=state, today=TODAY)
    assert vars(state) == before


@pytest.mark.parametrize(
    ("tags", "found"),
    [({"deputy-guard:mode": "x"}, "x"), ({"DEPUTY-GUARD:MODE": "y"}, None), ({"owner": "z"}, None), ({}, None)],
)
def test_tag_value_matches_keys_exactly(tags: dict[str, str], found: str | None) -> None:
    assert tag_value(tags, MODE_TAG) == found


@pytest.mark.parametrize("key", ["Deputy-Guard:Mode", "DEPUTY-GUARD:EXEMPT-UNTIL", "deputy-guard:Reason"])
def test_a_control_key_in_another_case_is_a_tag_key_case_problem(key: str) -> None:
    # Given a control tag spelled in another case / When its problems are listed / Then one names it
    problems = tag_key_problems({key: "exempt", MODE_TAG: "notify", "owner": "team-a"})
    assert [p.code.value for p in problems] == ["tag_key_case"]
    assert key in problems[0].message
