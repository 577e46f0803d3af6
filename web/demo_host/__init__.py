"""The demo host page: a stand-in for a vendor's app on another origin, embedding the widget as docs/widget.md says."""

from web.demo_host.app import DemoHost, create_host_app, serve_host_page

__all__ = ["DemoHost", "create_host_app", "serve_host_page"]
