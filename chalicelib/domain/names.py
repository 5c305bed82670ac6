"""IAM names and ARNs: the one definition of what a role name, a path and a role ARN look like (pure)."""

from __future__ import annotations

import re
from typing import Final

# ASCII and \Z: IAM names are ASCII, and "$" would also accept a name followed by a newline.
ROLE_NAME: Final = re.compile(r"^[\w+=,.@-]{1,64}\Z", re.ASCII)
# arn:PARTITION:iam::ACCOUNT:role/PATH/NAME, the path being "/" or "/a/b/".
ROLE_ARN: Final = re.compile(
    r"^arn:(?P<partition>aws[a-z-]*):iam::(?P<account>\d{12}):role(?P<path>/(?:[\x21-\x7e]*/)?)"
    r"(?P<name>[\w+=,.@-]{1,64})\Z",
    re.ASCII,
)
ASSUMED_ROLE_ARN: Final = re.compile(
    r"^arn:(?P<partition>aws[a-z-]*):sts::(?P<account>\d{12}):assumed-role/(?P<name>[\w+=,.@-]{1,64})/", re.ASCII
)
ACCOUNT_ID: Final = re.compile(r"^\d{12}\Z", re.ASCII)
MAX_PATH_CHARS: Final = 512


def valid_role_name(name: str) -> bool:
    """Whether ``name`` is a name IAM accepts for a role."""
    return ROLE_NAME.match(name) is not None


def valid_path_prefix(prefix: str) -> bool:
    """Whether ``prefix`` is an IAM path such as ``/`` or ``/teams/data/``."""
    return len(prefix) <= MAX_PATH_CHARS and re.fullmatch(r"/([\x21-\x7e]*/)?", prefix) is not None


def valid_account_id(value: str) -> bool:
    """Whether ``value`` is a 12-digit AWS account id."""
    return ACCOUNT_ID.match(value) is not None


def role_from_arn(arn: str) -> tuple[str, str] | None:
    """(account, role name) of a role ARN or of an assumed-role session ARN; None for anything else."""
    match = ROLE_ARN.match(arn) or ASSUMED_ROLE_ARN.match(arn)
    return (match["account"], match["name"]) if match else None
