"""Tenant isolation and auth coverage gates: walk every route the app serves, from its own declarations.

Each route declares in ``opt["owner"]`` how its objects are owned:
  * ``public``  - no credentials (health, readiness, signature-authenticated webhooks); allow-listed below;
  * ``vendor``  - deployment-level objects, vendor API keys only;
  * ``catalog`` - the vendor's catalog, readable by every user (never carries account data);
  * ``account`` - objects of the account named by the ``account`` parameter;
  * ``user``    - objects of the user named by the ``user`` parameter;
  * ``self``    - acts on the caller's own identity (a session token), nothing else to name.
Path and query parameters are filled with account A's objects through PARAM_VALUES; a route with a
parameter the table does not know fails the gate with a message saying what to add.

Every route is called as B's admin, B's end user, a vendor key without the route's scope, and a vendor key
bound to account B holding every scope (404 on A's objects, 403 on deployment-level routes, never A's data).
Every mutation is called with a read-only key (403), and key minting is tried beyond the caller's scopes
and accounts (``check_key_minting``).
"""

from __future__ import annotations

import itertools
import json
import re
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from litestar import Litestar

from app.openapi import route_opts

OWNERS = {"public", "vendor", "catalog", "account", "user", "self"}

# The only routes that may be called without credentials.
PUBLIC_ALLOWLIST = {
    ("GET", "/healthz"), ("GET", "/readyz"), ("POST", "/v1/stripe/webhook"),
    # the widget's static files and its public configuration (nothing account-specific, nothing secret)
    ("GET", "/widget/v1/widget.js"), ("GET", "/widget/v1/manifest.json"), ("GET", "/widget/v1/config.json"),
    ("GET", "/widget/v1/{build}/{name}"),
    # the consoles: sign-in by a one-time link, static files, and page shells that authenticate by the console
    # cookie themselves (the same principal as the API's); every figure on them comes from the API, walked below
    ("GET", "/admin/sign-in"), ("POST", "/admin/sign-in"), ("GET", "/console/sign-in"), ("POST", "/console/sign-in"),
    ("POST", "/console-sign-out"), ("GET", "/console-signed-out"), ("GET", "/console-assets/{build}/{name}"),
    ("GET", "/admin"), ("GET", "/admin/{page}"), ("GET", "/console"), ("GET", "/console/{page}"),
}


@dataclass
class World:
    """Account A's objects (created by the gate) and the credentials the gate calls with."""

    a_account: str
    a_user: str
    a_admin: str
    b_admin_token: str
    b_user_token: str
    all_scopes_key: str
    key_without: Callable[[str], str]  # a vendor key holding every scope but the given one
    a_secrets: list[str]  # strings of A's data that must never reach B
    b_account: str = ""
    b_bound_key: str = ""  # a vendor key bound to account B, holding every scope
    read_only_key: str = ""  # a global vendor key holding every '*:read' scope and no other
    keys_write_key: str = ""  # a global vendor key holding only 'keys:write'
    revoke_target: str = ""  # a global key holding every scope, that minting checks try to revoke
    extra: dict[str, str] = field(default_factory=dict)  # ids of A's objects created per parameter
    b_admin_console: tuple[str, str] | None = None  # B's admin signed in to the admin console: (cookie, CSRF token)


# How to name A's object for each parameter name (path or required query parameter).
PARAM_VALUES: dict[str, Callable[[World], str]] = {
    "account": lambda w: w.a_account,
    "user": lambda w: w.a_user,
    "key_id": lambda w: w.extra["key_id"],
    "budget_id": lambda w: w.extra["budget_id"],
    "quote_id": lambda w: w.extra["quote_id"],
    "build": lambda w: "0" * 16,  # the widget's static files: public, no account's object
    "name": lambda w: "widget.mjs",
    "period": lambda w: "2026-11",  # vendor-level reports name a period, not an account's object
    "at": lambda w: "2026-01-05",  # a backtest's split date: vendor-level, names no account's object
    "order_id": lambda w: w.extra["order_id"],
    "approval_id": lambda w: w.extra["approval_id"],
    "subscription_id": lambda w: w.extra["subscription_id"],
    # webhook endpoints are vendor-level: any well-formed id will do
    "endpoint_id": lambda w: w.extra.get("endpoint_id", "whe_" + "0" * 26),
    "delivery_id": lambda w: w.extra.get("delivery_id", "whd_" + "0" * 26),
    # the catalog is vendor-level: any well-formed key names an object the gate may ask for
    "feature": lambda w: w.extra.get("feature", "reports"),
    "module": lambda w: w.extra.get("module", "reports_basic"),
    "policy": lambda w: w.extra.get("policy", "reporting-by-role"),
    "price_id": lambda w: w.extra.get("price_id", "price_" + "0" * 26),
    "revision": lambda w: w.extra.get("revision", "1"),
    "payment_method_id": lambda w: w.extra["payment_method_id"],  # a card saved for A's user (Stripe fake)
    # a suggestion shown to A's user when the gate has one, else a well-formed id (B gets 404 either way)
    "suggestion_id": lambda w: w.extra.get("suggestion_id", "sug_" + "0" * 26),
    "grant_id": lambda w: w.extra.get("grant_id", "grt_" + "0" * 26),
    "page": lambda w: "budgets",  # console pages: public shells (allow-listed); their data is the API's
}

MUTATIONS = ("POST", "PUT", "PATCH", "DELETE")

# Mutation methods that only read and so declare a read scope (each with its reason).
READING_MUTATIONS = {
    ("POST", "/v1/entitlements/check"): "a batch of checks in a body (records demand signals only)",
    ("POST", "/v1/accounts/{account}/guardrails/simulate"): "replays a draft policy, saves nothing",
}

# Example bodies for routes that take one; "{account}"/"{user}" name A's objects.
BODIES: dict[tuple[str, str], dict[str, Any]] = {
    ("POST", "/v1/accounts"): {"external_id": "{account}", "name": "Renamed by B"},
    ("POST", "/v1/accounts/{account}/users"): {"external_id": "{user}", "roles": ["admin"]},
    ("POST", "/v1/session-tokens"): {"account": "{account}", "user": "{user}"},
    ("POST", "/v1/console-links"): {"console": "admin", "account": "{account}", "user": "{user}"},
    ("POST", "/v1/api-keys"): {"name": "made-by-b", "scopes": ["accounts:read"]},
    ("POST", "/v1/accounts/{account}/budgets"): {"name": "B's", "currency": "USD", "amount_minor": 100,
                                                 "cost_center": "rnd"},
    ("PATCH", "/v1/accounts/{account}/budgets/{budget_id}"): {"amount_minor": 1},
    ("POST", "/v1/suggestions"): {"user": "{user}", "surface": "gate"},
    ("POST", "/v1/suggestions/{suggestion_id}/feedback"): {"user": "{user}", "action": "dismiss"},
    ("POST", "/v1/quotes"): {"user": "{user}", "items": [{"module": "comments"}]},
    ("POST", "/v1/billing/statements/close"): {"period": "2026-10"},
    ("POST", "/v1/accounts/{account}/guardrails/simulate"): {"policy": {}, "days": 30},
    ("POST", "/v1/orders"): {"quote_id": "{quote_id}"},
    ("POST", "/v1/orders/{order_id}/refund"): {"note": "by B"},
    ("POST", "/v1/orders/{order_id}/pay"): {},
    ("PATCH", "/v1/accounts/{account}/subscriptions/{subscription_id}"): {"cancel": True},
    ("POST", "/v1/orders/{order_id}/provisioned"): {"status": "done"},
    ("POST", "/v1/approvals/{approval_id}/approve"): {"note": "by B"},
    ("POST", "/v1/approvals/{approval_id}/deny"): {"note": "by B"},
    ("PUT", "/v1/accounts/{account}/guardrails"): {"auto_approve_limit_minor": 10**9},
    ("POST", "/v1/accounts/{account}/guardrails/import"): {"toml": "auto_approve_limit_minor = 1000000000"},
    ("POST", "/v1/accounts/{account}/grants"): {"module": "reports_basic", "source_ref": "gate-1", "user": "{user}"},
    ("POST", "/v1/accounts/{account}/grants/{grant_id}/revoke"): {"reason": "made by b"},
    ("POST", "/v1/accounts/{account}/grants/{grant_id}/seats"): {"user": "{user}"},
    ("POST", "/v1/entitlements/check"): {"user": "{user}", "checks": [{"feature": "reports"}]},
    ("POST", "/v1/usage"): {"events": [{"event_id": "gate-1", "user": "{user}", "feature": "reports"}]},
    ("POST", "/v1/trials"): {"user": "{user}", "module": "reports_basic"},
}

_idem = itertools.count()
_PARAM = re.compile(r"{(\w+)(?::\w+)?}")


def _fill(value: Any, world: World) -> Any:
    if isinstance(value, str):
        return _PARAM.sub(lambda m: PARAM_VALUES[m.group(1)](world) if m.group(1) in PARAM_VALUES else m.group(0),
                          value)
    if isinstance(value, dict):
        return {k: _fill(v, world) for k, v in value.items()}
    if isinstance(value, list):
        return [_fill(v, world) for v in value]
    return value


@dataclass
class Call:
    method: str
    path: str
    url: str
    body: dict[str, Any] | None
    opt: dict[str, Any]


def plan_calls(app: Litestar, world: World, required_query: dict[tuple[str, str], list[str]]) -> tuple[
        list[Call], list[str]]:
    """The request to make for every route, or the declaration each undeclared route is missing."""
    calls, problems = [], []
    for (path, method), opt in sorted(route_opts(app).items()):
        if path.startswith("/schema"):
            continue
        where = f"{method} {path}"
        owner = opt.get("owner")
        if owner not in OWNERS:
            problems.append(f"{where}: declare opt['owner'] as one of {sorted(OWNERS)} (see tests/gates/isolation.py)")
            continue
        url = path
        missing = False
        names = _PARAM.findall(path) + required_query.get((path, method), [])
        for name in names:
            if name not in PARAM_VALUES:
                problems.append(f"{where}: parameter {name!r} has no entry in PARAM_VALUES (tests/gates/isolation.py): "
                                "add how to name account A's object for it")
                missing = True
        if missing:
            continue
        for name in _PARAM.findall(path):
            url = url.replace("{" + name + "}", PARAM_VALUES[name](world))
        query = [f"{n}={PARAM_VALUES[n](world)}" for n in required_query.get((path, method), [])]
        if query:
            url += "?" + "&".join(query)
        body = _fill(BODIES.get((method, path)), world) if method in ("POST", "PUT", "PATCH") else None
        if method in ("POST", "PUT", "PATCH") and body is None:
            body = {}
        calls.append(Call(method=method, path=path, url=url, body=body, opt=opt))
    return calls, problems


CONSOLE = "console:"  # a token starting so is B's console session (cookie and CSRF token), not a bearer token


async def _send(client: Any, call: Call, token: str | None) -> Any:
    headers = {"Authorization": f"Bearer {token}"} if token else {}
    if token and token.startswith(CONSOLE):
        cookie, csrf = token.removeprefix(CONSOLE).split(" ", 1)
        headers = {"Cookie": f"commerce_console={cookie}", "X-CSRF-Token": csrf}
    headers["Idempotency-Key"] = f"gate-{next(_idem)}"  # money routes need one; the others ignore it
    return await client.request(call.method, call.url, json=call.body, headers=headers)


def _leaks(text: str, world: World, call: Call) -> list[str]:
    """A's data in the answer, beyond what the caller itself sent (an id echoed from the URL is no leak)."""
    sent = call.url + json.dumps(call.body)
    return [s for s in world.a_secrets if s and s in text and s not in sent]


async def check_isolation(client: Any, app: Litestar, world: World,
                          required_query: dict[tuple[str, str], list[str]]) -> list[str]:
    """Call every route as B's admin, B's end user and a key without the route's scope; list every violation."""
    calls, problems = plan_calls(app, world, required_query)
    for call in calls:
        where = f"{call.method} {call.path}"
        owner, access, scope = call.opt["owner"], call.opt.get("user_access"), call.opt.get("scope")
        if owner == "public":
            continue
        console = [("B's admin", f"{CONSOLE}{' '.join(world.b_admin_console)}")] if world.b_admin_console else []
        for who, token in (("B's admin", world.b_admin_token), ("B's end user", world.b_user_token), *console):
            r = await _send(client, call, token)
            if access is None:
                allowed = {403}
            elif owner in ("catalog", "self"):
                allowed = {200, 201, 204, 400, 403, 404, 409, 422}
            elif access == "admin" and who == "B's end user":
                allowed = {403, 404}
            else:
                allowed = {404}
            if r.status_code not in allowed:
                how = " (console session)" if token.startswith(CONSOLE) else ""
                problems.append(f"{where}: {who}{how} got {r.status_code}, expected one of {sorted(allowed)}")
            if leaked := _leaks(r.text, world, call):
                problems.append(f"{where}: {who} received account A's data {leaked}")
        if scope:
            r = await _send(client, call, world.key_without(scope))
            if r.status_code != 403:
                problems.append(f"{where}: a key without {scope!r} got {r.status_code}, expected 403")
        problems += await _bound_key_walk(client, call, world)
        problems += await _read_only_walk(client, call, world)
    return problems + await _console_pages(client, world)


async def _console_pages(client: Any, world: World) -> list[str]:
    """B's admin in the console opens neither A's admin pages nor any vendor page."""
    if not world.b_admin_console:
        return []
    headers = {"Cookie": f"commerce_console={world.b_admin_console[0]}"}
    problems = []
    for url in (f"/admin/budgets?account={world.a_account}", "/console/catalog", "/console/accounts"):
        r = await client.get(url, headers=headers)
        if r.status_code != 403 or _leaks(r.text, world, Call("GET", url, url, None, {})):
            problems.append(f"GET {url}: B's admin (console session) got {r.status_code}, expected 403")
    return problems


def _bound_allowed(opt: dict[str, Any]) -> set[int]:
    """What a key bound to B may answer: 404 for A's objects, 403 for deployment-level routes."""
    owner = opt["owner"]
    if owner in ("account", "user"):
        return {404}
    if owner == "catalog":
        return {200, 404}  # vendor data every user sees; a well-formed key of the gate may not exist
    if owner in ("vendor", "self") and opt.get("bound_keys"):
        return {200, 201, 403, 404}  # narrowed to B's accounts by the handler: the leak check decides
    return {403}


async def _bound_key_walk(client: Any, call: Call, world: World) -> list[str]:
    if not world.b_bound_key:
        return []
    where = f"{call.method} {call.path}"
    r = await _send(client, call, world.b_bound_key)
    problems = []
    if r.status_code not in (allowed := _bound_allowed(call.opt)):
        problems.append(f"{where}: B's bound key got {r.status_code}, expected one of {sorted(allowed)}")
    if leaked := _leaks(r.text, world, call):
        problems.append(f"{where}: B's bound key received account A's data {leaked}")
    return problems


async def _read_only_walk(client: Any, call: Call, world: World) -> list[str]:
    """A mutation declares a write scope (or is a known read by POST), and a read-only key gets 403."""
    scope = call.opt.get("scope")
    if call.method not in MUTATIONS or not scope or not world.read_only_key:
        return []
    where = f"{call.method} {call.path}"
    if (call.method, call.path) in READING_MUTATIONS:
        return []
    problems = []
    if scope.endswith(":read"):
        problems.append(f"{where}: a mutation guarded by the read scope {scope!r}; declare a write scope "
                        "(or list it in READING_MUTATIONS with the reason it changes nothing)")
    r = await _send(client, call, world.read_only_key)
    if r.status_code != 403:
        problems.append(f"{where}: a read-only key got {r.status_code}, expected 403")
    return problems


async def check_key_minting(client: Any, world: World) -> list[str]:
    """No key hands out more than it holds: scopes beyond its own, accounts beyond its binding."""
    problems: list[str] = []

    async def expect(who: str, token: str, method: str, url: str, body: Any, status: int) -> Any:
        r = await client.request(method, url, json=body, headers={"Authorization": f"Bearer {token}"})
        if r.status_code != status:
            problems.append(f"{method} {url} {json.dumps(body)} as {who}: got {r.status_code}, expected {status}")
        return r

    minter, bound, target_id = world.keys_write_key, world.b_bound_key, world.revoke_target[3:].split(".")[0]
    for wanted in (["all"], ["*"], ["accounts:read"], ["keys:write", "commerce:write"]):
        await expect("a keys:write-only key", minter, "POST", "/v1/api-keys", {"name": "up", "scopes": wanted}, 403)
    await expect("a keys:write-only key", minter, "POST", f"/v1/api-keys/{target_id}/revoke", None, 403)
    a, b = world.a_account, world.b_account
    for accounts in ([a], [b, a]):
        await expect("B's bound key", bound, "POST", "/v1/api-keys", {"name": "x", "scopes": ["accounts:read"],
                                                                      "accounts": accounts}, 404)
    await expect("B's bound key", bound, "POST", "/v1/api-keys", {"name": "g", "scopes": ["accounts:read"]}, 403)
    for key_id in (target_id, world.extra["key_id"]):
        await expect("B's bound key", bound, "POST", f"/v1/api-keys/{key_id}/revoke", None, 404)
    # the positive space: within its own scopes and accounts a key does mint (the gate is not passed by refusing all)
    r = await expect("a keys:write-only key", minter, "POST", "/v1/api-keys",
                     {"name": "same", "scopes": ["keys:write"]},
                     201)
    if r.status_code == 201:
        await expect("a keys:write-only key", minter, "POST", f"/v1/api-keys/{r.json()['id']}/revoke", None, 200)
    r = await expect("B's bound key", bound, "POST", "/v1/api-keys", {"name": "b2", "scopes": ["all"], "accounts": [b]},
                     201)
    if r.status_code == 201 and r.json().get("accounts") != [b]:
        problems.append(f"a key minted by B's bound key reads as bound to {r.json().get('accounts')}, not [{b!r}]")
    await expect("the revoke target", world.revoke_target, "GET", "/v1/accounts", None, 200)
    listing = await expect("the all-scopes key", world.all_scopes_key, "GET", "/v1/api-keys", None, 200)
    if made := {k["name"] for k in listing.json()} & {"up", "x", "g"}:
        problems.append(f"refused minting still created keys {sorted(made)}")
    return problems


async def check_auth_coverage(client: Any, app: Litestar) -> list[str]:
    """Every route needs credentials except the short allow-list; and really answers 401 without them."""
    problems = []
    for (path, method), opt in sorted(route_opts(app).items()):
        if path.startswith("/schema"):
            continue
        where = f"{method} {path}"
        if opt.get("public"):
            if (method, path) not in PUBLIC_ALLOWLIST:
                problems.append(f"{where}: is public but not in PUBLIC_ALLOWLIST; require a scope instead")
            continue
        if not opt.get("scope") and not opt.get("user_access"):
            problems.append(f"{where}: declares neither a vendor 'scope' nor 'user_access'")
        url = re.sub(r"{\w+(?::\w+)?}", "1", path)  # "1" routes for str and int parameters alike
        r = await client.request(method, url, json={} if method in ("POST", "PUT", "PATCH") else None)
        if r.status_code != 401:
            problems.append(f"{where}: answered {r.status_code} without credentials, expected 401")
    return problems


def required_query_params(spec: dict[str, Any]) -> dict[tuple[str, str], list[str]]:
    out: dict[tuple[str, str], list[str]] = {}
    for path, item in spec["paths"].items():
        for method, op in item.items():
            if not isinstance(op, dict):
                continue
            names = [p["name"] for p in op.get("parameters", []) if p.get("in") == "query" and p.get("required")]
            if names:
                out[(path, method.upper())] = names
    return out
