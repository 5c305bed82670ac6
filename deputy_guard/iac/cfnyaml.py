"""CloudFormation YAML: short-form tags, scalars as CloudFormation reads them, and line numbers.

PyYAML (the C loader when libyaml is there) with a loader of our own:

- every short-form tag becomes its long form (``!Sub x`` -> ``{"Fn::Sub": "x"}``, ``!Ref x`` -> ``{"Ref": "x"}``,
  ``!GetAtt a.b`` -> ``{"Fn::GetAtt": ["a", "b"]}``, ``!Condition c`` -> ``{"Condition": "c"}``);
- plain scalars that YAML 1.1 would turn into dates, integers or floats stay the text that was written,
  as CloudFormation passes it on (``Version: 2012-10-17`` is the string ``"2012-10-17"``, not a date, and
  an account id with a leading zero is not read as an octal number);
- the 1-based line of every mapping key is kept, and mappings with a duplicate key are remembered;
- aliases are counted before anything is built: a document whose aliases would expand it past
  ``MAX_EXPANDED_NODES`` nodes (and past what is written) is refused, so a "billion laughs" costs
  time and memory in proportion to its text, not to its expansion.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import yaml

__all__ = ["MAX_EXPANDED_NODES", "LoadedYaml", "YamlError", "load"]

# Far more nodes than a template of CloudFormation's largest size (1 MB) holds.
MAX_EXPANDED_NODES = 100_000

_BaseLoader: type[yaml.SafeLoader] = getattr(yaml, "CSafeLoader", yaml.SafeLoader)
_AS_TEXT = ("tag:yaml.org,2002:int", "tag:yaml.org,2002:float", "tag:yaml.org,2002:timestamp")


class YamlError(ValueError):
    """The text is not YAML that a CloudFormation template could be written in."""


class LoadedYaml:
    """A loaded document plus where each mapping key was written."""

    def __init__(self, data: Any, key_lines: dict[tuple[int, str], int], duplicated: set[int]) -> None:
        self.data = data
        self._key_lines = key_lines
        self._duplicated = duplicated

    def key_line(self, mapping: object, key: str) -> int | None:
        """The 1-based line of ``key`` in ``mapping`` (a dict of this document), if it was written there."""
        return self._key_lines.get((id(mapping), key))

    def has_duplicates(self, mapping: object) -> bool:
        """Whether ``mapping`` was written with the same key twice (YAML keeps the last one silently)."""
        return id(mapping) in self._duplicated


class _Loader(_BaseLoader):  # type: ignore[misc, valid-type]
    key_lines: dict[tuple[int, str], int]
    duplicated: set[int]


def _as_text(loader: _Loader, node: yaml.ScalarNode) -> str:
    return str(node.value)


def _mapping(loader: _Loader, node: yaml.MappingNode) -> Iterator[dict[Any, Any]]:
    data: dict[Any, Any] = {}
    yield data
    loader.flatten_mapping(node)
    seen: set[Any] = set()
    for key_node, value_node in node.value:
        key = loader.construct_object(key_node, deep=True)
        try:
            hash(key)
        except TypeError as exc:
            raise YamlError(f"line {key_node.start_mark.line + 1}: a mapping key must be a scalar") from exc
        if key in seen:
            loader.duplicated.add(id(data))
        seen.add(key)
        data[key] = loader.construct_object(value_node, deep=True)
        if isinstance(key, str):
            loader.key_lines[(id(data), key)] = key_node.start_mark.line + 1


def _short_form(loader: _Loader, suffix: str, node: yaml.Node) -> dict[str, Any]:
    value: Any
    if isinstance(node, yaml.ScalarNode):
        value = loader.construct_scalar(node)
    elif isinstance(node, yaml.SequenceNode):
        value = loader.construct_sequence(node, deep=True)
    elif isinstance(node, yaml.MappingNode):
        value = next(_mapping_value(loader, node))
    else:  # pragma: no cover - PyYAML has no other node kinds
        raise YamlError(f"line {node.start_mark.line + 1}: unsupported node for !{suffix}")
    if suffix == "GetAtt" and isinstance(value, str):
        # The dotted short form splits at the first dot: !GetAtt Role.Arn, !GetAtt Stack.Outputs.Name
        resource, _, attribute = value.partition(".")
        value = [resource, attribute]
    if suffix in ("Ref", "Condition"):
        return {suffix: value}
    return {f"Fn::{suffix}": value}


def _mapping_value(loader: _Loader, node: yaml.MappingNode) -> Iterator[dict[Any, Any]]:
    builder = _mapping(loader, node)
    data = next(builder)
    for _ in builder:
        pass
    yield data


for _tag in _AS_TEXT:
    _Loader.add_constructor(_tag, _as_text)
_Loader.add_constructor("tag:yaml.org,2002:map", _mapping)
_Loader.add_multi_constructor("!", _short_form)


def _children(node: yaml.Node) -> list[yaml.Node]:
    if isinstance(node, yaml.SequenceNode):
        return list(node.value)
    if isinstance(node, yaml.MappingNode):
        return [item for pair in node.value for item in pair]
    return []


def _check_expansion(root: yaml.Node, limit: int) -> None:
    """Refuse a document whose aliases expand it past ``limit`` nodes (linear in the nodes written).

    An alias is the same node object reached twice, so each distinct node's expanded size is computed
    once, children first, without recursion.
    """
    sizes: dict[int, int] = {}
    seen: set[int] = set()
    stack: list[tuple[yaml.Node, bool]] = [(root, False)]
    while stack:
        node, expanded = stack.pop()
        children = _children(node)
        if not expanded:
            if id(node) not in seen:
                seen.add(id(node))
                stack.append((node, True))
                stack.extend((child, False) for child in children if id(child) not in seen)
            continue
        written = len(seen)
        total = 1 + sum(sizes.get(id(child), 1) for child in children)
        if total > max(limit, written):
            raise YamlError(
                f"line {node.start_mark.line + 1}: aliases expand the document past {max(limit, written)} nodes; "
                "not read"
            )
        sizes[id(node)] = total


def load(text: str, source: str = "<stdin>", limit: int = MAX_EXPANDED_NODES) -> LoadedYaml:
    """Load one YAML document as CloudFormation reads it; raises YamlError for anything else.

    ``source`` names the input in messages (PyYAML would say ``<unicode string>``).
    """
    loader = _Loader(text)
    loader.key_lines = {}
    loader.duplicated = set()
    try:
        node = loader.get_single_node()
        if node is not None:
            _check_expansion(node, limit)
        data = loader.construct_document(node) if node is not None else None
    except yaml.YAMLError as exc:
        message = " ".join(str(exc).split()).replace('"<unicode string>"', f'"{source}"')
        raise YamlError(message) from exc
    except RecursionError as exc:
        raise YamlError("the document is nested too deeply") from exc
    finally:
        loader.dispose()
    return LoadedYaml(data, loader.key_lines, loader.duplicated)
