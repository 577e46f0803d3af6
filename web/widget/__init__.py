"""The embeddable widget: one dependency-free ES module with custom elements, served versioned by the app."""

from web.widget.routes import widget_router

__all__ = ["widget_router"]
