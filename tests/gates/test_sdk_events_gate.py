"""The SDK's typed webhook events match the service's event catalogue, field for field."""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import msgspec
import pytest
from commerce_sdk import events as sdk_events
from commerce_sdk.webhooks import Event as SdkEvent
from polyfactory.factories.msgspec_factory import MsgspecFactory

from app.events import EventSpec, catalogue
from tests.gates.sdk_events import render

SDK_EVENTS = Path(__file__).resolve().parents[2] / "sdk" / "python" / "commerce_sdk" / "events.py"


def test_the_sdk_events_module_is_the_rendering_of_the_catalogue() -> None:
    assert SDK_EVENTS.read_text() == render(), (
        "the event catalogue changed: regenerate with python -m tests.gates.sdk_events > " + str(SDK_EVENTS.name))


@pytest.mark.parametrize("spec", sorted(catalogue(), key=lambda s: s.type), ids=lambda s: s.type)
def test_every_catalogued_event_decodes_into_its_sdk_struct_unchanged(spec: EventSpec) -> None:
    factory: Any = MsgspecFactory.create_factory(spec.payload)
    factory.__random_seed__ = 7
    payload = factory.build()
    body = msgspec.json.encode({"id": "evt_1", "type": spec.type, "version": spec.version, "seq": 1,
                                "occurred_at": datetime(2026, 12, 1, tzinfo=UTC), "account_id": "acc_1",
                                "data": payload})
    decoded = msgspec.json.decode(body, type=SdkEvent).payload
    assert type(decoded) is sdk_events.EVENT_TYPES[(spec.type, spec.version)]
    assert type(decoded).__name__ == spec.payload.__name__
    back = msgspec.convert(msgspec.to_builtins(decoded), spec.payload)  # nothing lost on the SDK's side
    assert msgspec.to_builtins(back) == msgspec.to_builtins(payload)
    assert set(type(decoded).__struct_fields__) == set(spec.payload.__struct_fields__)


def test_an_event_type_the_sdk_does_not_know_has_no_typed_payload() -> None:
    event = SdkEvent(id="evt_1", type="order.teleported", version=1, seq=1,
                     occurred_at=datetime(2026, 12, 1, tzinfo=UTC), data={"order_id": "o"})
    assert event.payload is None
    later = SdkEvent(id="evt_2", type="order.paid", version=2, seq=2, occurred_at=event.occurred_at, data={})
    assert later.payload is None  # a version this SDK was not built for is not guessed at
