"""Periodic jobs run inside the service, each slot once across every instance (see scheduler.py)."""

from app.jobs.schedule import Every, Monthly, Schedule
from app.jobs.scheduler import Job, JobResult, Ran, Scheduler

__all__ = ["Every", "Job", "JobResult", "Monthly", "Ran", "Schedule", "Scheduler"]
