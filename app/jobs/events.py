"""The alert event of the scheduler."""

from __future__ import annotations

from datetime import datetime

from app.webhooks.events import Payload, event


@event("job.failed", description=(
    "A scheduled job failed on its last attempt (the next slot will run it again); an operations alert."))
class JobFailed(Payload, frozen=True):
    job: str
    slot_at: datetime
    attempts: int
    error: str
    failed_at: datetime
