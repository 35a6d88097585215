"""The one kind of error that is the user's to fix.

Every :class:`UserError` -- a config value that is not allowed (:class:`initlab.config.ConfigError`), a data
set that cannot be read (:class:`initlab.data.DataError`) -- is reported by the ``initlab`` command as one
line, ``initlab: error: <message>``, with exit status 2 and no traceback. The message names the bad value
and what is allowed.
"""

from __future__ import annotations


class UserError(ValueError):
    """Bad input: the message names the value and what is allowed, in one line."""
