"""Operating the live server: Prometheus metrics, the admin HTTP endpoint and structured logs.

Nothing here knows about AGI or flows; the server calls in with names and numbers.
"""
