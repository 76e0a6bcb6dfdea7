"""A real Asterisk 22 for end-to-end tests: a private Debian sid root, instances started in it, a call driver.

:mod:`ivrkit.qa.asterisk.sandbox` builds the root (``debootstrap``) and runs Asterisk in it with a generated
minimal configuration; :mod:`ivrkit.qa.asterisk.calls` places test calls over AMI and presses keys when the
IVR asks for them. Nothing here is imported by the pytest plugin, so these modules cost nothing unless used.
"""
