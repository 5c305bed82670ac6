"""SNS rendering as pure functions: subject rules, schema v1 fields, attributes, size budget."""

import json
from dataclasses import replace

from chalicelib.domain.models import NOTICE_SCHEMA_VERSION, Action, Problem, ProblemCode, Verdict
from chalicelib.domain.render import SNS_MESSAGE_BUDGET, SNS_SUBJECT_MAX, render_sns, render_sns_digest

ROLE_FIELDS = {
    "services",
    "evidence",
    "account",
    "region",
    "role_name",
    "role_arn",
    "console_url",
    "verdict",
    "problems",
    "action",
    "reason",
    "owner",
    "actor",
    "event_id",
    "time",
    "trigger",
    "change_id",
    "revert_command",
    "before",
    "after",
    "diff",
    "truncated",
}
DIGEST_FIELDS = {
    "schema_version",
    "kind",
    "owner",
    "account",
    "accounts",
    "time",
    "count",
    "worst_verdict",
    "summary",
    "truncated",
    "omitted",
    "items",
}


def _is_sns_subject(subject: str) -> bool:
    return 0 < len(subject) <= SNS_SUBJECT_MAX and all(32 <= ord(c) < 127 for c in subject)


def test_role_message_carries_every_schema_field_with_the_notice_values(make_notice):
    # Given a fixed role's notice
    notice = make_notice()
    # When it is rendered for SNS
    body = json.loads(render_sns(notice).message)
    # Then the body is exactly schema v1 for a role, with the notice's values
    assert set(body) == {"schema_version", "kind"} | ROLE_FIELDS
    assert body["schema_version"] == NOTICE_SCHEMA_VERSION == "1"
    assert body["kind"] == "deputy-guard.role"
    assert body["role_arn"] == notice.role_arn
    assert body["verdict"] == "non_compliant"
    assert body["action"] == "fixed"
    assert body["problems"] == [
        {"code": "missing_source_account", "statement": 0, "message": "statement 0 does not pin aws:SourceAccount"},
        {"code": "missing_source_arn", "statement": 0, "message": "statement 0 does not pin aws:SourceArn"},
    ]
    assert body["before"] == notice.before
    assert body["after"] == notice.after
    assert body["diff"] == notice.diff
    assert body["owner"] == "team-payments"
    assert body["actor"] == notice.actor
    assert body["event_id"] == notice.event_id
    assert body["revert_command"] == "deputy-guard revert OrdersStateMachineRole"
    assert body["console_url"] == "https://console.aws.amazon.com/iam/home#/roles/details/OrdersStateMachineRole"
    assert body["truncated"] is False


def test_role_message_attributes_are_the_three_filter_keys(make_notice):
    message = render_sns(make_notice(verdict=Verdict.NEEDS_REVIEW, action=Action.REVIEW))
    assert message.attributes == {"verdict": "needs_review", "action": "review", "account": "111122223333"}


def test_subject_is_short_ascii_and_names_the_role(make_notice):
    message = render_sns(make_notice())
    assert message.subject == "[deputy-guard] Trust policy fixed: OrdersStateMachineRole (111122223333)"
    assert _is_sns_subject(message.subject)


def test_subject_with_a_64_character_role_name_is_cut_below_100(make_notice):
    # Given the longest role name IAM allows
    name = "R" * 64
    # When rendered
    subject = render_sns(make_notice(name, action=Action.CAPPED)).subject
    # Then the subject still satisfies SNS and shows it was cut
    assert _is_sns_subject(subject)
    assert subject.endswith("...")


def test_digest_subject_folds_unicode_and_control_characters_from_the_owner(make_notice):
    # Given an owner tag with accents, a newline and an emoji
    owner = "équipe\nPaiements 💳"
    subject = render_sns_digest(owner, [make_notice()]).subject
    # Then the subject is one ASCII line
    assert _is_sns_subject(subject)
    assert subject == "[deputy-guard] 1 role for equipe Paiements (worst: non_compliant)"


def test_actor_and_event_may_be_absent(make_notice):
    body = json.loads(render_sns(make_notice(actor=None, event_id=None, revert_command=None)).message)
    assert body["actor"] is None
    assert body["event_id"] is None
    assert body["revert_command"] is None


def test_digest_lists_items_worst_first_with_summary_and_worst_verdict_attribute(make_notice):
    # Given three roles for one owner, the needs_review one last
    notices = [
        make_notice("B-role"),
        make_notice("A-role", action=Action.NOTIFIED),
        make_notice(
            "C-role",
            verdict=Verdict.NEEDS_REVIEW,
            action=Action.REVIEW,
            problems=(Problem(ProblemCode.FOREIGN_ACCOUNT, 0, "pins account 444455556666"),),
        ),
    ]
    # When the digest is rendered
    message = render_sns_digest("team-payments", notices)
    body = json.loads(message.message)
    # Then the schema is the digest's, the worst role leads, and subscribers can filter on the worst verdict
    assert set(body) == DIGEST_FIELDS
    assert body["kind"] == "deputy-guard.digest"
    assert body["count"] == 3
    assert [i["role_name"] for i in body["items"]] == ["C-role", "A-role", "B-role"]
    assert all(set(i) == ROLE_FIELDS for i in body["items"])
    assert body["summary"] == {
        "verdict": {"non_compliant": 2, "needs_review": 1},
        "action": {"fixed": 1, "notified": 1, "review": 1},
    }
    assert body["worst_verdict"] == "needs_review"
    assert message.attributes == {"verdict": "needs_review", "action": "digest", "account": "111122223333"}


def test_digest_across_accounts_says_multiple(make_notice):
    message = render_sns_digest("o", [make_notice(), make_notice("x", account="444455556666")])
    body = json.loads(message.message)
    assert message.attributes["account"] == "multiple"
    assert body["accounts"] == ["111122223333", "444455556666"]


def _huge_notice(make_notice, index, verdict=Verdict.NON_COMPLIANT):
    # Trust policies near IAM's largest quota, with long diffs
    big = {"Version": "2012-10-17", "Statement": [{"Sid": f"S{i:04d}" * 8} for i in range(60)]}
    return make_notice(
        f"role-{index:04d}",
        verdict=verdict,
        before=big,
        after=big,
        diff="\n".join(f"+line {i} " + "x" * 40 for i in range(80)),
    )


def test_digest_of_200_large_roles_fits_sns_by_dropping_documents_first(make_notice):
    # Given 200 roles whose documents alone would be several MiB
    notices = [_huge_notice(make_notice, i) for i in range(200)]
    # When the digest is rendered
    message = render_sns_digest("team", notices)
    body = json.loads(message.message)
    # Then it fits SNS, every role is still listed, and the digest says documents were left out
    assert len(message.message.encode()) <= SNS_MESSAGE_BUDGET
    assert body["truncated"] is True
    assert body["omitted"] == 0
    assert len(body["items"]) == 200
    assert all(i["before"] is None and i["after"] is None and i["truncated"] for i in body["items"])


def test_digest_too_big_even_without_documents_omits_the_least_severe_roles(make_notice):
    # Given 1,500 roles, three of them needing review
    notices = [_huge_notice(make_notice, i) for i in range(1497)]
    notices += [_huge_notice(make_notice, 9000 + i, Verdict.NEEDS_REVIEW) for i in range(3)]
    # When the digest is rendered
    body = json.loads(render_sns_digest("team", notices).message)
    # Then it names how many were omitted and keeps the ones that need review
    assert len(json.dumps(body, separators=(",", ":"), ensure_ascii=False).encode()) <= SNS_MESSAGE_BUDGET
    assert body["count"] == 1500
    assert 0 < body["omitted"] < 1500
    assert len(body["items"]) + body["omitted"] == 1500
    assert [i["verdict"] for i in body["items"][:3]] == ["needs_review"] * 3


def test_a_single_oversized_role_message_keeps_the_facts_and_cuts_the_bulk(make_notice):
    # Given a notice whose diff alone is larger than an SNS message may be
    notice = make_notice(diff="\n".join("+" + "y" * 100 for _ in range(5000)))
    # When rendered
    message = render_sns(notice)
    body = json.loads(message.message)
    # Then it fits, the documents go first, and the cut diff says how much is missing
    assert len(message.message.encode()) <= SNS_MESSAGE_BUDGET
    assert body["truncated"] is True
    assert body["before"] is None
    assert body["role_arn"] == notice.role_arn
    assert "more lines)" in body["diff"]


def test_rendering_is_deterministic(make_notice):
    notice = make_notice()
    assert render_sns(notice) == render_sns(replace(notice))
