"""Faults and bad input (issue 6): kills, truncated files, non-finite losses, bad corpora, bad configs.

A package, so that its conftest and helpers do not shadow ``tests/conftest.py`` (``from conftest import ...``).
"""
