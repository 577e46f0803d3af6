"""The customer admin console (/admin/) and the vendor console (/console/): pages over the public API."""

from web.consoles.routes import consoles_router

__all__ = ["consoles_router"]
