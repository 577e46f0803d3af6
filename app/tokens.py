"""User session tokens: short-lived signed tokens the vendor's backend mints for the widget and console.

Each token carries its user's token generation (claim ``gen``) at minting; ``app.sessions`` refuses a token
whose generation is no longer the user's, which is how tokens are revoked before they expire.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta

import jwt

from app.errors import Unauthorized

ISSUER = "commerce"
ALGORITHM = "HS256"


@dataclass(frozen=True)
class SessionClaims:
    account_id: str
    user_id: str
    roles: tuple[str, ...]
    expires_at: datetime
    generation: int = 0


def mint(
    *, secret: str, audience: str, account_id: str, user_id: str, roles: tuple[str, ...],
    now: datetime, ttl: timedelta, generation: int,
) -> tuple[str, datetime]:
    """Sign a token for (account, user, roles) at the user's token generation; returns it with its expiry."""
    expires_at = now + ttl
    claims = {
        "iss": ISSUER, "aud": audience, "sub": user_id, "acct": account_id, "roles": list(roles),
        "gen": generation, "iat": int(now.timestamp()), "exp": int(expires_at.timestamp()),
    }
    return jwt.encode(claims, secret, algorithm=ALGORITHM), expires_at


def verify(token: str, *, secret: str, audience: str, now: datetime) -> SessionClaims:
    """Check signature, issuer, audience and expiry against the injected clock."""
    try:
        claims = jwt.decode(
            token, secret, algorithms=[ALGORITHM], audience=audience, issuer=ISSUER,
            options={"require": ["exp", "iat", "sub", "aud", "iss"], "verify_exp": False, "verify_iat": False,
                     "verify_nbf": False},  # times are checked against the injected clock below
        )
    except jwt.InvalidAudienceError as exc:
        raise Unauthorized("The session token was issued for another audience.") from exc
    except jwt.PyJWTError as exc:
        raise Unauthorized("The session token is invalid.") from exc
    if int(claims["exp"]) <= int(now.timestamp()):
        raise Unauthorized("The session token has expired; ask the vendor's app for a new one.")
    roles = claims.get("roles", [])
    account_id = claims.get("acct")
    generation = claims.get("gen", 0)  # tokens minted before revocation existed are generation 0
    if not isinstance(roles, list) or not isinstance(account_id, str) or not all(
        isinstance(r, str) for r in roles
    ) or type(generation) is not int or generation < 0:
        raise Unauthorized("The session token is invalid.")
    return SessionClaims(
        account_id=account_id, user_id=str(claims["sub"]), roles=tuple(roles),
        expires_at=datetime.fromtimestamp(int(claims["exp"]), tz=now.tzinfo), generation=generation,
    )
