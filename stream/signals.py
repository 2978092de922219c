"""SIGTERM/SIGHUP/SIGINT set a stop event: the loop finishes its current batch, commits and exits 0.

A finite job (a replay) stopped before its end exits with 128 + the signal's number instead (130 for
Ctrl-C), as the shell reports a process the signal ended: a script that chains the next step after
it (`fraudstream replay ... && ...`) does not take the stopped job for a finished one.
"""

from __future__ import annotations

import contextlib
import logging
import signal
import threading
from collections.abc import Iterator
from dataclasses import dataclass

log = logging.getLogger(__name__)


@dataclass
class Received:
    """The first stopping signal received within `stop_on_signals` (None: none).

    >>> Received().exit_code, Received(signal.SIGINT).exit_code, Received(signal.SIGTERM).exit_code
    (0, 130, 143)
    """

    signum: int | None = None

    @property
    def exit_code(self) -> int:
        """What a job the signal stopped before its end exits with: 128 + the signal's number."""
        return 0 if self.signum is None else 128 + self.signum


@contextlib.contextmanager
def stop_on_signals(stop: threading.Event) -> Iterator[Received]:
    """Within the block, SIGTERM, SIGHUP and the first SIGINT set `stop` (and are recorded in the
    `Received` yielded); a second SIGINT interrupts at once."""
    received = Received()

    def handler(signum: int, frame: object) -> None:
        if stop.is_set() and signum == signal.SIGINT:
            raise KeyboardInterrupt
        log.info("signal %d received: stopping after the work in hand (a second Ctrl-C: at once)", signum)
        if received.signum is None:
            received.signum = signum
        stop.set()

    previous = {sig: signal.signal(sig, handler) for sig in (signal.SIGTERM, signal.SIGHUP, signal.SIGINT)}
    try:
        yield received
    finally:
        for sig, old in previous.items():
            signal.signal(sig, old)
