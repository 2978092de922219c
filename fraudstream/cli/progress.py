"""The progress bars of the long commands (record, replay, features, backtest): where they draw,
and whether they (and the demo's dashboard) draw at all.

A command's result is its one summary line on stdout (one JSON object), which scripts read; the
bar goes to stderr with the logs. With ``--log-format json`` there is no bar at all: the readers of
those logs take stderr one JSON object per line, and a bar's last frame (rich prints one when stderr
is not a terminal) is not one.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from fraudstream.config import Settings

if TYPE_CHECKING:
    from rich.progress import Progress


def drawn(settings: Settings, asked: bool = True) -> bool:
    """Whether a live display (a progress bar, the demo's dashboard) is drawn: when `asked`, and the
    logs are text.

    >>> drawn(Settings()), drawn(Settings(), asked=False), drawn(Settings(log_format="json"))
    (True, False, False)
    """
    return asked and settings.log_format != "json"


def progress_bar(settings: Settings, *columns: Any, shown: bool = True) -> Progress:
    """A rich `Progress` of `columns` on stderr, disabled unless `shown` and `drawn`.

    >>> progress_bar(Settings(log_format="json")).disable, progress_bar(Settings(), shown=False).disable
    (True, True)
    >>> bar = progress_bar(Settings())
    >>> bar.disable, bar.console.stderr
    (False, True)
    """
    from rich.console import Console
    from rich.progress import Progress

    return Progress(*columns, console=Console(stderr=True), transient=False, disable=not drawn(settings, shown))
