"""The one Chalice internal deputy-guard relies on, pinned so a Chalice upgrade that changes it fails loudly here.

Chalice builds the event object for an `on_cw_event` handler with `handler.event_class(event, context)`,
and CloudWatchEvent.__init__ reads the envelope in `_extract_attributes`, raising KeyError on a malformed
one before any handler or middleware runs. There is no public hook to tolerate that, so app.py subclasses
the event class; these tests say exactly what that needs from Chalice.
"""

from __future__ import annotations

import inspect

import chalice.app
from chalice.app import CloudWatchEvent

import app as app_module


def test_cloudwatch_event_still_reads_its_envelope_in_extract_attributes() -> None:
    source = inspect.getsource(CloudWatchEvent)
    assert "def _extract_attributes(self, event_dict" in source, "Chalice renamed CloudWatchEvent._extract_attributes"
    base_init = inspect.getsource(chalice.app.BaseLambdaEvent.__init__)
    assert "self._extract_attributes(event_dict)" in base_init, "Chalice no longer calls _extract_attributes"


def test_the_handler_builds_its_event_from_event_class() -> None:
    handler = app_module.on_iam_event
    assert handler.event_class is app_module.LenientCloudWatchEvent, "Chalice renamed EventSourceHandler.event_class"
    assert "self.event_class(event, context)" in inspect.getsource(type(handler).__call__)


def test_the_lenient_event_reads_every_attribute_chalice_defines() -> None:
    # Given the attributes Chalice's own class sets / When the lenient class reads a malformed envelope
    chalice_attributes = {
        "version",
        "account",
        "region",
        "detail",
        "detail_type",
        "source",
        "time",
        "event_id",
        "resources",
    }
    event = app_module.LenientCloudWatchEvent({"detail": 7, "resources": "x"}, None)
    # Then it sets each of them, with empty values instead of a KeyError
    assert {name for name in chalice_attributes if hasattr(event, name)} == chalice_attributes
    assert event.detail == {} and event.resources == [] and event.event_id == ""
    full = CloudWatchEvent(
        {
            "version": "0",
            "account": "1",
            "region": "r",
            "detail": {},
            "detail-type": "t",
            "source": "s",
            "time": "t",
            "id": "i",
            "resources": [],
        },
        None,
    )
    assert set(vars(full)) - {"context", "_event_dict"} <= chalice_attributes, "Chalice's event gained attributes"
