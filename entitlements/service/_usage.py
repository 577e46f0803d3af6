"""Usage ingestion (idempotent by event id, counters in the same transaction, optional enforcement),
usage history, and demand signals (denied checks and attempt events)."""

from __future__ import annotations

from collections import defaultdict
from datetime import UTC, date, datetime, timedelta

import asyncpg
import msgspec
from sqlalchemy import func, select, text
from sqlalchemy.ext.asyncio import AsyncEngine, AsyncSession

from app import notify
from app.accounts import resolve_user
from app.auth import Principal, UserPrincipal
from app.clock import Clock
from app.db import driver_connection
from app.errors import DomainError, FieldError, Forbidden, NotFound, Unprocessable
from entitlements.domain import CatalogView, HeldGrant, counter_period, resolve
from entitlements.errors import FeatureNotFound, LimitExceeded, OutsideBackfillWindow
from entitlements.models import Grant, UsageCounter, UsageEvent
from entitlements.schemas import UsageBatch, UsageEventIn, UsageHistory, UsagePeriodRead, UsageResult
from entitlements.service._changes import record_changes
from entitlements.service._grants import held_by
from entitlements.service._staging import MergeRow, Periods, merge_fast, merge_rows, positional

# The key table decides what is new (the partitioned events table can only be unique per month); both inserts
# are one statement, so a batch is still one round trip.
_INSERT_EVENTS = text("""
    WITH batch AS (
        SELECT * FROM unnest(CAST(:a AS text[]), CAST(:e AS text[]), CAST(:u AS text[]), CAST(:f AS text[]),
                             CAST(:k AS text[]), CAST(:q AS bigint[]), CAST(:o AS timestamptz[]),
                             CAST(:p AS timestamptz[]), CAST(:pr AS text[])) AS t(a, e, u, f, k, q, o, p, pr)
    ), fresh AS (
        INSERT INTO ent_usage_event_keys (account_id, event_id, recorded_at)
        SELECT a, e, :now FROM batch
        ON CONFLICT (account_id, event_id) DO NOTHING
        RETURNING account_id, event_id
    )
    INSERT INTO ent_usage_events (account_id, event_id, user_id, feature, kind, quantity, occurred_at, period_start,
                                  properties, recorded_at)
    SELECT b.a, b.e, b.u, b.f, b.k, b.q, b.o, b.p, CAST(b.pr AS jsonb), :now
      FROM batch b JOIN fresh ON fresh.account_id = b.a AND fresh.event_id = b.e
    RETURNING account_id, event_id
""")

_ENSURE_COUNTER = text("""
    INSERT INTO ent_usage_counters (account_id, user_id, feature, period_start, period_end, used, updated_at)
    VALUES (:a, :u, :f, :s, :e, 0, :now) ON CONFLICT DO NOTHING
""")

# The guard: the increment happens only if it stays within the limit. Concurrent writers queue on the row
# lock and PostgreSQL re-evaluates the condition against the committed value, so together they never exceed it.
_GUARDED_ADD = text("""
    UPDATE ent_usage_counters SET used = used + :n, updated_at = :now
     WHERE account_id = :a AND user_id = :u AND feature = :f AND period_start = :s AND used + :n <= :limit
    RETURNING used
""")

_ADD_SIGNALS = text("""
    INSERT INTO ent_demand_signals (account_id, user_id, feature, day, denied_checks, attempts, last_at)
    SELECT a, u, f, d, dn, at, :now
      FROM unnest(CAST(:a AS text[]), CAST(:u AS text[]), CAST(:f AS text[]), CAST(:d AS date[]),
                  CAST(:dn AS bigint[]), CAST(:at AS bigint[])) AS t(a, u, f, d, dn, at)
    ON CONFLICT (account_id, user_id, feature, day)
    DO UPDATE SET denied_checks = ent_demand_signals.denied_checks + EXCLUDED.denied_checks,
                  attempts = ent_demand_signals.attempts + EXCLUDED.attempts,
                  last_at = GREATEST(ent_demand_signals.last_at, EXCLUDED.last_at)
""")

# The batch's users as one JSON text each way (a batch names up to a thousand): no per-element checks of a bound
# array in the driver, no result row per user.
_USERS = text("""
    SELECT CAST(coalesce(json_agg(json_build_array(external_id, account_id, user_id)), '[]') AS text) FROM users
     WHERE external_id = ANY(ARRAY(SELECT jsonb_array_elements_text(CAST(:refs AS jsonb))))
""")
_FAST_USERS = positional(str(_USERS.text))[0]
_USER_ROWS = msgspec.json.Decoder(list[tuple[str, str, str]]).decode

CounterKey = tuple[str, str, str, datetime]
ACCOUNT_WIDE_AFTER = 20  # users of one account in one batch  # account, user, feature, period start


async def _users(session: AsyncSession, principal: Principal, refs: list[str]) -> dict[str, tuple[str, str]]:
    """external id -> (account_id, user_id); unknown or invisible users are a 404 naming the first one."""
    return _found(principal, refs, await session.scalar(_USERS, {"refs": msgspec.json.encode(refs).decode()}))


def _found(principal: Principal, refs: list[str], answer: str | None) -> dict[str, tuple[str, str]]:
    """``_users`` given the lookup's answer."""
    found = {ref: (a, u) for ref, a, u in _USER_ROWS(answer or "[]")}
    for ref in refs:
        hit = found.get(ref)
        if hit is None or not principal.may_access_user(*hit):
            raise NotFound(f"User {ref!r} does not exist.", user=ref)
    return found


def _check_events(events: list[UsageEventIn], view: CatalogView, *, now: datetime, backfill: timedelta,
                  skew: timedelta) -> None:
    for i, ev in enumerate(events):
        if ev.feature not in view.features:
            raise FeatureNotFound(f"Feature {ev.feature!r} does not exist (event {ev.event_id!r}).",
                                  feature=ev.feature, errors=[FieldError(field=f"events[{i}].feature",
                                                                         message="unknown feature")])
        if ev.occurred_at is not None and not (now - backfill <= ev.occurred_at <= now + skew):
            raise OutsideBackfillWindow(
                f"Event {ev.event_id!r}: occurred_at must lie within the last {backfill.days} days "
                f"(and not in the future).", errors=[FieldError(field=f"events[{i}].occurred_at",
                                                                message="outside the accepted window")])


SESSION_ATTEMPT_MAX = 10  # the most one attempt event sent by an end user's session may count


def _session_may_report(events: list[UsageEventIn]) -> None:
    """Usage (what is billed and limited) is the vendor's to report; a session reports only bounded attempts."""
    for i, ev in enumerate(events):
        if ev.kind != "attempt":
            raise Forbidden("A session token may report only attempt events; usage is reported by the vendor's "
                            "backend with an API key.", errors=[FieldError(field=f"events[{i}].kind",
                                                                           message="must be attempt")])
        if ev.quantity > SESSION_ATTEMPT_MAX:
            raise Unprocessable(f"An attempt reported by a session counts at most {SESSION_ATTEMPT_MAX}.",
                                errors=[FieldError(field=f"events[{i}].quantity",
                                                   message=f"at most {SESSION_ATTEMPT_MAX}")])


async def _limits(session: AsyncSession, view: CatalogView, account_id: str, user_id: str, now: datetime,
                  ) -> dict[str, int | None]:
    """feature -> summed limit (None: granted without a limit) for features the user holds now."""
    rows = (await session.execute(select(Grant.grant_id, Grant.module, Grant.starts_at).where(
        *held_by(account_id, user_id, now), Grant.starts_at <= now))).all()
    held = [HeldGrant(grant_id=g, module=m, subject="user", starts_at=s) for g, m, s in rows]
    return {k: s.limit for k, s in resolve(held, view).items()}


async def record_usage(
    session: AsyncSession, events: list[UsageEventIn], *, principal: Principal, enforce: bool, clock: Clock,
    view: CatalogView, backfill_days: int, future_skew_seconds: int = 300,
) -> UsageResult:
    """Record a batch atomically: new events are counted once, replays are reported as duplicates."""
    now = clock.now()
    _check_events(events, view, now=now, backfill=timedelta(days=backfill_days),
                  skew=timedelta(seconds=future_skew_seconds))
    users = await _users(session, principal, sorted({e.user for e in events}))  # another's user: 404 first
    if isinstance(principal, UserPrincipal):
        _session_may_report(events)
    if not enforce:  # the merge records and tells the changes itself (one statement, see _staging)
        return await _merged(session, events, users, view=view, now=now)
    by_key: dict[tuple[str, str], UsageEventIn] = {}
    for ev in events:
        by_key.setdefault((users[ev.user][0], ev.event_id), ev)
    inserted, usage = await _enforced(session, by_key, users, view=view, now=now)
    await record_changes(session, _invalidations(usage))
    return await _sorted_out(session, events, users, by_key, inserted)


def _merge_rows(events: list[UsageEventIn], users: dict[str, tuple[str, str]], view: CatalogView, now: datetime,
                ) -> tuple[list[MergeRow], dict[tuple[str, str], UsageEventIn], bool]:
    """One pass over the batch: the merge's rows (the first event of each (account, event id)), those first events
    by key, and whether any is an attempt."""
    of = Periods(view).of
    at_now: dict[str, tuple[datetime, datetime]] = {}  # feature -> period bounds of an event without a time
    rows: list[MergeRow] = []
    first: dict[tuple[str, str], UsageEventIn] = {}
    attempts = False
    for ev in events:
        account_id, user_id = users[ev.user]
        key = (account_id, ev.event_id)
        if key in first:
            continue
        first[key] = ev
        feature, at = ev.feature, ev.occurred_at
        if at is None:
            at = now
            bounds = at_now.get(feature)
            if bounds is None:
                bounds = at_now[feature] = of(feature, now)
        else:
            bounds = of(feature, at)
        if ev.kind == "attempt":
            attempts = True
        rows.append((len(rows), account_id, ev.event_id, user_id, feature, ev.kind, ev.quantity, at, *bounds,
                     ev.properties or None, False))
    return rows, first, attempts


async def fast_usage(engine: AsyncEngine, principal: Principal, batch: UsageBatch, *, clock: Clock,
                     view: CatalogView, backfill_days: int, future_skew_seconds: int = 300) -> UsageResult | None:
    """``record_usage``'s common case -- a vendor key's batch without enforcement -- as two statements on a plain
    connection of ``engine`` (the fast pool, D96), each its own transaction: the users' lookup (a read), then the
    merge (one statement, so atomic as before; under READ COMMITTED the route's transaction gave these two
    statements no more than that). None when the ordinary path must answer, with nothing written: a problem
    answer (unknown feature or user, outside the window), enforcement, an end user's session, or the database
    refusing a statement. An exception after the merge committed (the read that tells duplicates from conflicts,
    made only when an id was seen before) propagates: the batch is recorded, and the ordinary path run again
    reports its events as seen before, as a client's retry would find them."""
    if batch.enforce or isinstance(principal, UserPrincipal):
        return None
    events = batch.events
    now = clock.now()
    try:
        _check_events(events, view, now=now, backfill=timedelta(days=backfill_days),
                      skew=timedelta(seconds=future_skew_seconds))
    except DomainError:
        return None
    refs = sorted({e.user for e in events})
    async with driver_connection(engine) as conn:
        try:
            answer = await conn.fetchval(_FAST_USERS, msgspec.json.encode(refs).decode())
        except asyncpg.PostgresError:
            return None
        try:
            users = _found(principal, refs, answer)
        except DomainError:
            return None
        rows, first, attempts = _merge_rows(events, users, view, now)
        try:
            old, told = await merge_fast(conn, rows, now=now, changes_wide_after=ACCOUNT_WIDE_AFTER,
                                         attempts=attempts)
        except asyncpg.PostgresError:  # one statement: nothing was written
            return None
        notify.dispatch_local(told)
        if not old and len(rows) == len(events):
            return UsageResult(accepted=len(events), duplicates=0, duplicate_event_ids=[])
        inserted = {(r[1], r[2]) for r in rows if r[0] not in old}
        keys = sorted(set(first) - inserted)
        stored = {(a, e): (u, f, k, q, o) for a, e, u, f, k, q, o in await conn.fetch(
            _FAST_STORED, [k[0] for k in keys], [k[1] for k in keys])} if keys else {}
    return _sort_out(events, users, first, inserted, stored)


async def _merged(session: AsyncSession, events: list[UsageEventIn], users: dict[str, tuple[str, str]], *,
                  view: CatalogView, now: datetime) -> UsageResult:
    """The common path: one pass over the batch builds the merge's rows, one statement (events, counters, demand,
    change rows and notices) writes them; the answer needs no further read unless an id was seen before."""
    rows, first, attempts = _merge_rows(events, users, view, now)
    old = await merge_rows(session, rows, now=now, changes_wide_after=ACCOUNT_WIDE_AFTER, attempts=attempts)
    if not old and len(rows) == len(events):  # every event new and none repeated: nothing to sort out
        return UsageResult(accepted=len(events), duplicates=0, duplicate_event_ids=[])
    inserted = {(r[1], r[2]) for r in rows if r[0] not in old}
    return await _sorted_out(session, events, users, first, inserted)


async def _enforced(session: AsyncSession, first: dict[tuple[str, str], UsageEventIn],
                    users: dict[str, tuple[str, str]], *, view: CatalogView, now: datetime,
                    ) -> tuple[set[tuple[str, str]], dict[CounterKey, int]]:
    """With enforcement: the events as one statement, then each counter by the guarded add (limits first)."""
    cols: dict[str, list[object]] = {c: [] for c in ("a", "e", "u", "f", "k", "q", "o", "p", "pr")}
    periods = Periods(view)
    for (account_id, event_id), ev in first.items():
        at = ev.occurred_at or now
        for c, v in zip(cols, (account_id, event_id, users[ev.user][1], ev.feature, ev.kind, ev.quantity, at,
                               periods.of(ev.feature, at)[0],
                               msgspec.json.encode(ev.properties).decode() if ev.properties else None), strict=True):
            cols[c].append(v)
    inserted = {(a, e) for a, e in (await session.execute(_INSERT_EVENTS, {**cols, "now": now})).all()}
    usage: dict[CounterKey, tuple[datetime, int]] = defaultdict(lambda: (now, 0))
    attempts: dict[tuple[str, str, str, date], int] = defaultdict(int)
    for account_id, event_id in sorted(inserted):
        ev = first[(account_id, event_id)]
        user_id = users[ev.user][1]
        at = ev.occurred_at or now
        if ev.kind == "attempt":
            attempts[(account_id, user_id, ev.feature, at.astimezone(UTC).date())] += ev.quantity
            continue
        start, end = periods.of(ev.feature, at)
        key = (account_id, user_id, ev.feature, start)
        usage[key] = (end, usage[key][1] + ev.quantity)
    await _enforced_add(session, usage, view=view, now=now)
    if attempts:
        await add_signals(session, {k: (0, n) for k, n in attempts.items()}, now=now)
    return inserted, {k: n for k, (_, n) in usage.items()}



_STORED = text("""
    SELECT account_id, event_id, user_id, feature, kind, quantity, occurred_at FROM ent_usage_events
     WHERE (account_id, event_id) IN (SELECT * FROM unnest(CAST(:a AS text[]), CAST(:e AS text[])))
""")


_FAST_STORED = positional(str(_STORED.text))[0]


def _same(ev: UsageEventIn, user_id: str, stored: tuple[str, str, str, int, datetime]) -> bool:
    """Is ``ev`` the event stored under its id (an event without ``occurred_at`` matches any time)?"""
    s_user, s_feature, s_kind, s_quantity, s_at = stored
    return (user_id, ev.feature, ev.kind, ev.quantity) == (s_user, s_feature, s_kind, s_quantity) and (
        ev.occurred_at is None or ev.occurred_at == s_at)


async def _sorted_out(session: AsyncSession, events: list[UsageEventIn], users: dict[str, tuple[str, str]],
                      first: dict[tuple[str, str], UsageEventIn], inserted: set[tuple[str, str]]) -> UsageResult:
    """Each event sent is accepted (counted now), a duplicate (the same event again) or a conflict (its id
    was used for a different event): the three add up to the events sent."""
    keys = sorted(set(first) - inserted)
    stored = {(a, e): (u, f, k, q, o) for a, e, u, f, k, q, o in (await session.execute(
        _STORED, {"a": [k[0] for k in keys], "e": [k[1] for k in keys]})).all()} if keys else {}
    return _sort_out(events, users, first, inserted, stored)


def _sort_out(events: list[UsageEventIn], users: dict[str, tuple[str, str]],
              first: dict[tuple[str, str], UsageEventIn], inserted: set[tuple[str, str]],
              stored: dict[tuple[str, str], tuple[str, str, str, int, datetime]]) -> UsageResult:
    """``_sorted_out`` given the stored events of the ids that were not new."""
    accepted = duplicates = 0
    duplicate_ids: list[str] = []
    conflict_ids: list[str] = []
    counted: set[tuple[str, str]] = set()
    for ev in events:
        account_id, user_id = users[ev.user]
        key = (account_id, ev.event_id)
        if key in inserted and key not in counted and first[key] is ev:
            counted.add(key)
            accepted += 1
            continue
        reference = stored.get(key)
        if key in inserted:  # the same id earlier in this batch: compare with that event
            original = first[key]
            reference = (users[original.user][1], original.feature, original.kind, original.quantity,
                         original.occurred_at or datetime.min.replace(tzinfo=UTC))
        if reference is not None and _same(ev, user_id, reference):
            duplicates += 1
            duplicate_ids.append(ev.event_id)
        else:
            conflict_ids.append(ev.event_id)
    return UsageResult(accepted=accepted, duplicates=duplicates, duplicate_event_ids=duplicate_ids[:100],
                       conflicts=len(conflict_ids), conflict_event_ids=conflict_ids[:100])


def _invalidations(usage: dict[CounterKey, int]) -> list[tuple[str, str | None]]:
    """Per user, or once per account when a batch touches many of its users (fewer messages, same effect)."""
    users: dict[str, set[str]] = defaultdict(set)
    for account_id, user_id, _, _ in usage:
        users[account_id].add(user_id)
    out: list[tuple[str, str | None]] = []
    for account_id, ids in sorted(users.items()):
        out += [(account_id, None)] if len(ids) > ACCOUNT_WIDE_AFTER else [(account_id, u) for u in sorted(ids)]
    return out


async def _enforced_add(session: AsyncSession, usage: dict[CounterKey, tuple[datetime, int]], *, view: CatalogView,
                        now: datetime) -> None:
    limits: dict[tuple[str, str], dict[str, int | None]] = {}
    for key in sorted(usage):  # a fixed order, so concurrent batches lock counter rows without deadlocking
        account_id, user_id, feature, start = key
        end, n = usage[key]
        if (account_id, user_id) not in limits:
            limits[(account_id, user_id)] = await _limits(session, view, account_id, user_id, now)
        held = limits[(account_id, user_id)]
        if feature not in held:
            raise LimitExceeded(f"The user does not hold feature {feature!r}; nothing was recorded.",
                                feature=feature, limit=0)
        limit = held[feature]
        row = {"a": account_id, "u": user_id, "f": feature, "s": start, "e": end, "now": now, "n": n}
        await session.execute(_ENSURE_COUNTER, row)
        if limit is None:
            await session.execute(_GUARDED_ADD, {**row, "limit": 2**62})
            continue
        if (await session.execute(_GUARDED_ADD, {**row, "limit": limit})).first() is None:
            raise LimitExceeded(f"Using {n} more of {feature!r} would exceed the limit of {limit}; nothing was "
                                "recorded.", feature=feature, limit=limit, requested=n)


async def add_signals(session: AsyncSession, counts: dict[tuple[str, str, str, date], tuple[int, int]], *,
                      now: datetime) -> None:
    """Add (denied checks, attempts) per (account, user, feature, day) in one statement."""
    if not counts:
        return
    keys = sorted(counts)
    await session.execute(_ADD_SIGNALS, {
        "a": [k[0] for k in keys], "u": [k[1] for k in keys], "f": [k[2] for k in keys], "d": [k[3] for k in keys],
        "dn": [counts[k][0] for k in keys], "at": [counts[k][1] for k in keys], "now": now})


async def usage_history(session: AsyncSession, principal: Principal, user_ref: str, feature: str, *,
                        view: CatalogView, limit: int, now: datetime) -> UsageHistory:
    """Counters of one user and feature, newest period first."""
    user = await resolve_user(session, principal, user_ref)
    f = view.features.get(feature)
    if f is None:
        raise FeatureNotFound(f"Feature {feature!r} does not exist.", feature=feature)
    rows = await session.scalars(select(UsageCounter).where(
        UsageCounter.account_id == user.account_id, UsageCounter.user_id == user.user_id,
        UsageCounter.feature == feature).order_by(UsageCounter.period_start.desc()).limit(limit))
    held = await _limits(session, view, user.account_id, user.user_id, now)
    return UsageHistory(user=user.external_id, feature=feature, period=counter_period(f), limit=held.get(feature),
                        data=[UsagePeriodRead(period_start=r.period_start, period_end=r.period_end, used=r.used)
                              for r in rows])


async def usage_totals(session: AsyncSession, account_id: str, *, user_ids: list[str], features: list[str],
                       start: datetime, end: datetime) -> dict[str, int]:
    """Units each of these users used of these features with ``start <= occurred_at < end`` (usage events, not
    attempts): what metered billing charges. One query on the events' (account, user, feature, time) index."""
    if not user_ids or not features:
        return {}
    rows = (await session.execute(
        select(UsageEvent.user_id, func.sum(UsageEvent.quantity))
        .where(UsageEvent.account_id == account_id, UsageEvent.user_id.in_(user_ids),
               UsageEvent.feature.in_(features), UsageEvent.kind == "usage",
               UsageEvent.occurred_at >= start, UsageEvent.occurred_at < end)
        .group_by(UsageEvent.user_id))).all()
    return {user_id: int(total) for user_id, total in rows}
