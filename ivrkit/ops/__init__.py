"""Operating the live server: Prometheus metrics, the admin HTTP endpoint, structured logs, and callbacks as
operators see them (``callbacks.py``: shared by the admin API and ``ivrkit callbacks``).

Nothing here knows about AGI or flows; the server calls in with names and numbers.
"""
