"""History import: a vendor onboarding existing customers loads accounts, users with roles, past grants and
purchases, and usage and attempt events of any age, as NDJSON (one JSON object a line, ``type`` first).

Streamed: lines are decoded and written in batches of ``BATCH`` (memory stays flat whatever the file size).
Validated per line: a line that does not decode, names an unknown account, user, module or feature, or lies
in the future is reported with its number and message, and nothing of it is written; the other lines go on.
Each line is one entity, written whole or not at all. Idempotent by the vendor's ids: accounts and users by
external id (upserted), grants and purchases by (account, id, module), events by (account, id): importing
the same file twice writes nothing new. Purchases (and grants with a price paid) are grants of source
``import`` and purchase outcomes of the engine (attribution, "just bought"). Accounts and users must come
before the lines that name them (earlier in the file). Never commits: the request or command does; the
accounts that got something new are recounted for suggestions before it returns.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass, field
from datetime import datetime
from typing import Annotated

import msgspec
from msgspec import Meta
from sqlalchemy import select, text
from sqlalchemy.ext.asyncio import AsyncSession

import entitlements
from app import audit
from app.accounts.models import Account, User
from app.accounts.schemas import AccountUpsert, UserUpsert
from app.accounts.service import upsert_account, upsert_user
from app.clock import Clock
from app.errors import DomainError
from app.ids import new_id
from app.schemas import Currency, Email, ExternalId, Input, Name, Role, Slug
from entitlements.domain import CatalogView
from entitlements.schemas import ModuleKey, SourceRef, UtcTime
from suggest import peers
from suggest.schemas import ImportLineError, ImportRead

BATCH = 5_000
MAX_LINE_BYTES = 64 * 1024
MAX_ERRORS_SHOWN = 100
YIELD_EVERY = 250  # lines decoded between turns given to the writer
Quantity = Annotated[int, Meta(ge=1, le=10**12)]
Amount = Annotated[int, Meta(ge=0, le=10**15)]


class AccountLine(Input, tag="account", tag_field="type"):
    id: ExternalId
    name: Name | None = None
    segment: Slug = "smb"
    region: Slug = "us"
    currency: Currency = "USD"


class UserLine(Input, tag="user", tag_field="type"):
    id: ExternalId
    account: ExternalId
    roles: Annotated[list[Role], Meta(max_length=50)] = []
    email: Email | None = None
    name: Name | None = None


class GrantLine(Input, tag="grant", tag_field="type"):
    """A module held from ``starts_at`` (until ``ends_at``); with ``amount_minor`` > 0 it was bought."""

    id: SourceRef
    account: ExternalId
    module: ModuleKey
    starts_at: UtcTime
    user: ExternalId | None = None
    ends_at: UtcTime | None = None
    amount_minor: Amount = 0
    currency: Currency | None = None


class PurchaseLine(Input, tag="purchase", tag_field="type"):
    id: SourceRef
    account: ExternalId
    user: ExternalId
    module: ModuleKey
    at: UtcTime
    amount_minor: Amount = 0
    currency: Currency | None = None
    ends_at: UtcTime | None = None


class UsageLine(Input, tag="usage", tag_field="type"):
    id: SourceRef
    user: ExternalId
    feature: Slug
    occurred_at: UtcTime
    quantity: Quantity = 1


class AttemptLine(Input, tag="attempt", tag_field="type"):
    """A try of a feature the user did not have: a denied check (``denied``) or an attempt event."""

    id: SourceRef
    user: ExternalId
    feature: Slug
    occurred_at: UtcTime
    quantity: Quantity = 1
    denied: bool = False


# Bulk writes as one statement over arrays (a multi-row VALUES would be compiled anew for every batch size).
_INSERT_USERS = text("""
    INSERT INTO users (account_id, user_id, external_id, email, name, roles, created_at, updated_at)
    SELECT a, u, e, m, n, CASE WHEN r = '' THEN '{}'::text[] ELSE string_to_array(r, E'\\x1f') END, :now, :now
      FROM unnest(CAST(:a AS text[]), CAST(:u AS text[]), CAST(:e AS text[]), CAST(:m AS text[]),
                  CAST(:n AS text[]), CAST(:r AS text[])) AS t(a, u, e, m, n, r)
    ON CONFLICT (external_id) DO NOTHING
""")
_INSERT_OUTCOMES = text("""
    INSERT INTO sug_outcomes (account_id, outcome_id, user_id, module, kind, source_ref, amount_minor, currency, at)
    SELECT a, o, u, m, 'purchase', r, n, c, t
      FROM unnest(CAST(:a AS text[]), CAST(:o AS text[]), CAST(:u AS text[]), CAST(:m AS text[]),
                  CAST(:r AS text[]), CAST(:n AS bigint[]), CAST(:c AS text[]), CAST(:t AS timestamptz[]))
           AS t(a, o, u, m, r, n, c, t)
    ON CONFLICT DO NOTHING
""")

Line = AccountLine | UserLine | GrantLine | PurchaseLine | UsageLine | AttemptLine
_decoder = msgspec.json.Decoder(Line)
_batch_decoder = msgspec.json.Decoder(list[Line])


@dataclass
class _State:
    view: CatalogView
    now: datetime
    clock: Clock
    actor: str
    accounts: dict[str, tuple[str, str]] = field(default_factory=dict)  # external id -> (account id, currency)
    users: dict[str, tuple[str, str]] = field(default_factory=dict)  # external id -> (account id, user id)
    touched: set[str] = field(default_factory=set)  # accounts with something new: recounted at the end
    usage: entitlements.ImportedUsage = field(default_factory=entitlements.ImportedUsage)  # written at the end
    counts: dict[str, int] = field(default_factory=dict)
    errors: list[ImportLineError] = field(default_factory=list)
    error_count: int = 0
    lines: int = 0

    def fail(self, number: int, message: str) -> None:
        self.error_count += 1
        if len(self.errors) < MAX_ERRORS_SHOWN:
            self.errors.append(ImportLineError(line=number, message=message))

    def count(self, kind: str, n: int) -> None:
        self.counts[kind] = self.counts.get(kind, 0) + n


async def import_history(session: AsyncSession, chunks: AsyncIterator[bytes], *, clock: Clock, view: CatalogView,
                         actor: str, unused_days: int, progress: Callable[[int], None] | None = None) -> ImportRead:
    """Import NDJSON from ``chunks`` (any split); see the module docstring for the rules."""
    st = _State(view=view, now=clock.now(), clock=clock, actor=actor)
    writer = _Writer(session, st)
    try:
        numbers: list[int] = []
        raws: list[bytes] = []
        async for number, raw in _lines(chunks):
            st.lines = number
            if number % YIELD_EVERY == 0:
                await asyncio.sleep(0)  # the writer's statements move on while this task decodes
            if not raw.strip():
                continue
            if len(raw) > MAX_LINE_BYTES:
                st.fail(number, f"The line is longer than {MAX_LINE_BYTES} bytes.")
                continue
            numbers.append(number)
            raws.append(raw)
            if len(raws) >= BATCH:
                await writer.submit(_decode(st, numbers, raws))
                numbers, raws = [], []
                if progress is not None:
                    progress(number)
        await writer.submit(_decode(st, numbers, raws))
        await writer.drain()
    finally:
        writer.cancel()
    await st.usage.write(session, now=st.now)  # every batch's new usage and tries, summed
    if progress is not None:
        progress(st.lines)
    for account_id in sorted(st.touched):
        await peers.refresh_account(session, account_id, now=st.now, unused_days=unused_days, segment=False)
    segments = set(await session.scalars(select(Account.segment).where(Account.account_id.in_(sorted(st.touched)))))
    for segment in sorted(segments):  # each segment re-summed once, not once per account
        await peers.refresh_segment(session, segment)
    counts = dict(sorted(st.counts.items()))
    await audit.record(session, clock=clock, actor=actor, action="history.imported", target_type="import",
                       target_id=new_id("imp"), after={"lines": st.lines, "imported": counts,
                                                       "errors": st.error_count, "accounts": len(st.touched)})
    return ImportRead(lines=st.lines, imported=counts, errors=st.error_count,
                      first_errors=sorted(st.errors, key=lambda e: e.line), recounted_accounts=len(st.touched))


def _decode(st: _State, numbers: list[int], raws: list[bytes]) -> list[tuple[int, Line]]:
    """A batch's lines decoded as one JSON array when every line is valid (one call instead of thousands), else
    line by line, each invalid line reported with its number and the message decoding it alone gives."""
    if raws:
        try:
            lines = _batch_decoder.decode(b"[" + b",".join(raws) + b"]")
        except (msgspec.ValidationError, msgspec.DecodeError):
            pass
        else:
            if len(lines) == len(raws):  # else a line held more than one value: each is judged alone below
                return list(zip(numbers, lines, strict=True))
    batch: list[tuple[int, Line]] = []
    for number, raw in zip(numbers, raws, strict=True):
        try:
            batch.append((number, _decoder.decode(raw)))
        except msgspec.ValidationError as exc:
            st.fail(number, str(exc))
        except msgspec.DecodeError:
            st.fail(number, "The line is not one JSON object.")
    return batch


class _Writer:
    """Writes batches one after another in a task of its own, so the next batch is decoded (Python) while
    PostgreSQL merges the last one (the server's own process): on two cores the two overlap. Batches stay in
    order (a batch's accounts and users are known before the next is written) and the session is used by
    this task only while it runs."""

    def __init__(self, session: AsyncSession, st: _State) -> None:
        self.session, self.st = session, st
        self.task: asyncio.Task[None] | None = None

    async def submit(self, batch: list[tuple[int, Line]]) -> None:
        await self.drain()
        self.task = asyncio.create_task(_write(self.session, self.st, batch))
        await asyncio.sleep(0)  # let it send its first statement

    async def drain(self) -> None:
        if self.task is not None:
            task, self.task = self.task, None
            await task

    def cancel(self) -> None:
        if self.task is not None:
            self.task.cancel()


async def _lines(chunks: AsyncIterator[bytes]) -> AsyncIterator[tuple[int, bytes]]:
    """Numbered lines of a byte stream split anywhere (a line longer than the cap is cut short and reported)."""
    rest = b""
    number = 0
    async for chunk in chunks:
        rest += chunk
        *complete, rest = rest.split(b"\n")
        for line in complete:
            number += 1
            yield number, line
        if len(rest) > MAX_LINE_BYTES:
            number += 1
            yield number, rest
            rest = b""
    if rest:
        yield number + 1, rest


async def _write(session: AsyncSession, st: _State, batch: list[tuple[int, Line]]) -> None:
    accounts: list[tuple[int, AccountLine]] = []
    users: list[tuple[int, UserLine]] = []
    grants: list[tuple[int, GrantLine | PurchaseLine]] = []
    events: list[tuple[int, UsageLine | AttemptLine]] = []
    for n, x in batch:  # one pass, by exact type (isinstance goes through the structs' ABC machinery: slow)
        if type(x) is UsageLine or type(x) is AttemptLine:
            events.append((n, x))
        elif type(x) is GrantLine or type(x) is PurchaseLine:
            grants.append((n, x))
        elif type(x) is UserLine:
            users.append((n, x))
        elif type(x) is AccountLine:
            accounts.append((n, x))
    await _accounts(session, st, accounts)
    await _users(session, st, users)
    await _resolve(session, st, grants, events)
    await _grants(session, st, grants)
    await _events(session, st, events)


async def _accounts(session: AsyncSession, st: _State, lines: list[tuple[int, AccountLine]]) -> None:
    for number, a in lines:
        try:
            async with session.begin_nested():  # a failing line leaves nothing behind
                row, created = await upsert_account(session, AccountUpsert(
                    external_id=a.id, name=a.name or a.id, segment=a.segment, region=a.region, currency=a.currency),
                    actor=st.actor, clock=st.clock)
        except DomainError as exc:
            st.fail(number, exc.detail)
            continue
        st.accounts[a.id] = (row.account_id, row.currency)
        if created:
            st.touched.add(row.account_id)
        st.count("account", 1)


async def _users(session: AsyncSession, st: _State, lines: list[tuple[int, UserLine]]) -> None:
    await _known_accounts(session, st, {u.account for _, u in lines})
    existing = {e: (a, u, sorted(r or [])) for e, a, u, r in await session.execute(
        select(User.external_id, User.account_id, User.user_id, User.roles)
        .where(User.external_id.in_([u.id for _, u in lines])))} if lines else {}
    fresh: list[dict[str, str | None]] = []
    for number, u in lines:
        account = st.accounts.get(u.account)
        if account is None:
            st.fail(number, f"Account {u.account!r} does not exist (import it on an earlier line).")
            continue
        known = existing.get(u.id)
        if known is not None and known[0] != account[0]:
            st.fail(number, f"User {u.id!r} already belongs to another account.")
            continue
        if known is None:
            user_id = new_id("usr")
            fresh.append({"a": account[0], "u": user_id, "e": u.id, "m": u.email, "n": u.name,
                          "r": "\x1f".join(sorted(set(u.roles)))})
            existing[u.id] = (account[0], user_id, sorted(set(u.roles)))
            st.touched.add(account[0])
        elif known is not None and known[2] != sorted(set(u.roles)):
            account_row = await session.get_one(Account, account[0])
            await upsert_user(session, account_row, UserUpsert(external_id=u.id, email=u.email, name=u.name,
                                                               roles=u.roles), actor=st.actor, clock=st.clock)
            st.touched.add(account[0])
        st.users[u.id] = (account[0], existing[u.id][1])
        st.count("user", 1)
    if fresh:
        await session.execute(_INSERT_USERS, {k: [f[k] for f in fresh] for k in ("a", "u", "e", "m", "n", "r")}
                              | {"now": st.now})


async def _known_accounts(session: AsyncSession, st: _State, refs: set[str]) -> None:
    missing = sorted(refs - set(st.accounts))
    if missing:
        for external_id, account_id, currency in await session.execute(
                select(Account.external_id, Account.account_id, Account.currency)
                .where(Account.external_id.in_(missing))):
            st.accounts[external_id] = (account_id, currency)


async def _resolve(session: AsyncSession, st: _State, grants: list[tuple[int, GrantLine | PurchaseLine]],
                   events: list[tuple[int, UsageLine | AttemptLine]]) -> None:
    """Look up in one query each the accounts and users the batch names that this import has not seen."""
    await _known_accounts(session, st, {x.account for _, x in grants})
    refs = {x.user for _, x in grants if x.user is not None} | {x.user for _, x in events}
    missing = sorted(refs - set(st.users))
    if missing:
        for external_id, account_id, user_id in await session.execute(
                select(User.external_id, User.account_id, User.user_id).where(User.external_id.in_(missing))):
            st.users[external_id] = (account_id, user_id)


async def _grants(session: AsyncSession, st: _State, lines: list[tuple[int, GrantLine | PurchaseLine]]) -> None:
    rows: list[entitlements.PastGrant] = []
    bought: dict[tuple[str, str, str], tuple[int, str, int, str | None, datetime]] = {}
    for number, g in lines:
        starts = g.starts_at if isinstance(g, GrantLine) else g.at
        account = st.accounts.get(g.account)
        user = st.users.get(g.user) if g.user is not None else None
        problem = (f"Account {g.account!r} does not exist." if account is None else
                   f"User {g.user!r} does not exist in account {g.account!r}." if g.user is not None and (
                       user is None or user[0] != account[0]) else
                   f"Module {g.module!r} does not exist." if g.module not in st.view.modules else
                   "starts_at lies in the future: import only what happened." if starts > st.now else
                   "ends_at lies before the start." if g.ends_at is not None and g.ends_at < starts else None)
        if problem is not None or account is None:
            st.fail(number, problem or "")
            continue
        purchase = isinstance(g, PurchaseLine) or g.amount_minor > 0
        rows.append(entitlements.PastGrant(account[0], user[1] if user else None, g.module,
                                           "import" if purchase else "admin", f"import:{g.id}", starts, g.ends_at))
        if purchase and user is not None:
            bought[(account[0], f"import:{g.id}", g.module)] = (number, user[1], g.amount_minor,
                                                                 g.currency or account[1], starts)
    inserted = await entitlements.import_grants(session, rows, now=st.now)
    st.touched |= {a for a, _, _ in inserted}
    st.count("grant", len(rows))
    new = [(k, v) for k, v in bought.items() if k in inserted]
    if new:
        await session.execute(_INSERT_OUTCOMES, {
            "a": [k[0] for k, _ in new], "o": [new_id("sgo") for _ in new], "u": [v[1] for _, v in new],
            "m": [k[2] for k, _ in new], "r": [k[1] for k, _ in new], "n": [v[2] for _, v in new],
            "c": [v[3] for _, v in new], "t": [v[4] for _, v in new]})
    st.count("purchase", len(bought))


async def _events(session: AsyncSession, st: _State, lines: list[tuple[int, UsageLine | AttemptLine]]) -> None:
    events = entitlements.PastEvents(st.view)
    add, users, features, now = events.add, st.users, st.view.features, st.now
    valid = 0
    for number, ev in lines:
        user = users.get(ev.user)
        if user is None:
            st.fail(number, f"User {ev.user!r} does not exist.")
            continue
        if ev.feature not in features:
            st.fail(number, f"Feature {ev.feature!r} does not exist.")
            continue
        if ev.occurred_at > now:
            st.fail(number, "occurred_at lies in the future: import only what happened.")
            continue
        valid += 1
        if type(ev) is AttemptLine:
            add(user[0], user[1], "import:" + ev.id, ev.feature, "attempt", ev.quantity, ev.occurred_at,
                denied=ev.denied)
        else:
            add(user[0], user[1], "import:" + ev.id, ev.feature, "usage", ev.quantity, ev.occurred_at)
    st.touched |= await entitlements.import_events(session, events, now=now, sums=st.usage)
    st.count("event", valid)
