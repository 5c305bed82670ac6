"""The AwsError family: what the services catch, importable without boto3 (the gateways raise them)."""

from __future__ import annotations


class AwsError(Exception):
    """An AWS call failed; ``code`` is AWS's error code (or a botocore class name)."""

    def __init__(self, operation: str, code: str, message: str) -> None:
        super().__init__(f"{operation}: {code}: {message}")
        self.operation = operation
        self.code = code
        self.message = message


class NotFound(AwsError):
    """The resource does not exist (IAM NoSuchEntity, DynamoDB ResourceNotFoundException, ...)."""


class AccessDenied(AwsError):
    """The bot's role may not make this call."""


class Throttled(AwsError):
    """Still throttled after botocore's standard retries."""


class LimitExceeded(AwsError):
    """An IAM quota (policy size, ...) would be exceeded."""


class MalformedPolicy(AwsError):
    """IAM rejected the document."""


class ConditionFailed(AwsError):
    """A DynamoDB conditional write lost (the item already exists)."""


class Unavailable(AwsError):
    """The endpoint could not be reached or answered with a server error."""


_CODES: dict[str, type[AwsError]] = {
    "NoSuchEntity": NotFound,
    "NoSuchEntityException": NotFound,
    "ResourceNotFoundException": NotFound,
    "NotFound": NotFound,
    "NotFoundException": NotFound,
    "ParameterNotFound": NotFound,
    "AccessDenied": AccessDenied,
    "AccessDeniedException": AccessDenied,
    "UnauthorizedOperation": AccessDenied,
    "AuthorizationError": AccessDenied,
    "Throttling": Throttled,
    "ThrottlingException": Throttled,
    "ThrottledException": Throttled,
    "RequestLimitExceeded": Throttled,
    "TooManyRequestsException": Throttled,
    "ProvisionedThroughputExceededException": Throttled,
    "LimitExceeded": LimitExceeded,
    "LimitExceededException": LimitExceeded,
    "MalformedPolicyDocument": MalformedPolicy,
    "MalformedPolicyDocumentException": MalformedPolicy,
    "ConditionalCheckFailedException": ConditionFailed,
    "ServiceFailure": Unavailable,
    "ServiceUnavailable": Unavailable,
    "InternalError": Unavailable,
    "InternalFailure": Unavailable,
    "InternalServerError": Unavailable,
}


def error_for(operation: str, code: str, message: str) -> AwsError:
    """The AwsError subclass for an AWS error code (unknown codes stay a plain AwsError)."""
    return _CODES.get(code, AwsError)(operation, code, message)
