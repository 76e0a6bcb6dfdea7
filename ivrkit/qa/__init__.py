"""QA tooling: flow tests in YAML, their runner, coverage, and the pytest plugin.

``*.test.yaml`` files are read by :mod:`ivrkit.qa.format`, run by :mod:`ivrkit.qa.runner` (``ivrkit test``)
or by the pytest plugin (:mod:`ivrkit.qa.pytest_plugin`), and measured by :mod:`ivrkit.qa.coverage`. This
package imports none of them: pytest loads the plugin in every session, so it must stay cheap to import.
"""

TEST_SUFFIXES = (".test.yaml", ".test.yml")
