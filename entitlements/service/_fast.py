"""Grants as parts of another package's one statement (app/onestatement.py): the same rows, events and notices
as ``grant`` and ``record_changes``, with no round trip of their own."""

from __future__ import annotations

from datetime import datetime

import msgspec

from app.events import Published, WithVendorIds
from app.ids import new_id
from app.notify import CHANNEL, payloads_of
from app.onestatement import Statement, plain
from entitlements.domain import grant_status
from entitlements.events import EntitlementGranted
from entitlements.models import EntitlementChange, Grant
from entitlements.service._changes import TOPIC
from entitlements.service._grants import Source, _event


def grant_in(statement: Statement, *, account_id: str, user_id: str | None, module: str, source: Source,
             source_ref: str, starts_at: datetime, ends_at: datetime | None, seats: int | None, now: datetime,
             account_ref: str, user_ref: str | None) -> Published[EntitlementGranted]:
    """A new grant (its source line is new, so no retry can collide) and its ``entitlement.granted`` event,
    vendor ids filled; the caller writes the event's outbox row."""
    assert ends_at is None or ends_at >= starts_at
    assert (seats is None or (user_id is None and seats >= 1))
    row = plain(Grant, account_id=account_id, grant_id=new_id("grt"), user_id=user_id, module=module, source=source,
                source_ref=source_ref, starts_at=starts_at, ends_at=ends_at, seats=seats, seats_assigned=0,
                created_at=now, updated_at=now, revoked_at=None, revoke_reason=None)
    statement.insert("grant", [row])
    event = _event(EntitlementGranted, row, now)
    assert isinstance(event, WithVendorIds) and grant_status(starts_at=starts_at, ends_at=ends_at, revoked_at=None,
                                                             now=now) == event.status
    event = _with_ids(event, account_ref, user_ref if user_id is not None else None)
    return Published(event=event, event_id=new_id("evt"), account_id=account_id, occurred_at=now)


def _with_ids(event: EntitlementGranted, account_ref: str, user_ref: str | None) -> EntitlementGranted:
    return msgspec.structs.replace(event, account=account_ref, user=user_ref)


def changes_in(statement: Statement, targets: list[tuple[str, str | None]]) -> list[str]:
    """``record_changes`` in the statement: the change rows and their notices (sent at commit); returns the
    notices, for this process's own listeners once the statement committed."""
    unique = list(dict.fromkeys(targets))
    if not unique:
        return []
    statement.insert("ent_change", [plain(EntitlementChange, account_id=a, user_id=u) for a, u in unique])
    payloads = payloads_of(TOPIC, [a if u is None else f"{a}:{u}" for a, u in unique])
    statement.cte("ent_notify", f"SELECT pg_notify({statement.param(CHANNEL, 'TEXT')}, p) "
                                f"FROM unnest({statement.param(payloads, 'TEXT[]')}) AS p", evaluate=True)
    return payloads


def no_open_trial(statement: Statement, *, account_id: str, user_id: str, modules: list[str]) -> None:
    """Guard: no unconverted trial of these modules (the user's own or the account's): a purchase converting
    one takes the ordinary path, which ends it and tells who needs to know."""
    statement.guard(
        "NOT EXISTS (SELECT 1 FROM ent_trials WHERE account_id = "
        f"{statement.param(account_id, 'VARCHAR')} AND module = ANY({statement.param(modules, 'VARCHAR[]')}) "
        f"AND subject IN ({statement.param(user_id, 'VARCHAR')}, '*') AND converted_at IS NULL)", "open_trial")


def held_modules_sql(account: str, user: str, now: str, *, bought: bool) -> str:
    """SQL of the modules ``owned_modules_both`` finds (``bought``: those held by more than a trial), as an
    array, for another package's one-statement read; the arguments are SQL expressions."""
    return ("ARRAY(SELECT g.module FROM ent_grants g WHERE "
            f"g.account_id = {account} AND (g.ends_at IS NULL OR g.ends_at > {now}) "
            f"AND (g.revoked_at IS NULL OR g.revoked_at > {now}) AND g.starts_at <= {now} "
            f"AND (g.user_id = {user} OR g.user_id IS NULL) AND (g.seats IS NULL OR "
            f"EXISTS (SELECT 1 FROM ent_seat_assignments s WHERE s.account_id = {account} "
            f"AND s.grant_id = g.grant_id AND s.user_id = {user})) GROUP BY g.module"
            + (" HAVING bool_or(g.source <> 'trial'))" if bought else ")"))


def used_lately_sql(*, account_id: str, user_id: str, features: str, since: str) -> str:
    """SQL, true when the user used one of ``features`` (a text array) in a counter period ending after ``since``
    (what ``holdings_cte`` calls a module used lately), for another package's one statement; the arguments are
    SQL expressions."""
    return (f"EXISTS (SELECT 1 FROM ent_usage_counters c WHERE c.account_id = {account_id} "
            f"AND c.user_id = {user_id} AND c.feature = ANY({features}) AND c.period_end > {since} AND c.used > 0)")
