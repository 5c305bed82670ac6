"""The cold path: importing the app and answering an irrelevant event load no AWS SDK machinery.

Powertools imports the bare ``botocore`` package for its user agent; what costs a cold start is boto3,
botocore's session and client machinery, and creating clients.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]

SCRIPT = """
import json, sys
import app
HEAVY = ("boto3", "botocore", "botocore.session", "botocore.client")
loaded_at_import = sorted(m for m in HEAVY if m in sys.modules)
event = json.load(open(sys.argv[1]))
result = app.on_iam_event(event, None)
loaded_after_event = sorted(m for m in HEAVY if m in sys.modules)
print(json.dumps({"import": loaded_at_import, "event": loaded_after_event, "result": result}))
"""


def run(fixture: str) -> dict:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("DEPUTY_GUARD_", "AWS_"))}
    env["AWS_DEFAULT_REGION"] = "us-east-1"
    out = subprocess.run(
        [sys.executable, "-c", SCRIPT, str(ROOT / "tests" / "fixtures" / "events" / fixture)],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
        check=True,
    )
    return json.loads(out.stdout.strip().splitlines()[-1])


def test_import_and_an_irrelevant_event_stay_off_boto3() -> None:
    outcome = run("CreateRole-lambda-irrelevant.json")
    assert outcome["import"] == []
    assert outcome["event"] in ([], ["botocore"])
    assert outcome["result"]["reason"] == "no_step_functions_principal"


def test_a_failed_call_is_answered_without_boto3_too() -> None:
    outcome = run("AttachRolePolicy-failed-NoSuchEntity.json")
    assert outcome["event"] in ([], ["botocore"]) and outcome["result"]["reason"] == "failed_call"
