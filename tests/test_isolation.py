"""The suite never leaves loopback: a call that escapes moto fails at once on a dead local proxy."""

from __future__ import annotations

import boto3
import pytest
from botocore.exceptions import ProxyConnectionError


def test_a_stray_aws_call_fails_fast_instead_of_reaching_aws() -> None:
    # Given a client with nothing intercepting it, counting the requests it sends
    client = boto3.client("sts", region_name="us-east-1")
    attempts: list[str] = []
    client.meta.events.register("before-send.sts", lambda request, **_: attempts.append(request.url))
    # When it calls AWS
    with pytest.raises(ProxyConnectionError) as failure:
        client.get_caller_identity()
    # Then the request went to the dead loopback proxy, never to AWS, and was tried a bounded number of times
    assert "127.0.0.1:9" in str(failure.value)
    assert 1 <= len(attempts) <= client.meta.config.retries.get("total_max_attempts", 5)
