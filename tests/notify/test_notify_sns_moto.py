"""SnsChannel with the real SnsGateway in moto: publish, read back from subscribed SQS queues, parse the envelope."""

import json

import boto3
import pytest
from moto import mock_aws

from chalicelib.adapters.sns import SnsChannel
from chalicelib.domain.models import Action, Verdict

REGION = "us-east-1"
# The example filter policy from docs/notifications.md: only roles a human must look at.
NEEDS_REVIEW_ONLY = {"verdict": ["needs_review"]}


class Topic:
    def __init__(self, publisher_class):
        self.sns = boto3.client("sns", region_name=REGION)
        self.publisher = publisher_class(self.sns)
        self.sqs = boto3.client("sqs", region_name=REGION)
        self.arn = self.sns.create_topic(Name="deputy-guard-notifications")["TopicArn"]
        self.queues = {}

    def subscribe_queue(self, name, filter_policy=None):
        url = self.sqs.create_queue(QueueName=name)["QueueUrl"]
        queue_arn = self.sqs.get_queue_attributes(QueueUrl=url, AttributeNames=["QueueArn"])["Attributes"]["QueueArn"]
        attributes = {"RawMessageDelivery": "false"}
        if filter_policy is not None:
            attributes["FilterPolicy"] = json.dumps(filter_policy)
        self.sns.subscribe(TopicArn=self.arn, Protocol="sqs", Endpoint=queue_arn, Attributes=attributes)
        self.queues[name] = url

    def envelopes(self, name):
        """Every SNS envelope that reached queue ``name``."""
        received = self.sqs.receive_message(QueueUrl=self.queues[name], MaxNumberOfMessages=10, WaitTimeSeconds=0)
        return [json.loads(m["Body"]) for m in received.get("Messages", [])]


@pytest.fixture
def topic(aws_credentials, sns_publisher):
    with mock_aws():
        topic = Topic(sns_publisher)
        topic.subscribe_queue("all")
        topic.subscribe_queue("review", NEEDS_REVIEW_ONLY)
        yield topic


def test_published_role_message_arrives_with_schema_subject_and_attributes(topic, make_notice):
    # Given a channel on the topic
    channel = SnsChannel(topic.publisher, topic.arn)
    notice = make_notice()
    # When a notice is sent
    message_id = channel.send(notice)
    # Then the subscriber reads an SNS envelope carrying the v1 body and the filter attributes
    [envelope] = topic.envelopes("all")
    assert envelope["Type"] == "Notification"
    assert envelope["MessageId"] == message_id
    assert envelope["Subject"] == "[deputy-guard] Trust policy fixed: OrdersStateMachineRole (111122223333)"
    assert envelope["MessageAttributes"] == {
        "verdict": {"Type": "String", "Value": "non_compliant"},
        "action": {"Type": "String", "Value": "fixed"},
        "account": {"Type": "String", "Value": "111122223333"},
    }
    body = json.loads(envelope["Message"])
    assert body["schema_version"] == "1"
    assert body["kind"] == "deputy-guard.role"
    assert body["role_arn"] == notice.role_arn
    assert body["before"] == notice.before
    assert body["after"] == notice.after
    assert body["diff"] == notice.diff
    assert body["actor"] == notice.actor
    assert body["revert_command"] == "deputy-guard revert OrdersStateMachineRole"


def test_documented_filter_policy_delivers_only_needs_review(topic, make_notice):
    # Given one queue filtered to needs_review
    channel = SnsChannel(topic.publisher, topic.arn)
    # When a fixed role and a role needing review are announced
    channel.send(make_notice("FixedRole"))
    channel.send(make_notice("ReviewRole", verdict=Verdict.NEEDS_REVIEW, action=Action.REVIEW))
    # Then the filtered queue sees only the role needing review, the other queue sees both
    review = [json.loads(e["Message"])["role_name"] for e in topic.envelopes("review")]
    everything = sorted(json.loads(e["Message"])["role_name"] for e in topic.envelopes("all"))
    assert review == ["ReviewRole"]
    assert everything == ["FixedRole", "ReviewRole"]


def test_digest_arrives_as_one_message_with_worst_verdict_attribute(topic, make_notice):
    channel = SnsChannel(topic.publisher, topic.arn)
    notices = [make_notice(f"role-{i}") for i in range(5)]
    notices.append(make_notice("odd-one", verdict=Verdict.NEEDS_REVIEW, action=Action.REVIEW))
    channel.send_digest("team-payments", notices)
    [envelope] = topic.envelopes("all")
    assert envelope["MessageAttributes"]["verdict"]["Value"] == "needs_review"
    assert envelope["MessageAttributes"]["action"]["Value"] == "digest"
    body = json.loads(envelope["Message"])
    assert body["kind"] == "deputy-guard.digest"
    assert body["owner"] == "team-payments"
    assert body["items"][0]["role_name"] == "odd-one"
    assert body["count"] == 6
    # A digest that contains a needs_review role reaches the needs_review-only subscriber too
    assert len(topic.envelopes("review")) == 1
