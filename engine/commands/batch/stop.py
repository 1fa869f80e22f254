"""Ctrl-C and SIGTERM during a batch: the handler only sets a flag, the dispatch loop stops at its
next turn (``check_stop``)."""

import signal
import threading
from types import FrameType

# Ctrl-C and SIGTERM only set this; the dispatch loop stops the batch at its next turn. An exception
# raised by the handler itself lands wherever the main thread happens to be, often inside Ray's own
# code: once, under load, such a Ctrl-C was lost and the batch ran on to the end.
STOP = threading.Event()
POLL_S = 0.25  # the dispatch loop's turn: how soon a stop request or a finished clip is seen


def request_stop(signum: int, frame: FrameType | None) -> None:
    STOP.set()


def catch_stop_signals() -> dict:
    """Route SIGINT and SIGTERM to ``request_stop`` (from the main thread only, as Python requires).
    Returns the previous handlers."""
    if threading.current_thread() is not threading.main_thread():
        return {}
    return {sig: signal.signal(sig, request_stop) for sig in (signal.SIGINT, signal.SIGTERM)}


def check_stop() -> None:
    """Raise KeyboardInterrupt when a stop was requested."""
    if STOP.is_set():
        raise KeyboardInterrupt
