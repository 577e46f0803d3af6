"""Grants, seats, the check path and its cache, usage events and counters, trials."""
