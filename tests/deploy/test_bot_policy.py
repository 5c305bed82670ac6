"""The bot's IAM policy grants what the code calls, and nothing else (policies/deputy-guard-policy.json).

Every AWS call is read from the code itself (chalicelib/adapters/aws.py's gateways, with ``ast``), mapped to its
IAM action through botocore's own service models, and checked against the policy. An IAM policy
simulation needs AWS, so the policy is judged by a small evaluator (support.PolicyEvaluator) and its
actions and ARNs against cfn-lint's copy of the Service Authorization Reference.
"""

from __future__ import annotations

import ast
import json
import re
from collections.abc import Iterator
from functools import cache
from importlib import resources
from pathlib import Path
from typing import Any

import botocore.session
import pytest

from chalicelib.domain.plan import EXEMPT_UNTIL_TAG, MODE_TAG, REASON_TAG
from tests.deploy.support import CONFIG_FILE, POLICY_FILE, PROJECT, PolicyEvaluator, load_json

AWS_MODULE = PROJECT / "chalicelib" / "adapters" / "aws.py"
# Every module whose gateways call AWS through aws._call (aws.py builds every client).
GATEWAY_MODULES = (
    AWS_MODULE,
    *(PROJECT / "chalicelib" / "adapters" / f"{name}.py" for name in ("iam", "securityhub", "kms")),
)

# The client type each gateway's constructor takes -> the IAM service prefix of its calls.
CLIENT_SERVICES = {
    "IAMClient": "iam",
    "STSClient": "sts",
    "SNSClient": "sns",
    "DynamoDBClient": "dynamodb",
    "OrganizationsClient": "organizations",
    "SQSClient": "sqs",
    "SecurityHubClient": "securityhub",
    "KMSClient": "kms",
}
# Calls made inside a library rather than through a gateway's _call:
# Powertools Idempotency (wiring.PowertoolsOnceGuard) keeps its records with these DynamoDB calls ...
IDEMPOTENCY_CALLS = {"dynamodb:PutItem", "dynamodb:GetItem", "dynamodb:UpdateItem", "dynamodb:DeleteItem"}
# ... and Powertools Parameters (aws.py's parameter helpers) reads the Slack webhook with these.
PARAMETER_CALLS = {"ssm": {"ssm:GetParameter"}, "secretsmanager": {"secretsmanager:GetSecretValue"}}
# Permissions the Lambda service or a KMS-encrypted parameter uses on the bot's behalf, with no call in the code.
INFRASTRUCTURE = {
    "logs:CreateLogGroup",  # Lambda writes the function's logs with the function's role
    "logs:CreateLogStream",
    "logs:PutLogEvents",
    "sqs:SendMessage",  # Lambda's on-failure destination for the event handler (the merge template)
    "sqs:ReceiveMessage",  # Lambda's SQS event source polls the work queue for scan_account with its role
    "sqs:DeleteMessage",
    "sqs:GetQueueAttributes",
    "kms:Decrypt",  # a SecureString or secret under a customer-managed key; only via SSM/Secrets Manager
}
# IAM authorises no one for sts:GetCallerIdentity: it always succeeds, so it is not in the policy.
NEEDS_NO_PERMISSION = {"sts:GetCallerIdentity"}
# A batch API authorised by its one-message action.
ACTION_OF_API = {"sqs:SendMessageBatch": "sqs:SendMessage"}
# Clients aws.py builds outside a gateway only to hand to one, whose calls the gateway scan already finds
# (the central STS client behind member credentials: StsGateway.assume_role).
GATEWAY_CLIENTS = {"sts"}

ACCOUNT = "123456789012"
REGION = "us-east-1"


@cache
def _client(service: str) -> Any:
    # Built from botocore's bundled models: no credentials are used and no request is sent.
    return botocore.session.get_session().create_client(
        service, region_name=REGION, aws_access_key_id="testing", aws_secret_access_key="testing"
    )


def _api_name(service: str, method: str) -> str:
    return str(_client(service).meta.method_to_api_mapping[method])


def _waiter_operation(service: str, waiter: str) -> str:
    return str(_client(service).get_waiter(waiter).config.operation)


def _functions(node: ast.AST) -> Iterator[ast.FunctionDef]:
    for child in ast.walk(node):
        if isinstance(child, ast.FunctionDef):
            yield child


def _client_service(cls: ast.ClassDef) -> str | None:
    for fn in cls.body:
        if isinstance(fn, ast.FunctionDef) and fn.name == "__init__":
            for arg in fn.args.args:
                if arg.arg == "client" and arg.annotation is not None:
                    name = ast.unparse(arg.annotation)
                    assert name in CLIENT_SERVICES, f"{cls.name} takes a {name}: map it in CLIENT_SERVICES"
                    return CLIENT_SERVICES[name]
    return None


@cache
def gateway_calls() -> dict[str, set[str]]:
    """{"Class.method": {"service:Operation", ...}} for every AWS call a gateway makes."""
    trees = [ast.parse(module.read_text(encoding="utf-8")) for module in GATEWAY_MODULES]
    calls: dict[str, set[str]] = {}
    for cls in (n for tree in trees for n in tree.body if isinstance(n, ast.ClassDef)):
        service = _client_service(cls)
        if service is None:
            continue
        for fn in _functions(cls):
            for node in ast.walk(fn):
                if not isinstance(node, ast.Call):
                    continue
                target = ast.unparse(node.func)
                if target == "_call":
                    label, method = node.args[0], node.args[1]
                    assert isinstance(label, ast.Constant) and isinstance(method, ast.Attribute)
                    api = _api_name(service, method.attr)
                    assert label.value == api, f"{cls.name}.{fn.name}: _call labelled {label.value!r} calls {api}"
                    calls.setdefault(f"{cls.name}.{fn.name}", set()).add(f"{service}:{api}")
                elif isinstance(node.func, ast.Attribute) and ast.unparse(node.func.value) == "self._client":
                    # Only a waiter may use the client directly; any other call must go through _call.
                    assert node.func.attr == "get_waiter", f"{cls.name}.{fn.name} calls {target} outside _call"
                    waiter = node.args[0]
                    assert isinstance(waiter, ast.Constant), f"{cls.name}.{fn.name}: waiter name not literal"
                    op = _waiter_operation(service, str(waiter.value))
                    calls.setdefault(f"{cls.name}.{fn.name}", set()).add(f"{service}:{op}")
    return calls


@cache
def module_level_clients() -> set[str]:
    """Services for which aws.py builds a client outside the gateways (handed to Powertools)."""
    tree = ast.parse(AWS_MODULE.read_text(encoding="utf-8"))
    found = set()
    for fn in (n for n in tree.body if isinstance(n, ast.FunctionDef)):
        for node in ast.walk(fn):
            if isinstance(node, ast.Call) and ast.unparse(node.func) == "make_client" and node.args:
                arg = node.args[0]
                if isinstance(arg, ast.Constant):
                    found.add(str(arg.value))
    return found


def _imports(path: Path) -> set[str]:
    """chalicelib modules a file imports, at any depth (function-level imports included)."""
    names: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        if isinstance(node, ast.ImportFrom) and node.module:
            if node.module == "chalicelib" or node.module.startswith("chalicelib."):
                # `from chalicelib.runtime import handlers` imports a module; `from chalicelib.domain.models
                # import Verdict` imports a name: keep both spellings, and lambda_modules() keeps the files.
                names.add(node.module)
                names.update(f"{node.module}.{a.name}" for a in node.names)
        elif isinstance(node, ast.Import):
            names.update(a.name for a in node.names if a.name.startswith("chalicelib."))
    return names


@cache
def lambda_modules() -> dict[str, Path]:
    """Every project module the Lambda can import, starting from app.py."""
    seen: dict[str, Path] = {"app": PROJECT / "app.py"}
    pending = ["app"]
    while pending:
        for name in _imports(seen[pending.pop()]):
            path = PROJECT / (name.replace(".", "/") + ".py")
            if name not in seen and path.exists():
                seen[name] = path
                pending.append(name)
    return seen


def _referenced(path: Path, attribute: str) -> bool:
    tree = ast.parse(path.read_text(encoding="utf-8"))
    return any(
        (isinstance(n, ast.Attribute) and n.attr == attribute) or (isinstance(n, ast.Name) and n.id == attribute)
        for n in ast.walk(tree)
    )


@cache
def operator_only_methods() -> set[str]:
    """Gateway methods no Lambda module references: the CLI's `deputy-guard setup` uses them."""
    gateways = {"chalicelib.adapters.aws", "chalicelib.adapters.securityhub", "chalicelib.adapters.kms"}
    modules = [p for name, p in lambda_modules().items() if name not in gateways]
    return {
        qualified
        for qualified in gateway_calls()
        if not any(_referenced(p, qualified.split(".")[1]) for p in modules)
        and not _called_inside_aws(qualified.split(".")[1])
    }


def _called_inside_aws(method: str) -> bool:
    """True when another aws.py function calls ``method`` (e.g. iter_roles -> list_roles_page)."""
    trees = [ast.parse(module.read_text(encoding="utf-8")) for module in GATEWAY_MODULES]
    return any(
        isinstance(n, ast.Call) and isinstance(n.func, ast.Attribute) and n.func.attr == method
        for tree in trees
        for fn in _functions(tree)
        if fn.name != method
        for n in ast.walk(fn)
    )


def lambda_calls() -> set[str]:
    operator_only = operator_only_methods()
    from_gateways = {
        ACTION_OF_API.get(call, call)
        for method, ops in gateway_calls().items()
        if method not in operator_only
        for call in ops
    }
    from_parameters = {
        call for service in module_level_clients() - GATEWAY_CLIENTS for call in PARAMETER_CALLS[service]
    }
    return from_gateways | from_parameters | IDEMPOTENCY_CALLS


# --- the code's calls ------------------------------------------------------------------------------------


def test_the_scan_finds_the_known_gateway_calls() -> None:
    # Given the gateways in chalicelib/adapters/aws.py / When they are scanned / Then the known calls are all there
    found = {call for ops in gateway_calls().values() for call in ops}
    assert found >= {
        "iam:GetRole",
        "iam:ListRoleTags",
        "iam:ListRoles",
        "iam:GetAccountAuthorizationDetails",
        "iam:UpdateAssumeRolePolicy",
        "iam:TagRole",
        "iam:GetAccountSummary",
        "sts:GetCallerIdentity",
        "sns:Publish",
        "dynamodb:PutItem",
        "dynamodb:UpdateItem",
        "dynamodb:Query",
        "dynamodb:DescribeTable",
        "dynamodb:CreateTable",
        "dynamodb:UpdateTimeToLive",
        "sts:AssumeRole",
        "organizations:ListAccounts",
        "sqs:SendMessage",
        "sqs:SendMessageBatch",
    }


def test_every_library_made_call_is_accounted_for() -> None:
    # Powertools gets clients for these services only; a new one must be mapped in PARAMETER_CALLS
    assert module_level_clients() - GATEWAY_CLIENTS == set(PARAMETER_CALLS)
    # and the DynamoDB idempotency calls are listed because wiring really uses Powertools Idempotency
    assert _referenced(PROJECT / "chalicelib" / "runtime" / "wiring.py", "DynamoDBPersistenceLayer")


def test_table_creation_is_operator_only() -> None:
    # The packaged stack creates the table; `deputy-guard setup` (CLI) creates it for `chalice deploy`
    assert operator_only_methods() == {"DynamoTable.ensure_exists"}
    assert "deputy_guard.commands" not in lambda_modules()
    assert "deputy_guard.cli" not in lambda_modules()


# --- policy versus code ----------------------------------------------------------------------------------


def test_policy_allows_every_call_the_lambda_makes(bot_policy: PolicyEvaluator) -> None:
    granted = bot_policy.allowed_actions()
    missing = sorted(lambda_calls() - NEEDS_NO_PERMISSION - granted)
    assert not missing, f"the code calls these, the policy does not allow them: {missing}"


def test_policy_allows_nothing_the_code_does_not_use(bot_policy: PolicyEvaluator) -> None:
    extra = sorted(bot_policy.allowed_actions() - lambda_calls() - INFRASTRUCTURE)
    assert not extra, f"the policy grants actions no code uses: {extra}"


def test_operator_only_calls_are_not_granted(bot_policy: PolicyEvaluator) -> None:
    # (DescribeTable is the bot's too: it checks that the table is not younger than its signing key)
    for call in ("dynamodb:CreateTable", "dynamodb:UpdateTimeToLive"):
        assert not bot_policy.allowed(call, f"arn:aws:dynamodb:{REGION}:{ACCOUNT}:table/deputy-guard-prod")


def test_no_action_is_a_wildcard_and_no_allow_uses_not_elements(bot_policy: PolicyEvaluator) -> None:
    for statement in bot_policy.statements:
        actions = statement["Action"] if isinstance(statement["Action"], list) else [statement["Action"]]
        assert all("*" not in a and "?" not in a for a in actions), statement["Sid"]
        assert not {"NotAction", "NotResource", "NotPrincipal"} & set(statement), statement["Sid"]


def test_the_only_star_resources_are_actions_without_resource_types(bot_policy: PolicyEvaluator) -> None:
    star = {a for s in bot_policy.statements if s["Resource"] == "*" for a in _listify(s["Action"])}
    assert star == {
        "iam:ListRoles",
        "iam:GetAccountAuthorizationDetails",
        "iam:GetAccountSummary",
        "organizations:ListAccounts",
    }


def test_the_bot_assumes_only_the_member_role(bot_policy: PolicyEvaluator) -> None:
    # Given the member role in any account / Then it may be assumed, and no other role anywhere
    assert bot_policy.allowed("sts:AssumeRole", "arn:aws:iam::444455556666:role/deputy-guard-member")
    for role in ("OrganizationAccountAccessRole", "admin", "deputy-guard-member-x", "path/deputy-guard-member"):
        assert not bot_policy.allowed("sts:AssumeRole", f"arn:aws:iam::444455556666:role/{role}"), role


def _listify(value: Any) -> list[Any]:
    return value if isinstance(value, list) else [value]


# --- what the policy means -------------------------------------------------------------------------------

ROLE = f"arn:aws:iam::{ACCOUNT}:role/teams/data/orders-pipeline"
SERVICE_LINKED = f"arn:aws:iam::{ACCOUNT}:role/aws-service-role/states.amazonaws.com/AWSServiceRoleForStepFunctions"


# What the bot's revert sends with TagRole (chalicelib.service.revert): both keys, the mode being exempt.
EXEMPT_TAGS = {"aws:TagKeys": [MODE_TAG, REASON_TAG], f"aws:RequestTag/{MODE_TAG}": "exempt"}


@pytest.mark.parametrize("action", ["iam:UpdateAssumeRolePolicy", "iam:TagRole"])
def test_service_linked_roles_are_never_written(bot_policy: PolicyEvaluator, action: str) -> None:
    assert bot_policy.allowed(action, ROLE, EXEMPT_TAGS)
    assert not bot_policy.allowed(action, SERVICE_LINKED, EXEMPT_TAGS)


def chalice_role_names(chalice_graph: Any) -> set[str]:
    """The role names `chalice deploy` creates: <app>-<stage>-<function>, one per function and stage."""
    from chalice.deploy.models import ManagedIAMRole

    return {
        m.role_name
        for stage in load_json(CONFIG_FILE)["stages"]
        for m in chalice_graph(stage)
        if isinstance(m, ManagedIAMRole)
    }


def _own_roles_statement(bot_policy: PolicyEvaluator) -> dict[str, Any]:
    return next(s for s in bot_policy.statements if s["Sid"] == "NeverTouchOwnRoles")


def test_the_own_roles_deny_names_exactly_the_roles_chalice_deploy_creates(
    bot_policy: PolicyEvaluator, chalice_graph: Any
) -> None:
    # Given the roles Chalice builds for every stage (no AWS) / Then the deny names those, and no pattern
    names = chalice_role_names(chalice_graph)
    functions = ("on_iam_event", "sweep", "api_handler", "scan_account")
    assert names == {f"deputy-guard-{s}-{f}" for s in ("dev", "prod") for f in functions}
    statement = _own_roles_statement(bot_policy)
    assert statement["Effect"] == "Deny"
    assert set(statement["Resource"]) == {f"arn:aws:iam::*:role/{name}" for name in names}
    assert not any("*" in r.split(":role/", 1)[1] or "?" in r for r in statement["Resource"])


def test_the_bots_own_roles_are_never_written(bot_policy: PolicyEvaluator, chalice_graph: Any) -> None:
    for name in chalice_role_names(chalice_graph):
        arn = f"arn:aws:iam::{ACCOUNT}:role/{name}"
        assert bot_policy.allowed("iam:GetRole", arn)
        assert not bot_policy.allowed("iam:UpdateAssumeRolePolicy", arn), name
        assert not bot_policy.allowed("iam:TagRole", arn, EXEMPT_TAGS), name


@pytest.mark.parametrize(
    "name",
    [
        "deputy-guard-anything",
        "deputy-guard",
        "deputy-guard-prod-on_iam_event-shadow",
        "deputy-guard-prod-OnIamEventRole-1A2B3C4D5E6F",  # the packaged stack denies its own roles itself
        "teams/deputy-guard-prod-sweep",  # the same name on another path is another role
    ],
)
def test_a_role_cannot_hide_from_the_bot_by_its_name(bot_policy: PolicyEvaluator, name: str) -> None:
    # Given an attacker's role named like the bot / Then the bot may still fix it and tag it exempt on revert
    arn = f"arn:aws:iam::{ACCOUNT}:role/{name}"
    assert bot_policy.allowed("iam:UpdateAssumeRolePolicy", arn)
    assert bot_policy.allowed("iam:TagRole", arn, EXEMPT_TAGS)


def test_no_deny_uses_a_name_pattern(bot_policy: PolicyEvaluator) -> None:
    # A pattern in a deny is a name anyone may give a role; the deputy-guard* patterns left are allows
    # of the bot's own table, topic, queue and log groups, which widen nothing a role name controls.
    for statement in bot_policy.statements:
        resources = statement["Resource"] if isinstance(statement["Resource"], list) else [statement["Resource"]]
        if statement["Effect"] == "Deny":
            assert not any("deputy-guard*" in r for r in resources), statement["Sid"]
        elif any("deputy-guard*" in r for r in resources):
            assert all(r.split(":")[2] in {"dynamodb", "sns", "sqs", "logs"} for r in resources), statement["Sid"]


def test_tag_role_sets_only_the_bots_keys_and_only_exempt(bot_policy: PolicyEvaluator) -> None:
    assert bot_policy.allowed("iam:TagRole", ROLE, EXEMPT_TAGS)
    assert bot_policy.allowed("iam:TagRole", ROLE, {"aws:TagKeys": [MODE_TAG], f"aws:RequestTag/{MODE_TAG}": "exempt"})
    # Then no other key, no other mode, and no request without the exempt mode
    assert not bot_policy.allowed("iam:TagRole", ROLE, {**EXEMPT_TAGS, "aws:TagKeys": [MODE_TAG, "owner"]})
    for mode in ("enforce", "notify", "Exempt", "exempt "):
        assert not bot_policy.allowed("iam:TagRole", ROLE, {**EXEMPT_TAGS, f"aws:RequestTag/{MODE_TAG}": mode}), mode
    assert not bot_policy.allowed("iam:TagRole", ROLE, {"aws:TagKeys": [REASON_TAG]})
    assert not bot_policy.allowed("iam:TagRole", ROLE, {})
    # A Slack "Exempt 30 days" also sets the exemption's last day (docs/slack.md), still only with exempt
    until = {"aws:TagKeys": [MODE_TAG, REASON_TAG, EXEMPT_UNTIL_TAG], f"aws:RequestTag/{MODE_TAG}": "exempt"}
    assert bot_policy.allowed("iam:TagRole", ROLE, until)
    assert not bot_policy.allowed("iam:TagRole", ROLE, {"aws:TagKeys": [EXEMPT_UNTIL_TAG]})
    statement = next(s for s in bot_policy.statements if s["Effect"] == "Allow" and s["Action"] == "iam:TagRole")
    keys = set(statement["Condition"]["ForAllValues:StringEquals"]["aws:TagKeys"])
    assert keys == {MODE_TAG, REASON_TAG, EXEMPT_UNTIL_TAG}


def test_the_code_sets_only_the_exempt_mode_and_never_untags() -> None:
    # The policy allows TagRole for the exempt mode only and no UntagRole: the code must ask for nothing more
    calls = {call for ops in gateway_calls().values() for call in ops}
    assert "iam:UntagRole" not in calls
    sources = "".join(p.read_text(encoding="utf-8") for p in (PROJECT / "chalicelib").rglob("*.py"))
    modes = re.findall(r"MODE_TAG:\s*\"(\w+)\"", sources)
    assert modes and set(modes) == {"exempt"}, modes


@pytest.mark.parametrize(
    "action", ["iam:DeleteRole", "iam:PassRole", "iam:AttachRolePolicy", "iam:PutRolePolicy", "iam:CreateRole"]
)
def test_no_other_iam_write_is_allowed(bot_policy: PolicyEvaluator, action: str) -> None:
    assert not bot_policy.allowed(action, ROLE)


def test_data_access_is_scoped_to_deputy_guard_names(bot_policy: PolicyEvaluator) -> None:
    table = f"arn:aws:dynamodb:{REGION}:{ACCOUNT}:table/deputy-guard-prod"
    assert bot_policy.allowed("dynamodb:PutItem", table)
    assert not bot_policy.allowed("dynamodb:PutItem", f"arn:aws:dynamodb:{REGION}:{ACCOUNT}:table/payments")
    assert bot_policy.allowed("sns:Publish", f"arn:aws:sns:{REGION}:{ACCOUNT}:deputy-guard-prod")
    assert not bot_policy.allowed("sns:Publish", f"arn:aws:sns:{REGION}:{ACCOUNT}:payments-alerts")
    assert not bot_policy.allowed("ssm:GetParameter", f"arn:aws:ssm:{REGION}:{ACCOUNT}:parameter/prod/db-password")
    assert not bot_policy.allowed(
        "secretsmanager:GetSecretValue", f"arn:aws:secretsmanager:{REGION}:{ACCOUNT}:secret:prod/db-AbCdEf"
    )


def test_the_configured_webhook_parameters_are_readable(bot_policy: PolicyEvaluator) -> None:
    config = load_json(CONFIG_FILE)
    for stage, settings in config["stages"].items():
        name = settings["environment_variables"]["DEPUTY_GUARD_SLACK_WEBHOOK_PARAMETER"]
        arn = f"arn:aws:ssm:{REGION}:{ACCOUNT}:parameter{name}"
        assert bot_policy.allowed("ssm:GetParameter", arn), stage


def test_kms_decrypt_only_through_ssm_or_secrets_manager_for_the_webhook(bot_policy: PolicyEvaluator) -> None:
    key = f"arn:aws:kms:{REGION}:{ACCOUNT}:key/1234abcd-12ab-34cd-56ef-1234567890ab"
    parameter = f"arn:aws:ssm:{REGION}:{ACCOUNT}:parameter/deputy-guard/prod/slack-webhook"
    secret = f"arn:aws:secretsmanager:{REGION}:{ACCOUNT}:secret:deputy-guard/slack-AbCdEf"
    via_ssm = {"kms:ViaService": f"ssm.{REGION}.amazonaws.com", "kms:EncryptionContext:PARAMETER_ARN": parameter}
    via_secrets = {
        "kms:ViaService": f"secretsmanager.{REGION}.amazonaws.com",
        "kms:EncryptionContext:SecretARN": secret,
    }
    assert bot_policy.allowed("kms:Decrypt", key, via_ssm)
    assert bot_policy.allowed("kms:Decrypt", key, via_secrets)
    assert not bot_policy.allowed("kms:Decrypt", key, {"kms:EncryptionContext:PARAMETER_ARN": parameter})
    other = f"arn:aws:ssm:{REGION}:{ACCOUNT}:parameter/prod/db-password"
    assert not bot_policy.allowed("kms:Decrypt", key, {**via_ssm, "kms:EncryptionContext:PARAMETER_ARN": other})


@pytest.mark.parametrize(
    "log_group",
    [
        "/aws/lambda/deputy-guard-prod",  # chalice deploy: the REST API's function
        "/aws/lambda/deputy-guard-prod-on_iam_event",  # chalice deploy: the event handler
        "/aws/lambda/deputy-guard-prod-OnIamEvent-AbC123dEf456",  # make package: CloudFormation-named
    ],
)
def test_the_functions_can_write_their_logs(bot_policy: PolicyEvaluator, log_group: str) -> None:
    group = f"arn:aws:logs:{REGION}:{ACCOUNT}:log-group:{log_group}"
    assert bot_policy.allowed("logs:CreateLogGroup", group)
    assert bot_policy.allowed("logs:PutLogEvents", f"{group}:log-stream:2024/01/01/[$LATEST]abc")
    assert not bot_policy.allowed("logs:PutLogEvents", f"arn:aws:logs:{REGION}:{ACCOUNT}:log-group:/aws/lambda/x:*")


# --- the policy is valid IAM -----------------------------------------------------------------------------


@cache
def _service_reference() -> dict[str, Any]:
    # cfn-lint ships the Service Authorization Reference (actions, resource types, ARN formats).
    data = resources.files("cfnlint.data.AdditionalSpecs").joinpath("Policies.json").read_text(encoding="utf-8")
    return dict(json.loads(data))


def _arn_format_pattern(arn_format: str) -> re.Pattern[str]:
    parts = re.split(r"(\$\{[A-Za-z]+\})", arn_format)
    placeholders = {"${Partition}": r"aws[a-z-]*", "${Region}": r"[a-z0-9-]*|\*", "${Account}": r"\d{12}|\*"}
    body = "".join(f"(?:{placeholders[p]})" if p in placeholders else p if p else "" for p in parts)
    body = re.sub(r"\$\{[A-Za-z]+\}", ".+", body)
    return re.compile(f"^{body}$")


def test_every_action_exists_and_every_resource_fits_its_resource_type(bot_policy: PolicyEvaluator) -> None:
    reference = _service_reference()
    for statement in bot_policy.statements:
        for action in _listify(statement["Action"]):
            service, name = action.split(":")
            entry = reference[service]["Actions"].get(name.lower())
            assert entry is not None, f"{action} is not an IAM action"
            types = entry.get("Resources", [])
            for resource in _listify(statement["Resource"]):
                if not types:
                    assert resource == "*", f"{action} has no resource type: its Resource must be *"
                    continue
                known = {k.lower(): v for k, v in reference[service]["Resources"].items()}
                formats = [f for t in types for f in known[t.lower()]["ARNFormats"]]
                assert any(_arn_format_pattern(f).match(resource) for f in formats), (
                    f"{statement['Sid']}: {resource} is not a {'/'.join(types)} ARN for {action}"
                )


def test_every_condition_key_is_one_iam_knows() -> None:
    document = load_json(POLICY_FILE)
    keys = {k for s in document["Statement"] for block in s.get("Condition", {}).values() for k in block}
    assert keys == {
        "aws:TagKeys",
        f"aws:RequestTag/{MODE_TAG}",
        "kms:ViaService",
        "kms:EncryptionContext:PARAMETER_ARN",
        "kms:EncryptionContext:SecretARN",
        "kms:ResourceAliases",  # the signing key, by its alias (the key's own policy names the bot's roles)
    }


def test_statement_ids_are_unique_and_present(bot_policy: PolicyEvaluator) -> None:
    sids = [s.get("Sid") for s in bot_policy.statements]
    assert all(sids) and len(set(sids)) == len(sids)
    assert bot_policy.document["Version"] == "2012-10-17"


# --- Chalice deploys exactly this policy ------------------------------------------------------------------


def test_every_stage_deploys_the_policy_file_without_autogeneration() -> None:
    config = load_json(CONFIG_FILE)
    assert config["autogen_policy"] is False
    resolved = (CONFIG_FILE.parent / config["iam_policy_file"]).resolve()
    assert resolved == POLICY_FILE
    for stage, settings in config["stages"].items():
        assert settings.get("autogen_policy", False) is False, stage
        assert settings.get("iam_policy_file", config["iam_policy_file"]) == config["iam_policy_file"], stage
        for name, function in settings.get("lambda_functions", {}).items():
            assert not {"iam_policy_file", "autogen_policy", "iam_role_arn"} & set(function), (stage, name)


def test_no_stale_per_stage_policy_files() -> None:
    # Chalice ignores .chalice/policy-<stage>.json when iam_policy_file is set; one would only mislead.
    assert not list((PROJECT / ".chalice").glob("policy-*.json"))


def test_the_policy_chalice_builds_is_the_file(chalice_graph: Any) -> None:
    # Given each stage's config / When Chalice builds its resource graph (no AWS) / Then every role has the file
    from chalice.deploy.models import FileBasedIAMPolicy, ManagedIAMRole

    for stage in load_json(CONFIG_FILE)["stages"]:
        roles = [m for m in chalice_graph(stage) if isinstance(m, ManagedIAMRole)]
        assert len(roles) == 4, stage  # one per function: on_iam_event, sweep, api_handler, scan_account
        for role in roles:
            assert isinstance(role.policy, FileBasedIAMPolicy)
            assert Path(role.policy.filename).resolve() == POLICY_FILE
