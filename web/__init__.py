"""Browser-facing adapters on top of the API: the embeddable widget and the demo host page.

Nothing imports ``web`` except the app's wiring (app/asgi.py, app/cli.py, app/demo.py); ``web`` may import the
kernel and the public service functions of the domain packages.
"""
