"""The error of publishing and of reading published revisions.

It lives apart from :mod:`lrpath_core.publish` so that the modules publishing builds on
(:mod:`~lrpath_core.model_index`, :mod:`~lrpath_core.published`, :mod:`~lrpath_core.secret_scan`)
can raise it without importing the publish step itself.
"""

from __future__ import annotations

from lrpath_core.errors import LrpathError


class PublishError(LrpathError):
    """A version cannot be published as asked, or a published revision is missing or corrupt.

    Not a :class:`StoreError`: retrying cannot fix it. Transient trouble (a failed copy, a
    concurrent publish) raises ``StoreError`` / ``StaleStateError`` instead.
    """
