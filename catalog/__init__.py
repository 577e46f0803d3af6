"""Modules, features, prices, availability policies, catalog as code, suggestions."""
