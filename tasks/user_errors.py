"""A user error ends a run as Failed with its message, without a traceback in the logs.

Prefect logs every exception that ends a task or flow run with its traceback. For an
:class:`~lrpath_core.errors.LrpathError` (a held data drop, a bad config, an unknown version,
a store that stays unreachable) the message already says what is wrong and what to do: the
traceback would only make it look like a crash. This filter drops the traceback from those
records on Prefect's run loggers; the run still ends Failed and carries the message, and any
other exception (a bug) keeps its traceback.
"""

from __future__ import annotations

import logging

from lrpath_core.errors import LrpathError

RUN_LOGGERS = ("prefect.task_runs", "prefect.flow_runs", "prefect.task_engine", "prefect.flow_engine")


class UserErrorsWithoutTraceback(logging.Filter):
    def filter(self, record: logging.LogRecord) -> bool:
        if record.exc_info and isinstance(record.exc_info[1], LrpathError):
            record.exc_info = None
            record.exc_text = None
        return True


def install() -> None:
    """Add the filter to Prefect's run loggers (once)."""
    for name in RUN_LOGGERS:
        logger = logging.getLogger(name)
        if not any(isinstance(f, UserErrorsWithoutTraceback) for f in logger.filters):
            logger.addFilter(UserErrorsWithoutTraceback())
