"""decide() by catalogue level: an advise-level service's patch is offered in every mode and never written."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest

from chalicelib.domain.catalogue import CATALOGUE
from chalicelib.domain.models import Action, Evaluation, Mode, Problem, ProblemCode, RoleRecord, Verdict
from chalicelib.domain.plan import Run, decide
from chalicelib.domain.settings import Settings

ROLE = RoleRecord("trail", "arn:aws:iam::111122223333:role/trail", "/", {})
NOW = datetime(2026, 12, 7, tzinfo=UTC)
SETTINGS = Settings(services=CATALOGUE)


def finding(*services: str) -> Evaluation:
    problem = Problem(ProblemCode.MISSING_SOURCE_ARN, 0, "no pin", services[0])
    return Evaluation(Verdict.NON_COMPLIANT, (problem,), {"Statement": []}, {"Statement": []}, services)


@pytest.mark.parametrize(
    ("mode", "forced", "expected"),
    [
        (Mode.ENFORCE, False, Action.NOTIFIED),
        (Mode.NOTIFY, False, Action.NOTIFIED),
        (Mode.DRY_RUN, False, Action.WOULD_NOTIFY),
        (Mode.ENFORCE, True, Action.NOTIFIED),  # an explicit remediation request does not write it either
    ],
)
def test_an_advise_level_service_is_never_fixed(mode: Mode, forced: bool, expected: Action) -> None:
    run = Run(mode=mode, trigger="event", max_fixes=50, forced=forced)
    action, reason = decide(finding("cloudtrail.amazonaws.com"), ROLE, settings=SETTINGS, run=run, today=NOW)
    assert action is expected
    assert "verify before applying" in reason and "CloudWatch Logs delivery role" in reason


def test_one_advise_level_service_in_a_role_holds_back_the_whole_fix() -> None:
    run = Run(mode=Mode.ENFORCE, trigger="event", max_fixes=50)
    evaluation = finding("states.amazonaws.com", "codedeploy.amazonaws.com")
    assert evaluation.auto_fix is False
    assert decide(evaluation, ROLE, settings=SETTINGS, run=run, today=NOW)[0] is Action.NOTIFIED


def test_an_enforce_level_service_is_fixed_in_enforce_mode() -> None:
    run = Run(mode=Mode.ENFORCE, trigger="event", max_fixes=50)
    assert decide(finding("scheduler.amazonaws.com"), ROLE, settings=SETTINGS, run=run, today=NOW)[0] is Action.FIXED
