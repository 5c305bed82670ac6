"""Terraform sources (``.tf``): the trust policy of every ``aws_iam_role`` and ``awscc_iam_role``.

A Terraform module is a directory. Its roles' trust policies are read as written, with no plan:

- ``jsonencode({...})``, a heredoc or a quoted JSON string (interpolations inside JSON strings included);
- ``data "aws_iam_policy_document"``: ``statement`` blocks with ``principals``, ``not_principals`` and
  ``condition`` (``test``/``variable``/``values``), merged with ``source_policy_documents`` and
  ``override_policy_documents`` of the same module by ``sid``, as the provider does;
- ``data.aws_caller_identity.*.account_id``, ``data.aws_partition.*.partition`` and ``data.aws_region``:
  the deploying account, partition and region; ``local.*`` with the value written for it;
- local modules (``source = "./..."``): read with the arguments their call passes (a variable not passed
  takes its default), their roles named by their module address (``module.sfn.aws_iam_role.this``).

Anything else (an input variable of the root module, a remote module's output, a function or expression
deputy-guard does not evaluate, a value known only after apply) is ``Fn::Unresolved``: it pins nothing,
and ``check`` reports it as ``unresolved_value``.
"""

from __future__ import annotations

import os
import re
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from typing import Any, Final

from deputy_guard.iac.hcl import UNRESOLVED, Block, Node, Translator, attributes, blocks, parse, text_of, unresolved
from deputy_guard.iac.site import InputError, Kind, Site
from deputy_guard.iac.tfpolicy import interpolated_json, marker, merge_statements, statement

__all__ = ["ROLE_TYPES", "TerraformReader", "is_local_source", "local_sources"]

# Role resource type -> its trust-policy argument.
ROLE_TYPES: Final = {"aws_iam_role": "assume_role_policy", "awscc_iam_role": "assume_role_policy_document"}
DOCUMENT: Final = "aws_iam_policy_document"
_DOCUMENT_REF: Final = "Fn::PolicyDocument"
_JSON_ENCODE: Final = "Fn::JsonEncode"
_PSEUDO: Final = {
    ("aws_caller_identity", "account_id"): "AWS::AccountId",
    ("aws_partition", "partition"): "AWS::Partition",
    ("aws_partition", "dns_suffix"): "AWS::URLSuffix",
    ("aws_region", "name"): "AWS::Region",
    ("aws_region", "region"): "AWS::Region",
    ("aws_region", "id"): "AWS::Region",
}
_STATE_MACHINES: Final = {"aws_sfn_state_machine": "stateMachine", "aws_sfn_activity": "activity"}
_MAX_MODULE_DEPTH: Final = 16
# Module instances read from one root: far more than a real configuration calls, and a bound on a hostile
# tree whose modules each call the next several times.
MAX_MODULE_INSTANCES: Final = 1_000
_SOURCE_LINE: Final = re.compile(r'^\s*source\s*=\s*"(\.\.?/[^"]*)"', re.MULTILINE)


def local_sources(text: str) -> list[str]:
    """The local module sources a file may call, found without parsing it (a superset: any ``source`` line)."""
    return _SOURCE_LINE.findall(text)


def is_local_source(source: Any) -> bool:
    """Whether a module's ``source`` is a directory of this repository (``./x`` or ``../x``)."""
    return isinstance(source, str) and source.startswith(("./", "../"))


@dataclass
class _Module:
    """One module instance: its directory, address prefix, blocks and the arguments its call passed."""

    directory: str
    prefix: str
    blocks: list[Block]
    inputs: dict[str, Any] | None
    depth: int
    chain: frozenset[str] = frozenset()  # the real directories of this module and of every module above it
    locals: dict[str, Any] = field(default_factory=dict)
    resolving: set[str] = field(default_factory=set)
    translator: Translator | None = None
    index: dict[tuple[str, ...], Block] = field(default_factory=dict)

    def kind(self, kind: str) -> Iterator[Block]:
        return (b for b in self.blocks if b.type == kind)

    def one(self, kind: str, *labels: str) -> Block | None:
        if not self.index:
            for block in reversed(self.blocks):
                self.index[(block.type, *block.labels)] = block
        return self.index.get((kind, *labels))


class TerraformReader:
    """Reads modules from directories, each file once; ``read`` gives a file's text (bounded by the caller)."""

    def __init__(self, read: Callable[[str], str], list_files: Callable[[str], list[str]]) -> None:
        self._read = read
        self._list = list_files
        self._parsed: dict[str, list[Block]] = {}
        self.failures: list[tuple[str, str]] = []
        self.modules: list[_Module] = []
        self._instances = 0

    def close(self) -> None:
        """Drop the parse trees now (each module's translator refers back to its module: a cycle)."""
        for module in self.modules:
            module.translator = None
        self.modules.clear()
        self._parsed.clear()

    @property
    def files_read(self) -> set[str]:
        return set(self._parsed)

    @property
    def directories_read(self) -> set[str]:
        return {os.path.realpath(module.directory) for module in self.modules}

    # --- files ---------------------------------------------------------------------------------------

    def blocks(self, directory: str) -> list[Block]:
        """Every top-level block of a directory's ``.tf`` files; a file that cannot be read is a failure."""
        found: list[Block] = []
        for listed in self._list(directory):
            # One key per file however it was reached (./modules/x from a walk, modules/x from a call).
            path = os.path.normpath(listed)
            if path not in self._parsed:
                try:
                    self._parsed[path] = parse(self._read(path), path)
                except InputError as exc:
                    self._parsed[path] = []
                    self.failures.append((path, str(exc)))
            found.extend(self._parsed[path])
        return found

    # --- modules -------------------------------------------------------------------------------------

    def sites(self, directory: str, only: str | None = None) -> list[Site]:
        """The roles of the root module in ``directory`` and of the local modules it calls.

        ``only`` keeps the roles declared in that file (and in the modules called from it).
        """
        self._instances = 0
        module = self._module(directory, "", None, 0, frozenset())
        return list(self._module_sites(module, os.path.realpath(only) if only is not None else None))

    def _module(
        self, directory: str, prefix: str, inputs: dict[str, Any] | None, depth: int, above: frozenset[str]
    ) -> _Module:
        self._instances += 1
        chain = above | {os.path.realpath(directory)}
        module = _Module(directory, prefix, self.blocks(directory), inputs, depth, chain)
        module.translator = Translator(
            lambda parts, node: self._reference(module, parts, node), lambda path: self._file(module, path)
        )
        self.modules.append(module)
        return module

    def _module_sites(self, module: _Module, only: str | None) -> Iterator[Site]:
        for block in module.blocks:
            if only is not None and os.path.realpath(block.path) != only:
                continue
            if block.type == "resource" and len(block.labels) == 2 and block.labels[0] in ROLE_TYPES:
                try:
                    site = self._role(module, block)
                except RecursionError:
                    # A value nested thousands deep, or a chain of thousands of locals: hostile, not read.
                    address = f"{module.prefix}{'.'.join(block.labels)}"
                    self.failures.append((block.path, f"{address}: its trust policy is nested too deeply; not read"))
                    continue
                if site is not None:
                    yield site
            elif block.type == "module" and len(block.labels) == 1:
                yield from self._call(module, block)

    def _call(self, caller: _Module, block: Block) -> Iterator[Site]:
        arguments = attributes(block.body)
        source = _literal_text(arguments.get("source"))
        if not is_local_source(source):
            return
        if caller.depth >= _MAX_MODULE_DEPTH:
            self.failures.append(
                (
                    block.path,
                    f"module {block.labels[0]}: more than {_MAX_MODULE_DEPTH} levels of module calls; not read",
                )
            )
            return
        directory = os.path.normpath(os.path.join(caller.directory, str(source)))
        if not os.path.isdir(directory):
            self.failures.append((block.path, f"module {block.labels[0]}: source {source} is not a directory"))
            return
        if os.path.realpath(directory) in caller.chain:
            self.failures.append(
                (
                    block.path,
                    f"module {block.labels[0]}: source {source} calls a module that calls it (a cycle); not read",
                )
            )
            return
        if self._instances >= MAX_MODULE_INSTANCES:
            self.failures.append(
                (block.path, f"module {block.labels[0]}: more than {MAX_MODULE_INSTANCES:,} module instances; not read")
            )
            return
        translator = caller.translator
        assert translator is not None
        inputs = {
            name: translator.attribute(node)
            for name, node in arguments.items()
            if name not in ("source", "version", "count", "for_each", "providers", "depends_on")
        }
        address = f"{caller.prefix}module.{block.labels[0]}{_instance(arguments)}."
        module = self._module(directory, address, inputs, caller.depth + 1, caller.chain)
        yield from self._module_sites(module, None)

    # --- values --------------------------------------------------------------------------------------

    def _reference(self, module: _Module, parts: list[str], node: Node) -> Any:
        root = parts[0]
        if root == "data" and len(parts) >= 4 and (parts[1], parts[-1]) in _PSEUDO:
            return {"Ref": _PSEUDO[(parts[1], parts[-1])]}
        text = text_of(node)
        if root == "data" and len(parts) >= 4:
            # data.TYPE.NAME[INDEX].ATTRIBUTE: every instance of these data sources reads the same value.
            kind, name, attribute = parts[1], parts[2], parts[-1]
            pseudo = _PSEUDO.get((kind, attribute))
            if pseudo is not None:
                return {"Ref": pseudo}
            if kind == DOCUMENT and attribute in ("json", "minified_json") and module.one("data", DOCUMENT, name):
                return {_DOCUMENT_REF: f"{self.modules.index(module)}/{name}"}
            return unresolved(f"{text}: a data source read at plan time")
        if root in ("local", "var") and len(parts) >= 2:
            found = self._local(module, parts[1]) if root == "local" else self._variable(module, parts[1])
            value = _step(found, parts[2:], text)
            # Text keeps the reference it came from, so a fix shows ${local.name} where the source did.
            return {"Fn::Sub": ["${" + text + "}", {text: value}]} if isinstance(value, str) else value
        if root in _STATE_MACHINES and len(parts) >= 3 and parts[-1] in ("arn", "id"):
            # Its name may be computed, but its ARN is in the deploying account: that is what pins.
            return {
                "Fn::Join": [
                    "",
                    [
                        *("arn:", {"Ref": "AWS::Partition"}, ":states:", {"Ref": "AWS::Region"}, ":"),
                        *({"Ref": "AWS::AccountId"}, f":{_STATE_MACHINES[root]}:", unresolved(f"{text}: its name")),
                    ],
                ]
            }
        if root == "module":
            return unresolved(f"{text}: a module output, which deputy-guard does not read")
        if parts == ["path", "module"]:
            return os.path.abspath(module.directory)
        if parts in (["path", "root"], ["path", "cwd"]):
            return os.path.abspath(self.modules[0].directory if self.modules else module.directory)
        if root in ("count", "each", "path", "terraform", "self"):
            return unresolved(f"{text}: known only when Terraform runs")
        return unresolved(f"{text}: an attribute known only after apply")

    def _file(self, module: _Module, path: str) -> Any:
        """``file(path)``: the text of a file inside the module's or the root module's directory.

        Terraform reads a relative path from the root module's directory (``path.module`` names the module's
        own). Anything outside both stays unread: a pull request must not make ``check`` read the machine.
        """
        root = self.modules[0].directory if self.modules else module.directory
        target = os.path.realpath(os.path.join(root, path))
        allowed = [os.path.realpath(module.directory), os.path.realpath(root)]
        if not any(target == place or target.startswith(place + os.sep) for place in allowed):
            return unresolved(f'file("{path}"): outside the module, not read')
        if not os.path.isfile(target):
            return unresolved(f'file("{path}"): not a regular file of the module')
        try:
            return self._read(target)
        except InputError as exc:
            return unresolved(f'file("{path}"): {exc}')

    def _local(self, module: _Module, name: str) -> Any:
        if name in module.locals:
            return module.locals[name]
        node = next((attributes(b.body)[name] for b in module.kind("locals") if name in attributes(b.body)), None)
        if node is None:
            return unresolved(f"local.{name}: not defined in this module")
        if name in module.resolving:
            return unresolved(f"local.{name}: refers to itself")
        module.resolving.add(name)
        assert module.translator is not None
        module.locals[name] = module.translator.attribute(node)
        module.resolving.discard(name)
        return module.locals[name]

    def _variable(self, module: _Module, name: str) -> Any:
        if module.inputs is not None and name in module.inputs:
            return module.inputs[name]
        block = module.one("variable", name)
        default = attributes(block.body).get("default") if block is not None else None
        if module.inputs is None:
            return unresolved(f"var.{name}: an input variable, set when the plan is made")
        if default is None:
            return unresolved(f"var.{name}: not passed to the module and without a default")
        assert module.translator is not None
        return module.translator.attribute(default)

    # --- roles and policy documents ------------------------------------------------------------------

    def _role(self, module: _Module, block: Block) -> Site | None:
        kind, name = block.labels
        arguments = attributes(block.body)
        count = arguments.get("count")
        if count is not None and _literal_text(count) == "0":
            return None
        address = f"{module.prefix}{kind}.{name}{_instance(arguments)}"
        argument = arguments.get(ROLE_TYPES[kind])
        role_name = _literal_text(arguments.get("name")) or _literal_text(arguments.get("role_name"))
        path = _literal_text(arguments.get("path"))
        common: dict[str, Any] = {
            "kind": Kind.TERRAFORM,
            "resource": address,
            "label": address,
            "template": {"Resources": {}},
            "role_path": path if isinstance(path, str) and path.startswith("/") and path.endswith("/") else "/",
            "role_name": role_name if isinstance(role_name, str) else name,
            "path": block.path,
        }
        if argument is None:
            return Site(line=block.line, policy=None, unknown=f"{address} has no {ROLE_TYPES[kind]}", **common)
        assert module.translator is not None
        value = module.translator.attribute(argument)
        line = argument.start_point[0] + 1
        expression = argument.named_children[-1]
        form = (
            "jsonencode" if _is_call(expression, "jsonencode") else "file" if _is_call(expression, "file") else "json"
        )
        return self._policy_site(value, form, line, common, set())

    def _policy_site(self, value: Any, form: str, line: int, common: dict[str, Any], seen: set[str]) -> Site:
        kind = marker(value)
        if kind == _DOCUMENT_REF:
            key = value[_DOCUMENT_REF]
            built = self.document(key, seen)
            if isinstance(built, str):
                return Site(line=line, policy=None, unknown=built, **common)
            policy, document = built
            return Site(
                line=document.line,
                policy=policy,
                source_form=f"policy_document:{document.labels[1]}",
                **{**common, "path": document.path},
            )
        if kind == _JSON_ENCODE:
            return Site(line=line, policy=value[_JSON_ENCODE], source_form="jsonencode", **common)
        if kind == UNRESOLVED:
            return Site(line=line, policy=None, unknown=_unknown_policy(value[UNRESOLVED]), **common)
        if isinstance(value, dict) and form == "jsonencode":
            return Site(line=line, policy=value, source_form="jsonencode", **common)
        if isinstance(value, str):
            return Site(line=line, policy=value, source_form=form, **{**common, "template": None})
        if kind == "Fn::Sub":
            decoded = interpolated_json(value["Fn::Sub"])
            if decoded is None:
                reason = "an interpolation outside the JSON strings of the policy"
                return Site(line=line, policy=None, unknown=_unknown_policy(reason), **common)
            return Site(line=line, policy=decoded, source_form="json", **common)
        return Site(line=line, policy=None, unknown=_unknown_policy("not a JSON document"), **common)

    def document(self, key: str, seen: set[str]) -> tuple[dict[str, Any], Block] | str:
        """An ``aws_iam_policy_document`` as an IAM policy (with intrinsics), or why it cannot be read."""
        index, _, name = key.partition("/")
        module = self.modules[int(index)]
        block = module.one("data", DOCUMENT, name)
        if block is None or key in seen:
            return _unknown_policy(f"data.{DOCUMENT}.{name} refers to itself")
        seen = {*seen, key}
        translator = module.translator
        assert translator is not None
        arguments = attributes(block.body)
        statements: list[Any] = []
        for argument in ("source_policy_documents", None, "override_policy_documents"):
            if argument is None:
                own = self._statements(block, translator)
                if isinstance(own, str):
                    return own
                merge_statements(statements, own)
                continue
            node = arguments.get(argument)
            documents = translator.attribute(node) if node is not None else []
            if not isinstance(documents, list):
                return _unknown_policy(f"{argument} of data.{DOCUMENT}.{name} is not a list deputy-guard reads")
            for item in documents:
                if marker(item) != _DOCUMENT_REF:
                    return _unknown_policy(
                        f"{argument} of data.{DOCUMENT}.{name} names a document that is not an "
                        f"{DOCUMENT} of the same module"
                    )
                built = self.document(item[_DOCUMENT_REF], seen)
                if isinstance(built, str):
                    return built
                merge_statements(statements, built[0]["Statement"])
        policy: dict[str, Any] = {"Version": "2012-10-17"}
        for argument, key_name in (("version", "Version"), ("policy_id", "Id")):
            if argument in arguments:
                policy[key_name] = translator.attribute(arguments[argument])
        policy["Statement"] = statements
        return policy, block

    def _statements(self, block: Block, translator: Translator) -> list[dict[str, Any]] | str:
        statements: list[dict[str, Any]] = []
        for inner in blocks(block.body, block.path):
            if inner.type == "dynamic":
                return _unknown_policy(f'a dynamic "{inner.labels[0] if inner.labels else ""}" block')
            if inner.type == "statement":
                statements.append(statement(inner, translator))
        return statements


def _step(value: Any, parts: list[str], text: str) -> Any:
    for part in parts:
        if isinstance(value, dict) and marker(value) is None and part in value:
            value = value[part]
        elif isinstance(value, list) and part.isdigit() and int(part) < len(value):
            value = value[int(part)]
        elif marker(value) == UNRESOLVED:
            return value
        else:
            return unresolved(f"{text}: not found in the value it refers to")
    return value


def _literal_text(attribute: Any) -> Any:
    """The literal text or number of an attribute (None when absent or not a literal)."""
    if attribute is None:
        return None
    value = _LITERALS.attribute(attribute)
    return value if isinstance(value, str | int | float) and not isinstance(value, bool) else None


# Reads literals only: every reference is unknown to it.
_LITERALS: Final = Translator(lambda parts, node: unresolved(text_of(node)))


def _instance(arguments: dict[str, Any]) -> str:
    """The instance key Terraform adds to an address: ``[0]`` for ``count``, ``[each.key]`` for ``for_each``."""
    if "count" in arguments:
        return "[0]"
    if "for_each" in arguments:
        return "[each.key]"
    return ""


def _is_call(node: Any, name: str) -> bool:
    children = node.named_children
    return bool(
        node.type == "expression"
        and len(children) == 1
        and children[0].type == "function_call"
        and children[0].named_children[0].text.decode() == name
    )


def _unknown_policy(reason: str) -> str:
    return (
        f"the trust policy is not known before the plan ({reason}): deputy-guard cannot see which principals it "
        "trusts; write it with literals, locals or the account and partition data sources, or check the plan"
    )
