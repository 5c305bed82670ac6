"""`deputy-guard demo --keep-running`: what a second shell needs to use the running demo, and what arrives.

The export line carries everything the CLI reads (the embedded AWS, its credentials and region, the audit
table, the exemptions, the SNS topic, the Slack stand-in and the REST API's URL), so `scan --fix` from
another shell writes to the same table and notifies the same channels, which the demo then shows.
"""

from __future__ import annotations

import json
import shlex
from collections.abc import Callable, Mapping
from typing import Any, Final

from deputy_guard.api_client import URL_VARIABLE

# The variables a second shell needs, in the order printed.
SHARED_VARIABLES: Final = (
    "AWS_ENDPOINT_URL",
    "AWS_ACCESS_KEY_ID",
    "AWS_SECRET_ACCESS_KEY",
    "AWS_SESSION_TOKEN",
    "AWS_DEFAULT_REGION",
    "AWS_REGION",
    "DEPUTY_GUARD_TABLE",
    "DEPUTY_GUARD_SIGNING_KEY",
    "DEPUTY_GUARD_EXEMPTIONS",
    "DEPUTY_GUARD_SNS_TOPIC_ARN",
    "DEPUTY_GUARD_SLACK_WEBHOOK_URL",
    URL_VARIABLE,
    "NO_PROXY",
    "no_proxy",
)


def export_line(environ: Mapping[str, str], api_url: str) -> str:
    """``unset AWS_PROFILE; export NAME=value ...`` for the variables set, each value quoted for the shell."""
    values = {**environ, URL_VARIABLE: api_url}
    pairs = " ".join(f"{name}={shlex.quote(values[name])}" for name in SHARED_VARIABLES if values.get(name))
    # A profile in the second shell would take precedence over the demo's keys: drop it.
    return f"unset AWS_PROFILE; export {pairs}"


class Arrivals:
    """Prints each Slack or SNS message that arrives after the demo's story (from a second shell's commands)."""

    def __init__(
        self,
        slack_received: list[dict[str, Any]],
        drain_sns: Callable[[], list[dict[str, Any]]],
        out: Callable[[str], None],
    ) -> None:
        self._slack = slack_received
        self._seen = len(slack_received)
        self._drain_sns = drain_sns
        self._out = out

    def check(self) -> None:
        """Print what arrived since the last check."""
        for message in self._slack[self._seen :]:
            text = str(message.get("text", "")).splitlines()
            self._out(f"  Slack: {text[0] if text else json.dumps(message)[:120]}")
        self._seen = len(self._slack)
        for message in self._drain_sns():
            attributes = ", ".join(f"{k}={v}" for k, v in message.get("attributes", {}).items())
            self._out(f"  SNS: {message.get('subject', '')}  [{attributes}]")
