"""Test support: the embedded database, factories and helpers shared by the suite."""
