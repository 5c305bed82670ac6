"""docs/notifications.md stays true: its examples are what the renderers produce."""

import json
import re
from pathlib import Path

import pytest

from chalicelib.domain.render import render_sns, render_sns_digest

DOC = Path(__file__).resolve().parents[2] / "docs" / "notifications.md"


@pytest.fixture(scope="module")
def json_examples():
    return [json.loads(block) for block in re.findall(r"```json\n(.*?)\n```", DOC.read_text(), re.S)]


def _kind(examples, kind):
    [example] = [e for e in examples if e.get("kind") == kind]
    return example


def test_role_example_is_exactly_what_render_sns_produces(json_examples, make_notice):
    # The documented example is the fixture notice, rendered; any schema change must update the doc.
    assert _kind(json_examples, "deputy-guard.role") == json.loads(render_sns(make_notice()).message)


def test_digest_example_has_the_rendered_fields_in_order(json_examples, make_notice):
    example = _kind(json_examples, "deputy-guard.digest")
    rendered = json.loads(render_sns_digest("team-payments", [make_notice("a"), make_notice("b")]).message)
    assert list(example) == list(rendered)
    assert all(list(item) == list(rendered["items"][0]) for item in example["items"])
    assert example["count"] == len(example["items"]) + example["omitted"]


def test_documented_filter_policies_use_only_the_published_attributes(json_examples, make_notice):
    policies = [e for e in json_examples if "kind" not in e]
    published = set(render_sns(make_notice()).attributes)
    assert {"verdict": ["needs_review"]} in policies
    assert all(set(policy) <= published for policy in policies)
