"""States of budget holds and kinds of ledger entries (two-phase: a hold is posted or voided once)."""

from __future__ import annotations

from typing import Literal

HoldState = Literal["pending", "posted", "voided"]
LedgerKind = Literal["reserve", "capture", "release", "refund"]
