"""The progress bars of the long commands (record, replay, features, backtest): where they draw.

A command's result is its one summary line on stdout (``replayed {...}``), which scripts read; the
bar goes to stderr with the logs. With ``--log-format json`` there is no bar at all: the readers of
those logs take stderr one JSON object per line, and a bar's last frame (rich prints one when stderr
is not a terminal) is not one.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from fraudstream.config import Settings

if TYPE_CHECKING:
    from rich.progress import Progress


def progress_bar(settings: Settings, *columns: Any, shown: bool = True) -> Progress:
    """A rich `Progress` of `columns` on stderr, disabled unless `shown` and the logs are text.

    >>> progress_bar(Settings(log_format="json")).disable, progress_bar(Settings(), shown=False).disable
    (True, True)
    >>> bar = progress_bar(Settings())
    >>> bar.disable, bar.console.stderr
    (False, True)
    """
    from rich.console import Console
    from rich.progress import Progress

    return Progress(*columns, console=Console(stderr=True), transient=False,
                    disable=not shown or settings.log_format == "json")
