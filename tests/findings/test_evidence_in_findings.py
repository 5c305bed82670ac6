"""Every finding links the AWS evidence of its service: ASFF's recommendation and SARIF's result message."""

from __future__ import annotations

import json
from datetime import UTC, datetime
from pathlib import Path

from chalicelib.domain.asff import to_finding
from chalicelib.domain.catalogue import CATALOGUE, parse_services
from chalicelib.domain.engine import evaluate
from chalicelib.domain.models import Action, EngineOptions, RoleContext
from chalicelib.domain.plan import RoleResult
from deputy_guard.check_output import render
from deputy_guard.checking import CheckOptions, check_paths

ACCOUNT = "111122223333"


def result_for(principal: str, action: Action) -> RoleResult:
    document = {
        "Version": "2012-10-17",
        "Statement": [{"Effect": "Allow", "Principal": {"Service": principal}, "Action": "sts:AssumeRole"}],
    }
    evaluation = evaluate(document, RoleContext(account_id=ACCOUNT), EngineOptions(services=CATALOGUE))
    return RoleResult(
        "svc", f"arn:aws:iam::{ACCOUNT}:role/svc", evaluation.verdict, action, "why", evaluation, document
    )


def test_an_asff_finding_recommends_the_services_own_pin_and_links_its_evidence() -> None:
    (scheduler,) = parse_services("scheduler")
    finding = to_finding(result_for(scheduler.principal, Action.NOTIFIED), region="us-east-1", now=datetime.now(UTC))
    text = finding["Remediation"]["Recommendation"]["Text"]
    assert f"arn:aws:scheduler:*:{ACCOUNT}:*" in text and scheduler.evidence in text
    assert "scan --fix --role svc" in text


def test_an_advise_level_asff_finding_says_the_bot_never_applies_it() -> None:
    (cloudtrail,) = parse_services("cloudtrail")
    finding = to_finding(result_for(cloudtrail.principal, Action.NOTIFIED), region="us-east-1", now=datetime.now(UTC))
    text = finding["Remediation"]["Recommendation"]["Text"]
    assert "never applies it" in text and cloudtrail.evidence in text and "--fix" not in text


def test_a_sarif_result_message_links_the_evidence_of_its_problems_service(tmp_path: Path) -> None:
    path = tmp_path / "trust.json"
    path.write_text(
        json.dumps(
            {
                "Version": "2012-10-17",
                "Statement": [
                    {"Effect": "Allow", "Principal": {"Service": "config.amazonaws.com"}, "Action": "sts:AssumeRole"}
                ],
            }
        )
    )
    report = check_paths([str(path)], CheckOptions(account=ACCOUNT, engine=EngineOptions(services=CATALOGUE)))
    messages = [r["message"]["text"] for r in json.loads(render(report, "sarif"))["runs"][0]["results"]]
    (config,) = parse_services("config")
    assert messages and all(f"Evidence: AWS Config (enforce): {config.evidence}" in m for m in messages)
