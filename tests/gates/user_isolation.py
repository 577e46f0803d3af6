"""User isolation gate: inside ONE account, an end user reaches none of another user's objects.

Every route is called as end user X (a plain session token, neither admin nor approver) with the path,
query and body naming user Y's objects in the same account (Y's order, quote, approval, subscription,
card, suggestion, grant ...), filled through ``isolation.PARAM_VALUES`` like the account gate:
  * vendor-only routes (no ``user_access``) and customer-admin routes (``user_access="admin"``): 403;
  * ``user`` and ``account`` routes open to end users: 403 or 404, never a 2xx;
  * ``self`` and ``catalog`` routes: any non-5xx answer (they act on X itself or on the vendor's catalog);
and no answer may carry Y's data beyond what X itself sent.

A second pass calls the routes open to end users that name one of Y's objects again, this time with X naming
itself as the user (``?user=``, ``"user"`` in the body): a route that checks the named user is the caller but
not that the object belongs to that user answers a 2xx there, where 403 or 404 is expected.
"""

from __future__ import annotations

import dataclasses
import json
from dataclasses import dataclass
from typing import Any

from litestar import Litestar

from tests.gates.isolation import _PARAM, BODIES, Call, World, _send, plan_calls

X = "A's other end user"
OPEN_TO_X = {200, 201, 204, 400, 403, 404, 409, 422}
# Parameters that name one of Y's (or Y's account's) objects, as opposed to the user, the account or the catalog.
Y_OBJECTS = {"quote_id", "order_id", "approval_id", "subscription_id", "payment_method_id", "suggestion_id",
             "grant_id", "budget_id"}


@dataclass
class PeerWorld:
    """Account A of the isolation world (its user Y owns the objects), with end user X of the same account."""

    world: World
    x_user: str  # X's external id
    x_token: str
    y_secrets: list[str]  # strings of Y's data that must never reach X


def expected_for_x(opt: dict[str, Any]) -> set[int]:
    """The statuses X may get from a route, by the route's declarations."""
    owner, access = opt["owner"], opt.get("user_access")
    if access is None or access == "admin":
        return {403}
    if owner in ("self", "catalog"):
        return OPEN_TO_X
    return {403, 404}


def _leaks(text: str, peers: PeerWorld, call: Call) -> list[str]:
    sent = call.url + json.dumps(call.body)
    return [s for s in peers.y_secrets if s and s in text and s not in sent]


def names_y_object(call: Call) -> bool:
    """Whether the route's path or example body names one of Y's objects."""
    template = call.path + json.dumps(BODIES.get((call.method, call.path)))
    return bool(set(_PARAM.findall(template)) & Y_OBJECTS)


async def check_user_isolation(client: Any, app: Litestar, peers: PeerWorld,
                               required_query: dict[tuple[str, str], list[str]]) -> list[str]:
    """Call every route as X against Y's objects (then naming X itself); list every violation."""
    calls, problems = plan_calls(app, peers.world, required_query)
    for call in calls:
        if call.opt["owner"] == "public":
            continue
        problems += await _check(client, call, peers, expected_for_x(call.opt), who=X)
    as_itself = dataclasses.replace(peers.world, a_user=peers.x_user)
    for call in plan_calls(app, as_itself, required_query)[0]:
        if call.opt.get("user_access") == "self" and call.opt["owner"] != "self" and names_y_object(call):
            problems += await _check(client, call, peers, {403, 404}, who=f"{X} naming itself")
    return problems


async def _check(client: Any, call: Call, peers: PeerWorld, allowed: set[int], *, who: str) -> list[str]:
    where, problems = f"{call.method} {call.path}", []
    r = await _send(client, call, peers.x_token)
    if r.status_code not in allowed:
        problems.append(f"{where}: {who} got {r.status_code}, expected one of {sorted(allowed)}")
    if leaked := _leaks(r.text, peers, call):
        problems.append(f"{where}: {who} received user Y's data {leaked}")
    return problems
