"""The root of CoucheStor's own exceptions.

Every error a user can cause (bad flags, a bad kubeconfig, an unreachable server) derives from
:class:`UserError`; the CLI prints its message on one line and exits with status 2, never a traceback.
"""


class CoucheStorError(Exception):
    """Base class of every exception CoucheStor raises on purpose."""


class UserError(CoucheStorError):
    """Bad input or environment that the user can fix; the message says what and how."""
