"""FRAUDSTREAM_* environment variables that no setting reads.

pydantic-settings ignores them, so a misspelt one (``FRAUDSTREAM_ALERT_TRESHOLD=0.9``) left its
setting at the default without a word; the CLI warns of them, naming the closest setting's variable.
"""

from __future__ import annotations

import difflib
from collections.abc import Iterable, Mapping

from fraudstream.constants import ENV_PREFIX

# read by something other than the settings object (the benchmarks' data directory)
OTHER_VARIABLES = frozenset({f"{ENV_PREFIX}BENCHMARK_DATA"})


def unknown_variables(environ: Mapping[str, str], fields: Iterable[str]) -> list[str]:
    """One warning per FRAUDSTREAM_* variable of `environ` that is neither a settings field of
    `fields` nor in `OTHER_VARIABLES`, with the closest known variable when one is close.

    >>> unknown_variables({"FRAUDSTREAM_ALERT_TRESHOLD": "0.9", "FRAUDSTREAM_SEED": "1", "HOME": "/"},
    ...                   ["alert_threshold", "seed"])
    ['FRAUDSTREAM_ALERT_TRESHOLD is not a fraudstream setting and is ignored (did you mean FRAUDSTREAM_ALERT_THRESHOLD?)']
    >>> unknown_variables({"FRAUDSTREAM_WHATEVER": "x"}, ["seed"])
    ['FRAUDSTREAM_WHATEVER is not a fraudstream setting and is ignored (see `fraudstream config`)']
    >>> unknown_variables({"FRAUDSTREAM_BENCHMARK_DATA": "/d", "fraudstream_seed": "1"}, ["seed"])
    []
    """
    known = {ENV_PREFIX + name.upper() for name in fields}
    messages = []
    for name in sorted(environ):
        # env var names are case-insensitive to pydantic-settings (fraudstream_seed sets the seed)
        if not name.upper().startswith(ENV_PREFIX) or name.upper() in known or name.upper() in OTHER_VARIABLES:
            continue
        close = difflib.get_close_matches(name.upper(), sorted(known), n=1, cutoff=0.8)
        hint = f"did you mean {close[0]}?" if close else "see `fraudstream config`"
        messages.append(f"{name} is not a fraudstream setting and is ignored ({hint})")
    return messages
