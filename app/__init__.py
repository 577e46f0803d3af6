"""HTTP application: wiring, settings, auth, errors, idempotency, outbox, CLI."""
