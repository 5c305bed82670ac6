"""Fixtures for the reliability suite: a moto account watched by the write guard, faults, fast retries."""

from __future__ import annotations

import json
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import Any

import boto3
import pytest

from chalicelib.adapters import aws
from chalicelib.adapters.slack import SlackChannel
from chalicelib.adapters.sns import SnsChannel
from chalicelib.adapters.store import DynamoLedger
from chalicelib.runtime.wiring import PowertoolsOnceGuard
from chalicelib.service.notifier import Notifier
from tests.pacing import VirtualPacing, record_backoffs
from tests.reliability.support import FUZZ_COUNTS, Faults, RecordingLogger, WriteGuard, audit_items
from tests.world import ACCOUNT, World

TOPIC = "deputy-guard-owners"


@pytest.fixture
def backoff_delays(monkeypatch: pytest.MonkeyPatch) -> list[float]:
    """botocore's standard retry mode runs for real, but its computed backoff is recorded instead of slept."""
    return record_backoffs(monkeypatch)


@dataclass
class Account:
    """A moto account with deputy-guard's real gateways, watched on every trust-policy write."""

    world: World
    logs: RecordingLogger
    guard: WriteGuard
    faults: Faults
    _drain: Callable[[], list[str]] | None = None

    @property
    def deps(self) -> Any:
        return self.world.deps

    def create_role(self, name: str, document: dict[str, Any] | None = None, **kwargs: Any) -> str:
        return self.world.create_role(name, document, **kwargs)

    def trust(self, name: str) -> dict[str, Any]:
        return self.world.trust(name)

    def arn(self, name: str) -> str:
        return str(self.world.iam.get_role(RoleName=name)["Role"]["Arn"])

    def records(self, name: str, path: str = "/") -> list[dict[str, Any]]:
        """The role's audit records as stored, oldest first (the role itself may be gone)."""
        return audit_items(self.deps.settings.table, f"arn:aws:iam::{ACCOUNT}:role{path}{name}")

    def use_real_notifier(
        self, *, sns: bool = True, slack_url: str | None = None, sleeps: list[float] | None = None
    ) -> None:
        """Swap the recording notifier for the production one: SNS topic, Slack, DynamoDB ledger.

        What SNS publishes lands in an SQS queue subscribed to the topic (read with ``sns_messages``).
        """
        channels: list[Any] = []
        if sns:
            sns_client = boto3.client("sns", region_name="us-east-1")
            sqs = boto3.client("sqs", region_name="us-east-1")
            topic_arn = sns_client.create_topic(Name=TOPIC)["TopicArn"]
            queue_url = sqs.create_queue(QueueName=TOPIC)["QueueUrl"]
            queue_arn = sqs.get_queue_attributes(QueueUrl=queue_url, AttributeNames=["QueueArn"])["Attributes"][
                "QueueArn"
            ]
            sns_client.subscribe(TopicArn=topic_arn, Protocol="sqs", Endpoint=queue_arn)
            channels.append(SnsChannel(aws.SnsGateway(aws.make_client("sns")), topic_arn))

            def drain() -> list[str]:
                bodies: list[str] = []
                while True:
                    batch = sqs.receive_message(QueueUrl=queue_url, MaxNumberOfMessages=10).get("Messages", [])
                    if not batch:
                        return bodies
                    for message in batch:
                        bodies.append(json.loads(message["Body"])["Message"])
                        sqs.delete_message(QueueUrl=queue_url, ReceiptHandle=message["ReceiptHandle"])

            self._drain = drain
        if slack_url is not None:
            pause = sleeps.append if sleeps is not None else (lambda _seconds: None)
            channels.append(SlackChannel(lambda: slack_url, sleep=pause, max_attempts=3))
        self.deps.notifier = Notifier(
            channels,
            ledger=DynamoLedger(aws.DynamoTable(aws.make_client("dynamodb"), self.deps.settings.table)),
            window_seconds=self.deps.settings.notify_window_hours * 3600,
            logger=self.logs,
            metrics=self.deps.metrics,
        )

    def sns_messages(self) -> list[dict[str, Any]]:
        assert self._drain is not None, "use_real_notifier(sns=True) first"
        return [json.loads(m) for m in self._drain()]

    @property
    def metrics(self) -> dict[str, float]:
        return dict(self.deps.metrics.counts)


@pytest.fixture
def account(
    make_world: Callable[..., World], backoff_delays: list[float], monkeypatch: pytest.MonkeyPatch
) -> Iterator[Callable[..., Account]]:
    """Build a watched account; at the end, no trust-policy write may have broken an invariant.

    Throttling is retried and paced for real, on a virtual clock (backoffs recorded, the adaptive rate
    limiter's waits too): a throttled test takes no longer than one that is not.
    """
    VirtualPacing().install(monkeypatch)  # before any client exists: the limiter is built with the client
    built: list[Account] = []

    def build(**env: Any) -> Account:
        world = make_world(**env)
        logs = RecordingLogger(world.deps.logger)
        world.deps.logger = logs
        if world.deps.once is not None:
            world.deps.once = PowertoolsOnceGuard(world.deps.settings.table, logs, world.deps.metrics)
        made = Account(world, logs, world.guard, Faults())
        built.append(made)
        return made

    yield build
    for made in built:
        assert made.guard.violations == [], made.guard.violations


def pytest_terminal_summary(terminalreporter: Any) -> None:
    if FUZZ_COUNTS:
        terminalreporter.write_sep("-", "deputy-guard fuzzing: inputs tried")
        for name, count in sorted(FUZZ_COUNTS.items()):
            terminalreporter.write_line(f"{name}: {count}")
        terminalreporter.write_line(f"total: {sum(FUZZ_COUNTS.values())}")
