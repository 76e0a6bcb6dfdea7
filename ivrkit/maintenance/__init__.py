"""Maintenance mode: an operator (or the schedule, or the circuit breaker) puts one flow or the whole service
into planned maintenance, an emergency, or closed-until-a-time; callers hear the flow's announcement for that
mode and every change is recorded.

- ``model.py``: the modes, their precedence, a window, an audit entry, and which window a call meets
  (:func:`~ivrkit.maintenance.model.in_force`).

The store side is ``ivrkit/store/maintenance.py``; the operator commands are ``ivrkit maintenance`` and
``/v1/maintenance`` on the admin API.
"""

from ivrkit.maintenance.model import (
    GLOBAL,
    PRECEDENCE,
    AuditEntry,
    Maintenance,
    Mode,
    Source,
    Window,
    in_force,
)

__all__ = ["GLOBAL", "PRECEDENCE", "AuditEntry", "Maintenance", "Mode", "Source", "Window", "in_force"]
