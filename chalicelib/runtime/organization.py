"""Builds the organization's pieces from Settings: the account directory and the work queue (boto3 here).

Used by runtime.container (the Lambda) and by the CLI's organization scan, which passes its own scope and
member role and runs with the caller's credentials.
"""

from __future__ import annotations

from chalicelib.adapters import aws
from chalicelib.adapters.iam import IamGateway
from chalicelib.adapters.store import SweepCursor
from chalicelib.domain.names import ROLE_ARN
from chalicelib.domain.scope import AccountScope
from chalicelib.domain.settings import Settings
from chalicelib.service.accounts import Accounts
from chalicelib.service.deps import Deps, Iam


def build_accounts(
    settings: Settings,
    central: Deps,
    *,
    scope: AccountScope | None = None,
    member_role: str | None = None,
    identity: tuple[str, str] | None = None,
) -> Accounts:
    """The accounts in scope and the Deps for each of them, for the current (central) credentials.

    ``identity`` is the caller's (account, partition) when it is known already (no sts:GetCallerIdentity).
    """
    table = aws.DynamoTable(aws.make_client("dynamodb"), settings.table)

    def cursor_for(account: str) -> SweepCursor:
        return SweepCursor(table, account=account)

    return Accounts(
        central,
        scope=scope if scope is not None else settings.accounts,
        member_role=member_role or settings.member_role,
        own_identity=(lambda: identity) if identity is not None else (lambda: own_identity(settings)),
        list_org_accounts=lambda: aws.OrganizationsGateway(aws.make_client("organizations")).list_active_accounts(),
        member_iam=member_iam,
        cursor_for=cursor_for,
    )


def member_iam(role_arn: str) -> Iam:
    """An IAM gateway acting through ``role_arn`` (assumed now: a refusal raises AwsError here)."""
    return IamGateway(aws.member_client(role_arn, "iam"))


def own_identity(settings: Settings) -> tuple[str, str]:
    """(account, partition) of the bot: from its own role ARN when deployed (no call), else sts:GetCallerIdentity."""
    for arn in settings.self_role_arns:
        match = ROLE_ARN.match(arn)
        if match:
            return match["account"], match["partition"]
    account, arn = aws.StsGateway(aws.make_client("sts")).get_caller_arn()
    return account, arn.split(":")[1]


def work_queue() -> aws.SqsGateway:
    return aws.SqsGateway(aws.make_client("sqs"))
