"""``commerce citus-ddl``: every tenant table distributed by account_id, the catalog (and the directory of
accounts and users) as reference tables, the rest left on the coordinator, in an order Citus accepts."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from app.citus import LOCAL_TABLES
from app.cli import main


def test_citus_ddl_covers_every_table_once(database_url: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
                                           capsys: pytest.CaptureFixture[str]) -> None:
    monkeypatch.setenv("DATABASE_URL", database_url)
    monkeypatch.setenv("COMMERCE_DATA_DIR", str(tmp_path))
    assert main(["citus-ddl"]) == 0
    ddl = capsys.readouterr().out
    distributed = re.findall(r"create_distributed_table\('([a-z_]+)', 'account_id'", ddl)
    reference = re.findall(r"create_reference_table\('([a-z_]+)'\)", ddl)
    assert {"ent_usage_events", "ent_usage_event_keys", "orders", "budgets", "ent_grants"} <= set(distributed)
    assert {"catalog_modules", "catalog_prices", "accounts", "users"} <= set(reference)
    assert len(distributed) == len(set(distributed)) and not set(distributed) & set(reference)
    assert not (set(distributed) | set(reference)) & LOCAL_TABLES
    assert "outbox_events" in ddl and "create_distributed_table('outbox_events'" not in ddl
    assert not any(re.match(r"ent_usage_events_(y\d|default)", t) for t in distributed)  # partitions follow
    first = distributed[0]
    assert all(f"'{t}', 'account_id', colocate_with => '{first}')" in ddl for t in distributed[1:])
    assert ddl.index("create_reference_table('users')") < ddl.index("create_distributed_table(")
