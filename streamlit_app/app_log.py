"""The app's log, where operators read what visitors are not shown.

Records go to stdout, one line each: on Fargate the task's awslogs driver
ships stdout to the app's CloudWatch log group, `/ecs/<stack>/app`. The app
logs under the `app` logger at INFO and up; other libraries keep the root
logger's default (WARNING and up).
Nothing here imports Streamlit.
"""

from __future__ import annotations

import logging
import sys

APP_LOGGER = "app"
_FORMAT = "%(asctime)s %(levelname)s %(name)s %(message)s"


class StdoutHandler(logging.StreamHandler):
    """A StreamHandler on whatever `sys.stdout` is when a record is written.

    Like the standard library's last-resort handler for stderr: a handler
    that kept the stream it was built with would write to a closed stream
    once that stream is replaced (as test runners do).
    """

    def __init__(self, level: int = logging.NOTSET):
        logging.Handler.__init__(self, level)

    @property
    def stream(self):  # type: ignore[override]
        return sys.stdout


def logger(name: str) -> logging.Logger:
    """The logger of one part of the app, e.g. `app.backends`."""
    return logging.getLogger(f"{APP_LOGGER}.{name}")


def configure() -> None:
    """Send log records to stdout. Safe to call on every script run: it installs one handler only."""
    root = logging.getLogger()
    if not any(isinstance(handler, StdoutHandler) for handler in root.handlers):
        handler = StdoutHandler()
        handler.setFormatter(logging.Formatter(_FORMAT))
        root.addHandler(handler)
    app = logging.getLogger(APP_LOGGER)
    if app.level == logging.NOTSET:
        app.setLevel(logging.INFO)
