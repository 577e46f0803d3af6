"""Subscription states: renewed each period by the billing run, with dunning after a failed renewal.

active -> renewing -> active (renewed) | past_due (a retry is due) | ended (dunning exhausted);
canceled when an admin stops renewing or the order that started it is refunded or lost.
"""

from __future__ import annotations

from typing import Literal

SubscriptionStatus = Literal["active", "renewing", "past_due", "ended", "canceled"]
EndStatus = Literal["ended", "canceled"]
