"""Tests of the suggestion engine (suggest/): delete this folder with the package."""
