"""Per-key and per-user rate limits shared by every process through PostgreSQL.

``domain`` holds the pure arithmetic, ``store`` the one SQL statement, ``limiter`` the guard and buckets.
"""
