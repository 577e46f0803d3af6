"""Reading the audit log: per account (vendor or that account's admins) and deployment-wide (vendor)."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from litestar import Controller, get

from app import audit
from app.accounts import resolve_account
from app.deps import CurrentPrincipal, DbSession
from app.params import AccountRef, CursorParam, Limit
from app.schemas import Output, decode_int_cursor, encode_cursor


class AuditEntryRead(Output, frozen=True):
    id: int
    occurred_at: datetime
    actor: str
    action: str
    target_type: str
    target_id: str
    before: dict[str, Any] | None
    after: dict[str, Any] | None
    request_id: str | None = None


class AuditPage(Output, frozen=True):
    data: list[AuditEntryRead]
    next_cursor: str | None


def _page(rows: list[audit.AuditEntry], limit: int) -> AuditPage:
    data = [AuditEntryRead(id=e.id, occurred_at=e.occurred_at, actor=e.actor, action=e.action,
                           target_type=e.target_type, target_id=e.target_id, before=e.before, after=e.after,
                           request_id=e.request_id)
            for e in rows]
    return AuditPage(data=data, next_cursor=encode_cursor(str(rows[-1].id)) if len(rows) == limit else None)


class AuditController(Controller):
    path = "/v1"
    tags = ["Audit log"]

    @get("/audit-log", opt={"scope": "audit:read", "owner": "vendor"}, summary="The whole audit log, newest first")
    async def list_all(self, db_session: DbSession, limit: Limit = 50, cursor: CursorParam = None) -> AuditPage:
        rows = await audit.list_entries(db_session, account_id=None, after_id=decode_int_cursor(cursor), limit=limit)
        return _page(rows, limit)

    @get("/accounts/{account:str}/audit-log",
         opt={"scope": "audit:read", "user_access": "admin", "owner": "account"},
         summary="One account's audit log, newest first")
    async def list_for_account(
        self, db_session: DbSession, principal: CurrentPrincipal, account: AccountRef, limit: Limit = 50,
        cursor: CursorParam = None,
    ) -> AuditPage:
        acc = await resolve_account(db_session, principal, account)
        rows = await audit.list_entries(db_session, account_id=acc.account_id, after_id=decode_int_cursor(cursor),
                                        limit=limit)
        return _page(rows, limit)
