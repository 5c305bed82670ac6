"""Reading the exemption document DEPUTY_GUARD_EXEMPTIONS names: a file, or an SSM parameter.

The entries are validated by chalicelib.domain.exemptions; here the text is read and decoded. JSON is read
everywhere; YAML needs PyYAML, which the CLI has (Chalice depends on it) and the Lambda package leaves out,
so a parameter the deployed bot reads holds JSON. In the Lambda the parameter is read through Powertools
Parameters (cached five minutes), so an edit takes effect within minutes, without a deployment.
"""

from __future__ import annotations

import threading
from collections.abc import Callable
from dataclasses import replace
from pathlib import Path
from typing import Any

from chalicelib.domain.exemptions import (
    VARIABLE,
    Exemption,
    ExemptionError,
    ExemptionSource,
    SourceKind,
    exemptions_from_document,
    parse_json_document,
)
from chalicelib.domain.settings import Settings, SettingsError

# A bigger document is not a list of exemptions: refuse it rather than read it (SSM's own limit is 8 KB).
MAX_DOCUMENT_BYTES = 1_000_000
PARAMETER_MAX_AGE_SECONDS = 300
ParameterReader = Callable[[str], str]


def parse_document(text: str, origin: str, *, yaml_allowed: bool = True) -> tuple[Exemption, ...]:
    """The exemptions in a JSON or YAML document (JSON when it starts with ``[`` or ``{``, or names .json)."""
    stripped = text.lstrip()
    if origin.lower().endswith(".json") or stripped.startswith(("[", "{")) or not yaml_allowed:
        return parse_json_document(text, origin)
    return _parse_yaml(text, origin)


def _parse_yaml(text: str, origin: str) -> tuple[Exemption, ...]:
    try:
        import yaml
    except ImportError:
        raise ExemptionError(
            f"{VARIABLE}: {origin} is YAML, which needs PyYAML (pip install PyYAML); the deployed bot reads JSON"
        ) from None
    loader = yaml.SafeLoader(text)
    try:
        # One pass: the composed nodes give each entry's line, and the same nodes are built into the data.
        node = loader.get_single_node()
        data = loader.construct_document(node) if node is not None else None
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        line = f" line {mark.line + 1}" if mark is not None else ""
        problem = getattr(exc, "problem", None) or str(exc)
        raise ExemptionError(f"{VARIABLE}: {origin}{line}: not valid YAML: {problem}") from None
    finally:
        loader.dispose()
    return exemptions_from_document(data, origin, _yaml_lines(node, data))


def _yaml_lines(node: Any, data: Any) -> Callable[[Any], int | None]:
    """Where each entry (a mapping in the list, or in ``exemptions:``) starts, from the composed nodes."""
    import yaml

    lines: dict[int, int] = {}
    if isinstance(node, yaml.MappingNode) and isinstance(data, dict):
        lines[id(data)] = node.start_mark.line + 1
        for key, value in node.value:
            if key.value == "exemptions":
                node, data = value, data.get("exemptions")
    if isinstance(node, yaml.SequenceNode) and isinstance(data, list):
        for item_node, item in zip(node.value, data, strict=False):
            lines[id(item)] = item_node.start_mark.line + 1
    return lambda value: lines.get(id(value))


def read_source(source: ExemptionSource, read_parameter: ParameterReader) -> tuple[str, str]:
    """(text, origin) of the document; raises ExemptionError naming the file or parameter it cannot read."""
    if source.kind is SourceKind.PARAMETER:
        from chalicelib.adapters.errors import AwsError

        try:
            return read_parameter(source.location), source.location
        except AwsError as exc:
            raise ExemptionError(f"{VARIABLE}: cannot read the {source.describe()} ({exc.code})") from None
    path = Path(source.location)
    try:
        with path.open("rb") as handle:
            raw = handle.read(MAX_DOCUMENT_BYTES + 1)
    except OSError as exc:
        raise ExemptionError(f"{VARIABLE}: cannot read the file {source.location}: {exc.strerror}") from None
    if len(raw) > MAX_DOCUMENT_BYTES:
        raise ExemptionError(f"{VARIABLE}: {source.location} is over {MAX_DOCUMENT_BYTES} bytes")
    try:
        return raw.decode("utf-8"), source.location
    except UnicodeDecodeError:
        raise ExemptionError(f"{VARIABLE}: {source.location} is not UTF-8 text") from None


def with_exemptions(settings: Settings, read_parameter: ParameterReader) -> Settings:
    """``settings`` with the entries of the document it names (unchanged when the entries are inline)."""
    source = settings.exemptions_source
    if source is None:
        return settings
    try:
        text, origin = read_source(source, read_parameter)
        return replace(settings, exemptions=parse_document(text, origin))
    except ExemptionError as exc:
        raise SettingsError(str(exc)) from None


def read_ssm_parameter(name: str) -> str:
    """An SSM parameter (SecureString decrypted) through Powertools Parameters, cached for five minutes."""
    from chalicelib.adapters import aws

    return aws.get_parameter_value(name, max_age=PARAMETER_MAX_AGE_SECONDS)


class LiveExemptions:
    """The exemptions of a long-lived process (a Lambda container): the document read again when it changes.

    ``current`` returns the settings to use now: the same object while the document's text is unchanged
    (Powertools' cache answers without an AWS call within its max age), new settings when it changed. An edit
    that does not validate keeps the last good entries and is logged, so one bad commit does not stop the bot;
    a document that never validated is an error (SettingsError), as any bad setting is.
    """

    def __init__(self, read_parameter: ParameterReader = read_ssm_parameter) -> None:
        self._read = read_parameter
        self._lock = threading.Lock()
        self._text: str | None = None
        self._settings: Settings | None = None

    def current(self, settings: Settings, logger: Any) -> Settings:
        source = settings.exemptions_source
        if source is None:
            return settings
        with self._lock:
            try:
                text, origin = read_source(source, self._read)
                if text == self._text and self._settings is not None:
                    return self._settings
                updated = replace(settings, exemptions=parse_document(text, origin))
            except ExemptionError as exc:
                if self._settings is None:
                    raise SettingsError(str(exc)) from None
                logger.error("exemptions unchanged: the new document is unusable", extra={"error": str(exc)})
                return self._settings
            self._text, self._settings = text, updated
            logger.info("exemptions read", extra={"source": source.describe(), "entries": len(updated.exemptions)})
            return updated
