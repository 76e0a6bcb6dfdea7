"""QA tooling: flow tests in YAML, their runner, coverage, and the pytest plugin."""
