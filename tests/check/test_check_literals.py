"""`check --format json` prints the fixed policy with the input's number literals, ready to paste back."""

from __future__ import annotations

from tests.check.conftest import run_cli

POLICY = (
    '{"Version":"2012-10-17","Statement":['
    '{"Effect":"Allow","Principal":{"Service":"lambda.amazonaws.com"},"Action":"sts:AssumeRole",'
    '"Condition":{"NumericLessThan":{"aws:MultiFactorAuthAge":1.10}}},'
    '{"Effect":"Allow","Principal":{"Service":"states.amazonaws.com"},"Action":"sts:AssumeRole"}]}'
)


def test_the_fixed_policy_keeps_number_literals() -> None:
    # Given a policy whose untouched statement holds 1.10 / When checked as JSON
    result = run_cli("check", "--account", "111122223333", "--format", "json", "-", stdin=POLICY)
    # Then the finding's fixed policy writes 1.10, not 1.1
    assert result.returncode == 1, result.stderr
    assert '"aws:MultiFactorAuthAge": 1.10\n' in result.stdout
