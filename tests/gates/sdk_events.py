"""Render the SDK's typed webhook events (sdk/python/commerce_sdk/events.py) from the service's event catalogue.

The SDK is its own package and imports nothing of the service, so its event structs are source text written
from the catalogue; the gate (test_sdk_events_gate.py) fails when the committed file differs from this
rendering. Regenerate with ``python -m tests.gates.sdk_events > sdk/python/commerce_sdk/events.py``.
"""

from __future__ import annotations

import textwrap
import types
import typing
from datetime import datetime
from typing import Any

import msgspec

import app.asgi  # noqa: F401  (the app factory imports every package, so every event is registered)
from app.events import catalogue

HEADER = '''"""Typed payloads of every webhook event the service sends (its catalogue: ``GET /v1/webhook-event-types``).

Generated from the service's event catalogue (do not edit by hand; the service's tests fail when this file and
the catalogue disagree). ``Event.payload`` (commerce_sdk.webhooks) decodes ``data`` into the struct registered
here for the event's type and version. Unknown fields are ignored, so a newer service never breaks this SDK.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any, Literal

import msgspec


class Payload(msgspec.Struct, kw_only=True, frozen=True):
    """Base of every event payload."""
'''


def _render_type(tp: Any, nested: dict[str, type]) -> str:
    origin = typing.get_origin(tp)
    if origin is typing.Annotated:
        return _render_type(typing.get_args(tp)[0], nested)
    if origin is typing.Literal:
        return "Literal[" + ", ".join(repr(a) for a in typing.get_args(tp)) + "]"
    if origin in (typing.Union, types.UnionType):
        return " | ".join(_render_type(a, nested) for a in typing.get_args(tp))
    if origin is list:
        return f"list[{_render_type(typing.get_args(tp)[0], nested)}]"
    if origin is dict:
        key, value = typing.get_args(tp)
        return f"dict[{_render_type(key, nested)}, {_render_type(value, nested)}]"
    if tp is type(None):
        return "None"
    if tp is Any:
        return "Any"
    if tp in (str, int, bool, float):
        return tp.__name__
    if tp is datetime:
        return "datetime"
    if isinstance(tp, type) and issubclass(tp, msgspec.Struct):
        nested.setdefault(tp.__name__, tp)
        return tp.__name__
    raise TypeError(f"no SDK rendering for {tp!r}")


def _render_struct(cls: type[msgspec.Struct], nested: dict[str, type], doc: str | None) -> str:
    lines = [f"class {cls.__name__}(Payload, frozen=True, kw_only=True):"]
    if doc:
        wrapped = textwrap.fill(doc, width=112, initial_indent="    \"\"\"", subsequent_indent="    ")
        lines += [wrapped + ('\n    """' if "\n" in wrapped else '"""'), ""]
    hints = typing.get_type_hints(cls, include_extras=True)
    for field in msgspec.structs.fields(cls):
        annotation = _render_type(hints[field.name], nested)
        if field.default is not msgspec.NODEFAULT:
            lines.append(f"    {field.name}: {annotation} = {field.default!r}")
        elif field.default_factory is not msgspec.NODEFAULT:
            lines.append(f"    {field.name}: {annotation} = {field.default_factory()!r}")
        else:
            lines.append(f"    {field.name}: {annotation}")
    return "\n".join(lines)


def render() -> str:
    """The SDK's events module for the catalogue as it is now."""
    specs = sorted(catalogue(), key=lambda s: (s.type, s.version))
    nested: dict[str, type] = {}
    top = [(s, _render_struct(s.payload, nested, s.description)) for s in specs]
    done: set[str] = {s.payload.__name__ for s in specs}
    helpers: list[str] = []
    while set(nested) - done:  # nested structs (and theirs), each once, before the payloads that use them
        name = sorted(set(nested) - done)[0]
        done.add(name)
        helpers.append(_render_struct(nested[name], nested, None))
    seen: set[str] = set()
    payloads = []
    for spec, source in top:
        if spec.payload.__name__ not in seen:
            seen.add(spec.payload.__name__)
            payloads.append(source)
    registry = "\n".join(f"    ({s.type!r}, {s.version}): {s.payload.__name__}," for s in specs)
    return (HEADER + "\n\n" + "\n\n\n".join(helpers + payloads) + "\n\n\n"
            + "EVENT_TYPES: dict[tuple[str, int], type[Payload]] = {\n" + registry + "\n}\n")


if __name__ == "__main__":
    print(render(), end="")
