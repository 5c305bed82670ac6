"""The benchmarks' account: a block of 100 roles of known verdicts, repeated, for moto or for fastaws.

Per 100 roles: 70 unrelated, 20 compliant Step Functions roles, 8 vulnerable and 2 needing review (10 %
flagged), or, with ``flagged`` above 10, that many flagged roles in place of unrelated Lambda roles.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

from bench.fastaws import world_account, world_role

V = "2012-10-17"


def _assume(principal: dict[str, Any], **extra: Any) -> dict[str, Any]:
    return {"Effect": "Allow", "Principal": principal, "Action": "sts:AssumeRole", **extra}


def _doc(*statements: dict[str, Any]) -> dict[str, Any]:
    return {"Version": V, "Statement": list(statements)}


@dataclass(frozen=True)
class Shape:
    """One kind of role in the mix: its name prefix, path, trust document, tags and expected verdict."""

    prefix: str
    verdict: str
    document: dict[str, Any]
    path: str = "/"
    tags: tuple[tuple[str, str], ...] = ()


def shapes(account: str, flagged: int = 10) -> list[Shape]:
    """One block of 100 roles: 70 unrelated, 20 compliant Step Functions roles, 8 vulnerable, 2 needs_review.

    ``flagged`` (10 to 50) is the share of flagged roles in percent: above 10, vulnerable CDK-shaped roles
    take the place of as many unrelated Lambda roles.
    """
    if not 10 <= flagged <= 50:
        raise SystemExit(f"--flagged takes percentages from 10 to 50, not {flagged}")
    extra = flagged - 10
    states = {"Service": "states.amazonaws.com"}
    pins = {
        "StringEquals": {"aws:SourceAccount": account},
        "ArnLike": {"aws:SourceArn": f"arn:aws:states:us-east-1:{account}:stateMachine:*"},
    }
    owner = (("owner", "data-platform"),)
    block: list[tuple[int, Shape]] = [
        # 70 unrelated (not_applicable): no Step Functions principal, or service-linked.
        (
            40 - extra,
            Shape("lambda-fn", "not_applicable", _doc(_assume({"Service": "lambda.amazonaws.com"})), tags=owner),
        ),
        (15, Shape("ecs-task", "not_applicable", _doc(_assume({"Service": "ecs-tasks.amazonaws.com"})))),
        (12, Shape("ec2-node", "not_applicable", _doc(_assume({"Service": "ec2.amazonaws.com"})), path="/infra/")),
        (
            2,
            Shape(
                "edge-fn",
                "not_applicable",
                _doc(_assume({"Service": ["lambda.amazonaws.com", "edgelambda.amazonaws.com"]})),
                path="/service-role/",
            ),
        ),
        (
            1,
            Shape(
                "AWSServiceRoleForStepFunctions",
                "not_applicable",
                _doc(_assume(states)),
                path="/aws-service-role/states.amazonaws.com/",
            ),
        ),
        # 20 compliant Step Functions roles.
        (12, Shape("sfn-ok", "compliant", _doc(_assume(states, Condition=pins)), tags=owner)),
        (
            5,
            Shape(
                "sfn-ok-regional",
                "compliant",
                _doc(_assume({"Service": ["states.eu-west-1.amazonaws.com"]}, Condition=pins)),
                path="/service-role/",
            ),
        ),
        (
            3,
            Shape(
                "sfn-ok-split",
                "compliant",
                _doc(_assume({"Service": "lambda.amazonaws.com"}), _assume(states, Condition=pins)),
            ),
        ),
        # 8 vulnerable (non_compliant): the shapes CDK, SAM and hand-written templates produce.
        (3 + extra, Shape("sfn-cdk", "non_compliant", _doc(_assume(states)), tags=owner)),
        (
            2,
            Shape(
                "sfn-sam",
                "non_compliant",
                {
                    "Version": V,
                    "Statement": [{**_assume({"Service": ["states.amazonaws.com"]}), "Action": ["sts:AssumeRole"]}],
                },
                tags=(("aws:cloudformation:stack-name", "orders-prod"), ("team", "orders")),
            ),
        ),
        (
            1,
            Shape(
                "sfn-mixed",
                "non_compliant",
                _doc(_assume({"Service": ["lambda.amazonaws.com", "states.amazonaws.com"]})),
            ),
        ),
        (
            2,
            Shape(
                "sfn-partial",
                "non_compliant",
                _doc(_assume(states, Condition={"StringEquals": {"aws:SourceAccount": account}})),
                path="/teams/analytics/",
            ),
        ),
        # 2 needs_review: a foreign account pinned, or anyone allowed.
        (
            1,
            Shape(
                "sfn-partner",
                "needs_review",
                _doc(_assume(states, Condition={"StringEquals": {"aws:SourceAccount": "444455556666"}})),
            ),
        ),
        (1, Shape("sfn-open", "needs_review", _doc(_assume({"Service": "states.amazonaws.com", "AWS": "*"})))),
    ]
    expanded = [shape for count, shape in block for _ in range(count)]
    assert len(expanded) == 100, len(expanded)
    return expanded


def check_shapes(block: list[Shape], account: str) -> None:
    """Every shape must get the verdict the mix says, or the benchmark measures the wrong thing."""
    from chalicelib.domain.engine import evaluate
    from chalicelib.domain.models import RoleContext

    for shape in {s.prefix: s for s in block}.values():
        context = RoleContext(account_id=account, path=shape.path, role_name=shape.prefix)
        verdict = evaluate(shape.document, context).verdict.value
        if verdict != shape.verdict:
            raise SystemExit(f"mix error: {shape.prefix} evaluates {verdict}, expected {shape.verdict}")


def mix(block: list[Shape], start: int, stop: int) -> Iterator[tuple[str, Shape, str]]:
    """Roles ``start``..``stop``-1 of the mix: name, shape and trust policy text."""
    texts = {id(s): json.dumps(s.document) for s in block}
    for index in range(start, stop):
        shape = block[index % len(block)]
        yield f"{shape.prefix}-{index:05d}", shape, texts[id(shape)]


def seed(backend: Any, block: list[Shape], start: int, stop: int) -> dict[str, str]:
    """Create roles ``start``..``stop``-1 in moto's IAM backend directly; returns name -> expected verdict."""
    expected = {}
    for name, shape, text in mix(block, start, stop):
        tags = [{"Key": k, "Value": v} for k, v in shape.tags]
        backend.create_role(name, text, shape.path, None, "", tags, None)
        expected[name] = shape.verdict
    return expected


def world(account: str, block: list[Shape], size: int) -> tuple[dict[str, Any], dict[str, str]]:
    """fastaws's world of one account with ``size`` roles of the mix; and name -> expected verdict."""
    roles = [world_role(name, shape.path, text, shape.tags) for name, shape, text in mix(block, 0, size)]
    expected = {name: shape.verdict for name, shape, _text in mix(block, 0, size)}
    return {"management": account, "accounts": [world_account(account, roles)]}, expected
