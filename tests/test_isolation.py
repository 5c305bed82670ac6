"""The suite never leaves loopback: a call that escapes moto fails at once on a dead local proxy."""

from __future__ import annotations

import time

import boto3
import pytest
from botocore.exceptions import EndpointConnectionError, ProxyConnectionError


def test_a_stray_aws_call_fails_fast_instead_of_reaching_aws() -> None:
    started = time.monotonic()
    with pytest.raises((ProxyConnectionError, EndpointConnectionError)):
        boto3.client("sts", region_name="us-east-1").get_caller_identity()
    assert time.monotonic() - started < 10
