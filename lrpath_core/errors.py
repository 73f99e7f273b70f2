"""The one base class of the errors a user can fix.

Every error that means "your input, data, store or configuration is wrong; here is what to do"
derives from :class:`LrpathError`. The ``lrpath`` command prints such an error as one line and
exits with code 2; any other exception is a bug and keeps its traceback.
"""

from __future__ import annotations


class LrpathError(Exception):
    """A problem the user can fix; the message names the thing and what to do."""
