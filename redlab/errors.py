"""Errors that reach a user: one sentence saying what is wrong and how to fix it."""


class RedlabError(Exception):
    """A problem the user can fix; ``str()`` is the whole message."""


class PreflightError(RedlabError):
    """The machine is not ready (not root, OVS not running, a binary missing...)."""


class ConfigError(RedlabError):
    """A topology, service or daemon configuration is invalid."""


class DaemonError(RedlabError):
    """A daemon failed its dry run, did not start, or died."""


class WaitTimeout(RedlabError, AssertionError):
    """A condition did not become true before its deadline.

    Also an ``AssertionError`` so that pytest shows it as a failed expectation.
    """
