"""The API reference UI (Swagger UI) served from this app's own files, so /schema works offline."""

from web.apidocs.routes import apidocs_router, swagger_plugin

__all__ = ["apidocs_router", "swagger_plugin"]
