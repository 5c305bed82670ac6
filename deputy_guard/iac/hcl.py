"""Terraform's HCL, read with tree-sitter (the ``tree-sitter-hcl`` grammar), and its values as data.

``parse`` gives a file's top-level blocks with their lines. ``Translator`` turns an expression into the
value ``check`` judges, written in the CloudFormation terms that ``values.resolve`` already evaluates for
one deployment, so Terraform and CloudFormation share one resolver:

- literals, tuples and objects are JSON; ``"text ${ref}"`` templates are ``Fn::Sub`` whose variables are
  named by the reference as written (so a fix reads ``${local.account}`` back);
- references are resolved by the caller (``Refs``): the account, partition and region data sources become
  ``Ref AWS::AccountId`` and friends; a local is its value;
- anything else (a function ``check`` does not evaluate, a conditional, a ``for`` expression, a value known
  only after apply) is ``{"Fn::Unresolved": reason}``: it pins nothing and the reason is reported.

Parsing costs a fraction of a millisecond for a typical file; bench/README.md has the figures against
python-hcl2.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import Any, Final

from deputy_guard.iac.site import InputError

__all__ = ["Block", "Node", "Translator", "attributes", "blocks", "parse", "text_of", "unresolved"]

Node = Any  # tree_sitter.Node: the grammar's nodes are untyped
UNRESOLVED: Final = "Fn::Unresolved"
_ESCAPES: Final = re.compile(r"\\(?:u[0-9a-fA-F]{4}|U[0-9a-fA-F]{8}|.)|\$\$\{|%%\{", re.DOTALL)
_SIMPLE_ESCAPES: Final = {"n": "\n", "r": "\r", "t": "\t", '"': '"', "\\": "\\"}
_COLLECTIONS: Final = frozenset({"tolist", "toset", "concat", "flatten", "distinct"})


def unresolved(reason: str) -> dict[str, str]:
    """A value ``check`` cannot know, with why; it pins nothing."""
    return {UNRESOLVED: reason}


def _parser() -> Any:
    try:
        import tree_sitter
        import tree_sitter_hcl
    except ImportError as exc:
        raise InputError("reading Terraform (.tf) needs tree-sitter-hcl: pip install 'deputy-guard[iac]'") from exc
    return tree_sitter.Parser(tree_sitter.Language(tree_sitter_hcl.language()))


_PARSER: list[Any] = []


@dataclass(frozen=True)
class Block:
    """A block: its type (``resource``), labels, body node, 1-based line and file."""

    type: str
    labels: tuple[str, ...]
    body: Node
    line: int
    path: str


def _first_error(node: Node) -> Node | None:
    stack = [node]
    while stack:
        current = stack.pop()
        if current.is_error or current.is_missing:
            return current
        stack.extend(child for child in current.children if child.has_error)
    return None


def parse(text: str, path: str) -> list[Block]:
    """The top-level blocks of one ``.tf`` file; InputError (naming the line) when it is not HCL."""
    if not _PARSER:
        _PARSER.append(_parser())
    tree = _PARSER[0].parse(text.encode("utf-8"))
    if tree.root_node.has_error:
        error = _first_error(tree.root_node)
        line = error.start_point[0] + 1 if error is not None else 1
        raise InputError(f"not Terraform (HCL) that deputy-guard reads: a syntax error at line {line}")
    body = next((child for child in tree.root_node.named_children if child.type == "body"), None)
    return list(blocks(body, path)) if body is not None else []


def _string_lit(node: Node) -> str:
    # A string literal is its quotes around one template literal: its text between the quotes, unescaped.
    return _unescape(_text(node)[1:-1])


def text_of(node: Node) -> str:
    """An expression's source text on one line (for messages and for naming a reference)."""
    return " ".join(_text(node).split())


def blocks(body: Node | None, path: str) -> Iterator[Block]:
    """The blocks directly in a body."""
    for child in body.named_children if body is not None else ():
        if child.type != "block":
            continue
        kind = ""
        labels: list[str] = []
        inner = None
        for part in child.named_children:
            if part.type == "identifier" and not kind:
                kind = _text(part)
            elif part.type == "string_lit":
                labels.append(_string_lit(part))
            elif part.type == "identifier":
                labels.append(_text(part))
            elif part.type == "body":
                inner = part
        yield Block(kind, tuple(labels), inner, child.start_point[0] + 1, path)


def attributes(body: Node | None) -> dict[str, Node]:
    """The attributes of a body: name -> the attribute node (its expression is the last named child)."""
    found: dict[str, Node] = {}
    for child in body.named_children if body is not None else ():
        if child.type == "attribute" and child.named_children:
            found.setdefault(_text(child.named_children[0]), child)
    return found


def _text(node: Node) -> str:
    return str(node.text.decode("utf-8"))


def _unescape(literal: str) -> str:
    if "\\" not in literal and "{" not in literal:
        return literal

    def replace(found: re.Match[str]) -> str:
        text = found.group()
        if text in ("$${", "%%{"):
            return text[1:]
        if text[1] in "uU":
            return chr(int(text[2:], 16))
        return _SIMPLE_ESCAPES.get(text[1], text)

    return _ESCAPES.sub(replace, literal)


def _number(text: str) -> Any:
    try:
        return int(text)
    except ValueError:
        try:
            return float(text)
        except ValueError:
            return unresolved(f"{text}: a number deputy-guard does not read")


# A reference (``data.aws_partition.current.partition``): its parts, and its expression node for its text.
Refs = Callable[[list[str], Node], Any]


class Translator:
    """Expressions of one scope as values; ``refs`` resolves a reference's parts (and its text)."""

    def __init__(self, refs: Refs, read_file: Callable[[str], Any] | None = None) -> None:
        self.refs = refs
        # file(path): the caller reads it (it knows which files may be read); None leaves file() unresolved.
        self.read_file = read_file

    def attribute(self, attribute: Node) -> Any:
        return self.expression(attribute.named_children[-1])

    def expression(self, node: Node) -> Any:
        children = node.named_children
        if node.type != "expression":
            return self._primary(node)
        if not children:
            return unresolved(f"{_text(node)}: an empty expression")
        head, rest = children[0], children[1:]
        if head.type == "variable_expr":
            return self._reference(head, rest, node)
        if rest:
            return unresolved(f"{_text(node)}: an index or attribute of a computed value")
        return self._primary(head)

    def _reference(self, head: Node, rest: list[Node], node: Node) -> Any:
        parts = [_text(head)]
        for step in rest:
            if step.type == "get_attr" and step.named_children:
                parts.append(_text(step.named_children[0]))
            elif step.type == "index":
                index = step.named_children[0].named_children if step.named_children else []
                key = self.expression(index[0]) if index else None
                if not isinstance(key, int | str) or isinstance(key, bool):
                    return unresolved(f"{text_of(node)}: an index known only at plan time")
                parts.append(str(key))
            else:
                return unresolved(f"{text_of(node)}: a splat expression")
        return self.refs(parts, node)

    def _primary(self, node: Node) -> Any:
        kind = node.type
        if kind == "expression":
            return self.expression(node)
        if kind == "literal_value":
            return self._literal(node.named_children[0])
        if kind == "collection_value":
            return self._collection(node.named_children[0])
        if kind == "template_expr":
            return self._template(node.named_children[0])
        if kind == "function_call":
            return self._function(node)
        if kind == "operation" and _text(node).startswith("-") and node.named_children:
            value = self._primary(node.named_children[0].named_children[-1])
            if isinstance(value, int | float) and not isinstance(value, bool):
                return -value
        if kind == "conditional":
            return unresolved(f"{' '.join(_text(node).split())}: a conditional expression")
        if kind == "for_expr":
            return unresolved("a for expression: deputy-guard does not evaluate it")
        return unresolved(f"{' '.join(_text(node).split())[:60]}: an expression deputy-guard does not evaluate")

    def _literal(self, node: Node) -> Any:
        if node.type == "string_lit":
            return _string_lit(node)
        if node.type == "numeric_lit":
            return _number(_text(node))
        if node.type == "bool_lit":
            return _text(node) == "true"
        return None

    def _collection(self, node: Node) -> Any:
        if node.type == "tuple":
            return [self.expression(child) for child in node.named_children if child.type == "expression"]
        result: dict[str, Any] = {}
        for element in node.named_children:
            if element.type != "object_elem":
                continue
            key_node, value_node = element.named_children[0], element.named_children[-1]
            key = self._key(key_node)
            if not isinstance(key, str):
                return unresolved(f"{' '.join(_text(key_node).split())}: an object key known only at plan time")
            result[key] = self.expression(value_node)
        return result

    def _key(self, node: Node) -> Any:
        children = node.named_children
        if len(children) == 1 and children[0].type == "variable_expr":
            return _text(children[0])
        return self.expression(node)

    def _template(self, node: Node) -> Any:
        """A quoted or heredoc template: text, or ``Fn::Sub`` with each interpolation named as written."""
        pieces = template_pieces(node)
        if pieces is None:
            return unresolved("a template directive (%{...}): deputy-guard does not evaluate it")
        text: list[str] = []
        variables: dict[str, Any] = {}
        for piece in pieces:
            if isinstance(piece, str):
                text.append(piece.replace("${", "${!"))
                continue
            name = " ".join(_text(piece).split())
            value = self.expression(piece)
            if len(pieces) == 1:
                return value
            variables[name] = value
            text.append("${" + name + "}")
        if not variables:
            return "".join(piece for piece in pieces if isinstance(piece, str))
        return {"Fn::Sub": ["".join(text), variables]}

    def _function(self, node: Node) -> Any:
        name = _text(node.named_children[0])
        arguments_node = next((c for c in node.named_children if c.type == "function_arguments"), None)
        arguments = [
            self.expression(child)
            for child in (arguments_node.named_children if arguments_node is not None else [])
            if child.type == "expression"
        ]
        if name == "jsonencode" and len(arguments) == 1:
            # Kept as the value it encodes, so a trust policy written this way is read (and fixed) as written.
            return {"Fn::JsonEncode": arguments[0]}
        if name == "file" and len(arguments) == 1 and self.read_file is not None:
            path = _known_text(arguments[0])
            if path is None:
                return unresolved("file() of a path known only when Terraform runs")
            return self.read_file(path)
        if name in _COLLECTIONS and all(isinstance(argument, list) for argument in arguments):
            items = [item for argument in arguments for item in argument] if name != "tolist" else arguments[0]
            if name == "flatten":
                items = [x for item in items for x in (item if isinstance(item, list) else [item])]
            return items
        return unresolved(f"{name}(): a function deputy-guard does not evaluate")


def _known_text(value: Any) -> str | None:
    """Text, or a template (``Fn::Sub`` as ``_template`` builds it) whose every variable is known text."""
    if isinstance(value, str):
        return value
    argument = value.get("Fn::Sub") if isinstance(value, dict) and len(value) == 1 else None
    if not (isinstance(argument, list) and len(argument) == 2 and isinstance(argument[1], dict)):
        return None
    text, variables = argument
    for name, item in variables.items():
        known = _known_text(item)
        if known is None:
            return None
        text = text.replace("${" + name + "}", known)
    return str(text).replace("${!", "${")


def template_pieces(node: Node) -> list[Any] | None:
    """A template's literal text (str) and interpolated expressions (nodes); None with a directive.

    A heredoc's text is taken from the source between its markers, so its whitespace is exactly what was
    written (``<<-`` strips the common indentation, as Terraform does).
    """
    children = node.named_children
    if any(child.type == "template_directive" for child in children):
        return None
    if node.type != "heredoc_template":
        return [
            _unescape(_text(child)) if child.type == "template_literal" else child.named_children[1]
            for child in children
            if child.type in ("template_literal", "template_interpolation")
        ]
    markers = [child for child in children if child.type == "heredoc_identifier"]
    if len(markers) < 2:
        return [""]
    source: bytes = node.text
    base = node.start_byte
    start = source.index(b"\n", markers[0].end_byte - base) + 1
    end = markers[-1].start_byte - base
    pieces: list[Any] = []
    position = start
    for child in children:
        if child.type != "template_interpolation":
            continue
        pieces.append(source[position : child.start_byte - base].decode("utf-8"))
        pieces.append(child.named_children[1])
        position = child.end_byte - base
    pieces.append(source[position:end].decode("utf-8"))
    if any(child.type == "heredoc_start" and _text(child) == "<<-" for child in children):
        pieces = _dedent(pieces)
    return [piece.replace("$${", "${").replace("%%{", "%{") if isinstance(piece, str) else piece for piece in pieces]


def _dedent(pieces: list[Any]) -> list[Any]:
    """``<<-``: remove the indentation common to every non-blank line, interpolations staying in place."""
    nodes = [piece for piece in pieces if not isinstance(piece, str)]
    text = "\x00".join(piece for piece in pieces if isinstance(piece, str))
    lines = text.split("\n")
    indents = [len(line) - len(line.lstrip(" \t")) for line in lines if line.strip(" \t")]
    cut = min(indents, default=0)
    parts = "\n".join(line[cut:] if line.strip(" \t") else line.lstrip(" \t") for line in lines).split("\x00")
    merged: list[Any] = [parts[0]]
    for node, part in zip(nodes, parts[1:], strict=True):
        merged += [node, part]
    return merged
