"""The OpenAPI document is a usable contract: a client generated from it by a standard generator
(openapi-python-client, offline, from the document the running service serves) buys a module and checks it."""

from __future__ import annotations

import importlib
import subprocess
import sys
import uuid
from collections.abc import Iterator
from pathlib import Path
from types import ModuleType
from typing import Any

import httpx
import pytest

from tests.sdk.conftest import Service

PACKAGE = "generated_commerce_client"
# the generator (0.29.1) writes `!= 1and` in one model when its formatter hook is off: Python warns, runs it right
pytestmark = pytest.mark.filterwarnings("ignore:invalid decimal literal:SyntaxWarning")


@pytest.fixture(scope="module")
def generated(service: Service, tmp_path_factory: pytest.TempPathFactory) -> Iterator[ModuleType]:
    """Generate the client from the served document into a temporary folder and import it."""
    where = tmp_path_factory.mktemp("generated")
    document = where / "openapi.json"
    document.write_bytes(httpx.get(f"{service.base_url}/schema/openapi.json", timeout=30).content)
    config = where / "config.yaml"
    config.write_text(f"post_hooks: []\nproject_name_override: {PACKAGE}\npackage_name_override: {PACKAGE}\n")
    done = subprocess.run(
        [str(Path(sys.executable).with_name("openapi-python-client")), "generate", "--path", str(document),
         "--config", str(config), "--meta", "none", "--output-path", str(where / PACKAGE)],
        capture_output=True, text=True, timeout=300, check=False)
    assert done.returncode == 0, done.stdout + done.stderr
    # the one thing it leaves out: the guardrail export's TOML answer (the generator reads JSON answers only)
    warnings = [line for line in (done.stdout + done.stderr).splitlines() if line.startswith("WARNING")]
    assert warnings == ["WARNING parsing GET /v1/accounts/{account}/guardrails/export within guardrails."], done.stdout
    sys.path.insert(0, str(where))
    try:
        yield importlib.import_module(PACKAGE)
    finally:
        sys.path.remove(str(where))
        for name in [n for n in sys.modules if n == PACKAGE or n.startswith(PACKAGE + ".")]:
            del sys.modules[name]


def api(name: str) -> Any:
    """A module of the generated package (its models, or one operation: ``api.<tag>.<operation id>``)."""
    return importlib.import_module(f"{PACKAGE}.{name}")


def test_a_generated_client_buys_a_module_and_the_check_turns_allowed(generated: ModuleType, service: Service) -> None:
    models = api("models")
    vendor = generated.AuthenticatedClient(base_url=service.base_url, token=service.key)
    account, user = f"gen-{uuid.uuid4().hex[:8]}", "gen-ana"
    api("api.accounts_and_users.v1_accounts_upsert_account").sync(
        client=vendor, body=models.AccountUpsert(external_id=account, name="Generated Corp", currency="USD"))
    api("api.accounts_and_users.v1_accounts_users_upsert_user").sync(
        account, client=vendor, body=models.UserUpsert(external_id=user, roles=["analyst"]))
    budget = api("api.budgets.v1_accounts_budgets_create_budget").sync(
        account, client=vendor, body=models.BudgetCreate(name="Main", currency="USD", amount_minor=100_000))
    assert isinstance(budget, models.BudgetRead) and budget.amount_minor == 100_000
    token = api("api.session_tokens.v1_session_tokens_create_session_token").sync(
        client=vendor, body=models.SessionTokenCreate(account=account, user=user))
    assert isinstance(token, models.SessionTokenRead)
    as_user = generated.AuthenticatedClient(base_url=service.base_url, token=token.token)

    check = api("api.entitlements.v1_entitlements_check_check")
    before = check.sync(client=as_user, user=user, feature="reports")
    assert isinstance(before, models.CheckRead) and before.allowed is False
    quote = api("api.quotes_and_orders.v1_quotes_create").sync(
        client=as_user, body=models.QuoteCreate(user=user, items=[models.QuoteItemIn(module="reports_basic")]))
    assert isinstance(quote, models.QuoteRead) and quote.decision.route == "budget"
    create_order = api("api.quotes_and_orders.v1_orders_create")
    key = f"gen-{uuid.uuid4()}"
    order = create_order.sync(client=as_user, body=models.OrderCreate(quote_id=quote.id), idempotency_key=key)
    assert isinstance(order, models.OrderRead) and order.state == "fulfilled"
    again = create_order.sync_detailed(client=as_user, body=models.OrderCreate(quote_id=quote.id),
                                       idempotency_key=key)
    assert again.status_code == 201 and again.parsed.id == order.id  # the same key: the first answer, once
    after = check.sync(client=as_user, user=user, feature="reports")
    assert isinstance(after, models.CheckRead) and after.allowed is True


def test_a_generated_client_reads_problems_as_typed_models(generated: ModuleType, service: Service) -> None:
    models = api("models")
    vendor = generated.AuthenticatedClient(base_url=service.base_url, token=service.key)
    get_account = api("api.accounts_and_users.v1_accounts_get_account")
    missing = get_account.sync_detailed("no-such-account", client=vendor)
    assert missing.status_code == 404 and isinstance(missing.parsed, models.Problem)
    assert missing.parsed.code == "not_found" and missing.parsed.type_ == "/problems/not_found"
    stranger = generated.AuthenticatedClient(base_url=service.base_url, token="sk_" + "0" * 40)
    refused = get_account.sync_detailed("no-such-account", client=stranger)
    assert refused.status_code == 401 and isinstance(refused.parsed, models.Problem)
