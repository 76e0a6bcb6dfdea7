"""Fixtures for sim tests."""

from tests.calls import call

__all__ = ["call"]
