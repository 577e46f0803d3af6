"""Events to the vendor's app: endpoints, signed deliveries with retries, the event catalogue.

Other packages emit catalogued events with ``emit_event`` (see ``events``); the dispatcher does the rest.
"""

from app.webhooks.events import Payload, emit_event, event

__all__ = ["Payload", "emit_event", "event"]
