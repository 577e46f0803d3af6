"""The run log of scheduled jobs: one row per (job, scheduled slot), so a slot runs once across instances."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import Index, String, Text
from sqlalchemy.dialects.postgresql import JSONB
from sqlalchemy.orm import Mapped, mapped_column

from app.db import Base


class JobRun(Base):
    """A slot of a job: inserted by the one instance that claims it, then moved to its outcome."""

    __tablename__ = "job_runs"
    __table_args__ = (Index("ix_job_runs_job_status", "job", "status"),)

    job: Mapped[str] = mapped_column(String(60), primary_key=True)
    slot_at: Mapped[datetime] = mapped_column(primary_key=True)
    # running | succeeded | retrying | failed | superseded
    status: Mapped[str] = mapped_column(String(20))
    attempts: Mapped[int] = mapped_column(default=0)
    trigger: Mapped[str] = mapped_column(String(20), default="schedule")  # schedule | manual
    started_at: Mapped[datetime | None]
    finished_at: Mapped[datetime | None]
    duration_ms: Mapped[int | None]
    next_attempt_at: Mapped[datetime | None]
    runner: Mapped[str | None] = mapped_column(String(200))
    error: Mapped[str | None] = mapped_column(Text)
    detail: Mapped[dict[str, Any] | None] = mapped_column(JSONB)
