"""Logging and metrics helpers, importable without boto3 (the cold path of skipped events)."""

from __future__ import annotations

import logging
import sys
from typing import Any


class _StderrHandler(logging.StreamHandler):  # type: ignore[type-arg]
    """Writes to whatever ``sys.stderr`` is at the time of each record (it may be replaced later)."""

    @property
    def stream(self) -> Any:
        return sys.stderr

    @stream.setter
    def stream(self, _value: Any) -> None:
        pass


_loggers: dict[str, Any] = {}


def make_logger(service: str, *, level: str = "INFO", to_stderr: bool = False) -> Any:
    """The Powertools Logger (structured JSON) for this service, one per process.

    Powertools attaches its handler once per logger name, so every caller shares the first instance.
    The CLI asks for stderr so stdout stays for results; Lambda logs to stdout.
    """
    from aws_lambda_powertools import Logger as PowertoolsLogger

    name = service
    if name not in _loggers:
        handler = _StderrHandler() if to_stderr else None
        # The level is always given: left to itself, Powertools reads LOG_LEVEL and raises on a bad one
        # before the settings can report it properly.
        _loggers[name] = PowertoolsLogger(service=name, level=level, logger_handler=handler)
    return _loggers[name]


class PowertoolsMetrics:
    """Powertools Metrics (CloudWatch EMF) behind the small Metrics protocol."""

    def __init__(self, metrics: Any, *, emit_dimensioned: bool = True) -> None:
        self._metrics = metrics
        # Outside Lambda (the CLI, the demo) nothing collects EMF from stdout: no record of its own is written.
        self._emit_dimensioned = emit_dimensioned

    def add_metric(self, name: str, value: float = 1) -> None:
        from aws_lambda_powertools.metrics import MetricUnit

        self._metrics.add_metric(name=name, unit=MetricUnit.Count, value=value)

    def add_metadata(self, key: str, value: str) -> None:
        """A key in the next EMF record that is not a dimension (searchable in the logs, no metric of its own)."""
        self._metrics.add_metadata(key=key, value=value)

    def add_dimensioned_metric(self, name: str, dimensions: dict[str, str], value: float = 1) -> None:
        """A count with its own dimensions, written at once as its own EMF record (Powertools single_metric)."""
        from aws_lambda_powertools.metrics import MetricUnit, single_metric

        if not self._emit_dimensioned:
            return
        with single_metric(name=name, unit=MetricUnit.Count, value=value, namespace=self._metrics.namespace) as metric:
            for key, item in dimensions.items():
                metric.add_dimension(name=key, value=item)
