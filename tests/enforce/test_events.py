"""events.to_role_ref over real-shaped EventBridge/CloudTrail records (pure: no AWS)."""

from __future__ import annotations

import copy

import pytest

from chalicelib.domain.events import RoleRef, Session, Skip, self_role_from_arn, to_role_ref
from tests.world import ACCOUNT, load_event

BOT = (ACCOUNT, "deputy-guard-prod")


def never_self(_issuer: tuple[str, str]) -> bool:
    return False


@pytest.mark.parametrize(
    ("fixture", "role_name", "event_name"),
    [
        ("CreateRole-states-vulnerable.json", "order-pipeline-sfn", "CreateRole"),
        ("CreateRole-minimal-role-name-only.json", "order-pipeline-sfn", "CreateRole"),
        ("UpdateAssumeRolePolicy-states-conditions-removed.json", "order-pipeline-sfn", "UpdateAssumeRolePolicy"),
        ("PutRolePolicy-states-role.json", "order-pipeline-sfn", "PutRolePolicy"),
        ("AttachRolePolicy-states-role.json", "order-pipeline-sfn", "AttachRolePolicy"),
        ("TagRole-mode-enforce.json", "order-pipeline-sfn", "TagRole"),
        ("UntagRole-exempt-removed.json", "order-pipeline-sfn", "UntagRole"),
    ],
)
def test_relevant_events_point_at_their_role(fixture: str, role_name: str, event_name: str) -> None:
    # Given a CloudTrail-via-EventBridge event about a role
    event = load_event(fixture)
    # When it is read
    ref = to_role_ref(event, never_self)
    # Then it points at the role, with the event id and the actor
    assert isinstance(ref, RoleRef)
    assert (ref.role_name, ref.event_name, ref.event_id) == (role_name, event_name, event["id"])
    assert ref.account == ACCOUNT
    assert ref.actor == event["detail"]["userIdentity"]["arn"]


@pytest.mark.parametrize(
    ("fixture", "reason"),
    [
        ("CreateRole-lambda-irrelevant.json", "no_step_functions_principal"),
        ("UpdateAssumeRolePolicy-ec2-irrelevant.json", "no_step_functions_principal"),
        ("UpdateAssumeRolePolicy-no-parameters.json", "no_role_name"),
        ("AttachRolePolicy-failed-NoSuchEntity.json", "failed_call"),
    ],
)
def test_events_that_need_no_work_are_skipped_with_a_reason(fixture: str, reason: str) -> None:
    result = to_role_ref(load_event(fixture), never_self)
    assert isinstance(result, Skip)
    assert result.reason == reason


def test_own_echo_is_skipped() -> None:
    # Given the event CloudTrail records for the bot's own UpdateAssumeRolePolicy
    event = load_event("UpdateAssumeRolePolicy-echo-of-deputy-guard.json")
    # When read with the bot's identity known
    result = to_role_ref(event, lambda session: session.issuer == BOT)
    # Then it is an echo
    assert isinstance(result, Skip) and result.reason == "own_event"


def test_identity_is_not_resolved_for_irrelevant_events() -> None:
    asked: list[tuple[str, str]] = []

    def is_self(issuer: tuple[str, str]) -> bool:
        asked.append(issuer)
        return False

    to_role_ref(load_event("CreateRole-lambda-irrelevant.json"), is_self)
    to_role_ref(load_event("AttachRolePolicy-failed-NoSuchEntity.json"), is_self)
    assert asked == []


def test_user_agent_claiming_to_be_the_bot_does_not_make_an_event_an_echo() -> None:
    # Given an attacker's call whose user agent imitates deputy-guard
    event = load_event("UpdateAssumeRolePolicy-states-conditions-removed.json")
    event["detail"]["userAgent"] = "deputy-guard/0.1.0"
    # Then the event is still handled: only the session issuer identifies the bot
    assert isinstance(to_role_ref(event, lambda session: session.issuer == BOT), RoleRef)


def test_role_name_falls_back_to_the_response_element() -> None:
    event = load_event("CreateRole-states-vulnerable.json")
    del event["detail"]["requestParameters"]["roleName"]
    ref = to_role_ref(event, never_self)
    assert isinstance(ref, RoleRef) and ref.role_name == "order-pipeline-sfn"


def test_malformed_role_name_is_never_guessed() -> None:
    event = load_event("PutRolePolicy-states-role.json")
    event["detail"]["requestParameters"]["roleName"] = "../../etc/passwd"
    result = to_role_ref(event, never_self)
    assert isinstance(result, Skip) and result.reason == "no_role_name"


@pytest.mark.parametrize(
    "mutate",
    [
        lambda e: e.clear(),
        lambda e: e.__setitem__("detail", "not an object"),
        lambda e: e.__setitem__("source", "aws.s3"),
        lambda e: e["detail"].__setitem__("eventName", "DeleteRole"),
        lambda e: e["detail"].__setitem__("requestParameters", None),
        lambda e: e.pop("id") and e["detail"].pop("eventID"),
    ],
)
def test_malformed_events_are_skipped_not_raised(mutate: object) -> None:
    event = copy.deepcopy(load_event("AttachRolePolicy-states-role.json"))
    mutate(event)  # type: ignore[operator]
    result = to_role_ref(event, never_self)
    assert isinstance(result, Skip)


def test_garbled_identity_still_points_at_the_role_without_an_actor() -> None:
    event = load_event("AttachRolePolicy-states-role.json")
    event["detail"]["userIdentity"] = ["odd"]
    ref = to_role_ref(event, never_self)
    assert isinstance(ref, RoleRef) and ref.actor is None


def test_non_mapping_event_is_skipped() -> None:
    assert to_role_ref(["not", "an", "event"]) == Skip("not_an_object")


@pytest.mark.parametrize(
    ("arn", "expected"),
    [
        ("arn:aws:iam::111122223333:role/deputy-guard-prod", BOT),
        ("arn:aws:iam::111122223333:role/service/deputy-guard-prod", BOT),
        ("arn:aws:sts::111122223333:assumed-role/deputy-guard-prod/session", BOT),
        ("arn:aws:iam::111122223333:user/deputy-guard-prod", None),
    ],
)
def test_self_role_from_arn(arn: str, expected: tuple[str, str] | None) -> None:
    assert self_role_from_arn(arn) == expected


def test_the_session_asked_about_carries_its_issuer_and_its_session_name() -> None:
    # Given the bot's echo / When read / Then is_self sees the issuing role and the session name CloudTrail recorded
    seen: list[Session] = []
    to_role_ref(load_event("UpdateAssumeRolePolicy-echo-of-deputy-guard.json"), lambda s: seen.append(s) or False)
    assert seen == [Session(ACCOUNT, "deputy-guard-prod", "deputy-guard-prod")]


def test_a_session_arn_of_another_role_gives_no_session_name() -> None:
    # Given an event whose session ARN names another role than its issuer (a forged or odd record)
    event = load_event("UpdateAssumeRolePolicy-echo-of-deputy-guard.json")
    event["detail"]["userIdentity"]["arn"] = f"arn:aws:sts::{ACCOUNT}:assumed-role/someone-else/deputy-guard"
    seen: list[Session] = []
    to_role_ref(event, lambda s: seen.append(s) or False)
    assert seen == [Session(ACCOUNT, "deputy-guard-prod", None)]
