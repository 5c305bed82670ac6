"""Slack rendering as pure functions: Block Kit anatomy, Slack's limits, escaping, console links, digests."""

import re

import pytest

from chalicelib.domain.models import Action, Problem, ProblemCode, Verdict
from chalicelib.domain.render import console_url
from chalicelib.domain.render_slack import render_slack, render_slack_digest


def _texts(payload):
    """Every piece of text in a payload, in block order."""
    out = []
    for block in payload["blocks"]:
        if "text" in block:
            out.append(block["text"]["text"])
        out.extend(f["text"] for f in block.get("fields", ()))
        out.extend(e["text"] for e in block.get("elements", ()))
    return out


def _diff_block(payload):
    return next(t for t in _texts(payload) if t.startswith("```"))


def test_role_message_has_header_fields_problems_diff_link_and_revert(make_notice, block_kit):
    # Given a fixed role
    notice = make_notice()
    # When rendered for Slack
    payload = render_slack(notice)
    # Then it is valid Block Kit with every part an owner needs to act
    block_kit(payload)
    header = payload["blocks"][0]
    assert header["type"] == "header"
    assert header["text"]["text"] == ":warning: Trust policy fixed: OrdersStateMachineRole"
    fields = next(b["fields"] for b in payload["blocks"] if "fields" in b)
    labels = [f["text"].split("\n")[0] for f in fields]
    assert labels == ["*Role*", "*Account*", "*Region*", "*Verdict*", "*Action*", "*Owner*", "*Actor*", "*Event*"]
    texts = "\n".join(_texts(payload))
    assert "team-payments" in texts
    assert "`arn:aws:sts::111122223333:assumed-role/Admin/alice`" in texts
    assert "`5b1c2f0e-7d55-4c2a-9d7e-3f0a1b2c3d4e`" in texts
    assert "`missing_source_arn` (statement 0)" in texts
    assert _diff_block(payload) == "```\n" + notice.diff + "\n```"
    assert (
        "<https://console.aws.amazon.com/iam/home#/roles/details/OrdersStateMachineRole|"
        "Open OrdersStateMachineRole in the IAM console>"
    ) in texts
    assert "*Revert:* `deputy-guard revert OrdersStateMachineRole`" in texts


def test_fallback_text_names_role_owner_and_actor(make_notice):
    text = render_slack(make_notice())["text"]
    assert text == (
        "deputy-guard: Trust policy fixed: role OrdersStateMachineRole in 111122223333 (non_compliant)."
        " Owner: team-payments. Actor: arn:aws:sts::111122223333:assumed-role/Admin/alice."
    )


def test_huge_diff_is_cut_to_slack_section_limit_with_a_count_of_hidden_lines(make_notice, block_kit):
    # Given a 10,000-line diff
    diff = "\n".join(f"+    line {i:05d}" for i in range(10_000))
    # When rendered
    payload = render_slack(make_notice(diff=diff))
    # Then the code block fits in one section and says exactly how many lines it left out
    block_kit(payload)
    block = _diff_block(payload)
    assert len(block) <= 3000
    note = block.rpartition("```\n")[2]
    shown = block[len("```\n") :].split("\n```")[0].split("\n")
    hidden = int(re.fullmatch(r"_\u2026 \((\d+) more lines\)_", note.strip()).group(1))
    assert shown == diff.split("\n")[: len(shown)]
    assert len(shown) + hidden == 10_000


def test_a_single_enormous_diff_line_is_cut_rather_than_dropped(make_notice, block_kit):
    payload = render_slack(make_notice(diff="+" + "z" * 10_000))
    block_kit(payload)
    block = _diff_block(payload)
    assert block.startswith("```\n+zzz")
    assert block.endswith("_\u2026 (line cut, 0 more lines)_")
    assert len(block) <= 3000


def test_header_of_a_long_role_name_stays_within_150(make_notice, block_kit):
    payload = render_slack(make_notice("N" * 64, action=Action.CAPPED, reason="r" * 5000))
    block_kit(payload)
    assert len(payload["blocks"][0]["text"]["text"]) <= 150


def test_many_problems_are_listed_within_the_section_limit(make_notice, block_kit):
    problems = tuple(Problem(ProblemCode.UNRESOLVED_VALUE, i, "value " + "v" * 120) for i in range(200))
    payload = render_slack(make_notice(problems=problems))
    block_kit(payload)
    problem_text = next(t for t in _texts(payload) if t.startswith("*Problems*"))
    assert re.search(r"and \d+ more_$", problem_text)


def test_mrkdwn_control_characters_from_tags_and_reasons_are_escaped(make_notice):
    # Given text that would ping the whole channel or forge a link if passed through raw
    notice = make_notice(reason="see <!channel> & <https://evil.example|docs>", owner="a<b>&c")
    # When rendered
    texts = "\n".join(_texts(render_slack(notice)))
    # Then Slack sees plain characters, not mentions or links
    assert "<!channel>" not in texts
    assert "&lt;!channel&gt; &amp; &lt;https://evil.example|docs&gt;" in texts
    assert "a&lt;b&gt;&amp;c" in texts


def test_backticks_in_the_diff_cannot_close_the_code_block(make_notice):
    block = _diff_block(render_slack(make_notice(diff='+  "Sid": "```oops```"')))
    assert block.count("```") == 2


def test_message_without_diff_or_revert_has_no_empty_blocks(make_notice, block_kit):
    payload = render_slack(
        make_notice(
            verdict=Verdict.NEEDS_REVIEW,
            action=Action.REVIEW,
            diff="",
            revert_command=None,
            actor=None,
            event_id=None,
            change_id=None,
        )
    )
    block_kit(payload)
    texts = "\n".join(_texts(payload))
    assert "```" not in texts
    assert "Revert" not in texts
    assert "*Actor*\n_unknown_" in texts
    assert payload["blocks"][0]["text"]["text"].startswith(":rotating_light: Needs human review")


@pytest.mark.parametrize(
    ("partition", "host"),
    [
        ("aws", "console.aws.amazon.com"),
        ("aws-cn", "console.amazonaws.cn"),
        ("aws-us-gov", "console.amazonaws-us-gov.com"),
    ],
)
def test_console_link_uses_the_partition_console(make_notice, partition, host):
    notice = make_notice("PipelineRole", partition=partition)
    expected = f"https://{host}/iam/home#/roles/details/PipelineRole"
    assert console_url(notice.role_arn, notice.role_name) == expected
    assert f"<{expected}|" in "\n".join(_texts(render_slack(notice)))


def test_partition_without_a_public_console_gets_no_link(make_notice, block_kit):
    notice = make_notice(partition="aws-iso")
    assert console_url(notice.role_arn, notice.role_name) is None
    payload = render_slack(notice)
    block_kit(payload)
    assert "/iam/home" not in "\n".join(_texts(payload))


def test_role_names_are_url_quoted_in_console_links():
    assert console_url("arn:aws:iam::111122223333:role/a+b=c,d@e", "a+b=c,d@e").endswith("/details/a+b=c,d@e")
    assert console_url("arn:aws:iam::111122223333:role/x", "we/ird#").endswith("/details/we%2Fird%23")


def test_digest_of_200_roles_stays_within_50_blocks_and_says_how_many_more(make_notice, block_kit):
    # Given 200 roles for one owner, two of them needing review at the end
    notices = [make_notice(f"role-{i:03d}") for i in range(198)]
    notices += [make_notice(f"review-{i}", verdict=Verdict.NEEDS_REVIEW, action=Action.REVIEW) for i in range(2)]
    # When the digest is rendered
    payload = render_slack_digest("team-payments", notices)
    # Then it is one valid message, worst first, with an "and N more" line that accounts for the rest
    block_kit(payload)
    assert len(payload["blocks"]) <= 50
    assert payload["blocks"][0]["text"]["text"] == "deputy-guard digest: 200 roles for team-payments"
    lines = [line for t in _texts(payload) for line in t.split("\n") if line.startswith(":")]
    assert lines[0].startswith(":rotating_light: *review* `review-0`")
    more = next(t for t in _texts(payload) if "more roles" in t)
    hidden = int(re.search(r"and (\d+) more roles", more).group(1))
    assert len(lines) + hidden == 200
    assert len(lines) >= 40, "a digest should still show a useful number of roles"
    assert payload["text"].startswith(
        "deputy-guard digest for team-payments: 200 roles (198 non_compliant, 2 needs_review)"
    )


def test_small_digest_lists_every_role_with_console_links(make_notice, block_kit):
    notices = [make_notice("a"), make_notice("b", action=Action.NOTIFIED)]
    payload = render_slack_digest("team", notices)
    block_kit(payload)
    texts = "\n".join(_texts(payload))
    assert "more roles" not in texts
    assert "`a`" in texts and "`b`" in texts
    assert "<https://console.aws.amazon.com/iam/home#/roles/details/a|console>" in texts
    assert "*Verdicts:* 2 non_compliant" in texts
    assert "*Actions:* 1 fixed \u00b7 1 notified" in texts


def test_digest_needs_at_least_one_notice():
    with pytest.raises(ValueError, match="at least one"):
        render_slack_digest("team", [])
