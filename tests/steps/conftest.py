"""Fixtures for step tests."""

from tests.calls import call

__all__ = ["call"]
