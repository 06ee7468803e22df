"""SIGTERM/SIGHUP as an exception, and cleanup that signals cannot cut short.

One job: make "undo on every exit path" hold for kill(1) as well as for exceptions and Ctrl-C.

- :func:`terminate_raises`: while active, SIGTERM and SIGHUP raise :class:`Terminated` (a
  KeyboardInterrupt, so ``except Exception`` does not swallow it and the CLI reports
  "interrupted"). Nests; restores the previous handlers on exit.
- :func:`signals_deferred`: blocks SIGINT/SIGTERM/SIGHUP while a cleanup or a must-not-be-split
  step runs (attaching a loop device and learning its name); a signal that arrived meanwhile is
  delivered, and raises, as soon as the block ends.

Only the main thread can install handlers; elsewhere both are no-ops (and say so in the log).
SIGKILL cannot be caught: callers must make its leftovers harmless (see ImageTarget).
"""

from __future__ import annotations

import logging
import signal
import threading
from collections.abc import Iterator
from contextlib import contextmanager

log = logging.getLogger("atvdisk.interrupt")

CAUGHT = (signal.SIGTERM, signal.SIGHUP)
DEFERRED = {signal.SIGINT, signal.SIGTERM, signal.SIGHUP}


class Terminated(KeyboardInterrupt):
    """The process received SIGTERM or SIGHUP while a guarded section was running."""

    def __init__(self, signum: int) -> None:
        super().__init__(f"terminated by {signal.Signals(signum).name}")
        self.signum = signum


def _raise_terminated(signum: int, frame: object) -> None:
    raise Terminated(signum)


def _in_main_thread() -> bool:
    return threading.current_thread() is threading.main_thread()


@contextmanager
def terminate_raises() -> Iterator[None]:
    """While active, SIGTERM/SIGHUP raise :class:`Terminated` in the main thread."""
    if not _in_main_thread():
        log.debug(
            "not in the main thread: SIGTERM is not turned into an exception here"
        )
        yield
        return
    previous = {s: signal.getsignal(s) for s in CAUGHT}
    for s in CAUGHT:
        signal.signal(s, _raise_terminated)
    try:
        yield
    finally:
        for s, handler in previous.items():
            signal.signal(s, handler if handler is not None else signal.SIG_DFL)


@contextmanager
def signals_deferred() -> Iterator[None]:
    """Hold SIGINT/SIGTERM/SIGHUP until the block ends (then they are delivered as usual)."""
    if not _in_main_thread():
        yield
        return
    old = signal.pthread_sigmask(signal.SIG_BLOCK, DEFERRED)
    try:
        yield
    finally:
        signal.pthread_sigmask(signal.SIG_SETMASK, old)
