"""Events to the vendor's app: endpoints, signed deliveries with retries, the event catalogue.

Packages publish catalogued events with ``app.events.publish``; the outbox and the dispatcher do the rest.
"""

from app.webhooks.events import Payload, emit_event, event

__all__ = ["Payload", "emit_event", "event"]
