"""Routes of the app package itself: health, API keys, audit log."""
