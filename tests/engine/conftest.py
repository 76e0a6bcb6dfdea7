"""Fixtures for engine tests."""

from tests.calls import call

__all__ = ["call"]
