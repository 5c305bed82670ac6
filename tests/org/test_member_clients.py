"""What a member account's first client costs, and what the bot's IAM clients parse (moto in-process)."""

from __future__ import annotations

import json
from collections.abc import Callable
from datetime import datetime
from typing import Any

import botocore.session
import pytest

from chalicelib.adapters import aws
from tests.world import VULNERABLE, World

MakeWorld = Callable[..., World]


def test_iam_answers_keep_their_timestamps_as_text_and_sts_its_datetimes(make_world: MakeWorld) -> None:
    # Given a role, read by the bot's own IAM client and through a member account's
    world = make_world(idempotent=False)
    arn = world.create_role("orders-sfn", VULNERABLE)
    own = aws.make_client("iam").get_role(RoleName="orders-sfn")["Role"]
    member = aws.member_client(arn, "iam").get_role(RoleName="orders-sfn")["Role"]
    assumed = aws.make_client("sts").assume_role(RoleArn=arn, RoleSessionName="test")["Credentials"]
    # Then IAM's CreateDate stays the text IAM sent (nothing reads it: parsing it is wasted CPU), while
    # STS's Expiration, which the credential cache reads, is still a datetime
    assert isinstance(own["CreateDate"], str) and isinstance(member["CreateDate"], str)
    assert datetime.fromisoformat(own["CreateDate"].replace("Z", "+00:00")).year >= 2024
    assert isinstance(assumed["Expiration"], datetime)


def test_member_sessions_share_botocores_built_in_handlers_instead_of_registering_them_again(
    make_world: MakeWorld, monkeypatch: pytest.MonkeyPatch
) -> None:
    # Given a process that has made its own client, and counts how often botocore's built-in handlers
    # (about 250 of them, each checked by introspection) are registered from now on
    world = make_world(idempotent=False)
    aws.make_client("sts")
    registered: list[Any] = []
    original = botocore.session.Session._register_builtin_handlers

    def counting(self: botocore.session.Session, events: Any) -> None:
        registered.append(self)
        original(self, events)

    monkeypatch.setattr(botocore.session.Session, "_register_builtin_handlers", counting)
    world.create_role("orders-sfn", VULNERABLE)
    # When clients are made in twenty member accounts
    documents = []
    for index in range(20):
        client = aws.member_client(f"arn:aws:iam::{100000000000 + index}:role/deputy-guard-member", "iam")
        documents.append(client.get_role(RoleName="orders-sfn")["Role"]["AssumeRolePolicyDocument"])
    # Then none of them registered the built-in handlers again, and each client has them all the same
    # (botocore's own policy decoding is one of them: a plain client hands back a decoded document)
    assert registered == []
    assert documents == [json.loads(json.dumps(VULNERABLE))] * 20
