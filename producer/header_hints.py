"""What is wrong with a recorded file's first line when it is neither of our headers: the mistakes
files exported from other systems make (another separator, names in another case, a JSON array),
named as such rather than as columns that are missing.

>>> csv_header_mistake(["TRANSACTION_ID;TX_DATETIME;CUSTOMER_ID"], "TRANSACTION_ID;TX_DATETIME;CUSTOMER_ID\\n",
...                    ("TRANSACTION_ID", "TX_DATETIME"))
"the header is one field holding ';': fields must be separated by commas (save the file as comma-separated)"
>>> csv_header_mistake(["transaction_id", "tx_amount", "other"], "", ("TRANSACTION_ID", "TX_AMOUNT"))
"column names are case-sensitive: 'transaction_id' should be TRANSACTION_ID, 'tx_amount' should be TX_AMOUNT"
>>> csv_header_mistake(["a", "b"], "a,b\\n", ("A_B",)) is None
True
>>> repeated_column(["TX_AMOUNT", "x", "TX_AMOUNT"], ("TX_AMOUNT",))
'column TX_AMOUNT appears twice (fields 1 and 3): which one is meant?'
"""

from __future__ import annotations

from collections.abc import Sequence

#: Separators of CSV dialects other than ours, which make the whole header one field.
OTHER_SEPARATORS = (";", "\t", "|")


def case_slips(names: Sequence[str], known: Sequence[str]) -> list[str]:
    """``'name' should be KNOWN`` for each of `names` that is one of `known` in another case."""
    folded = {name.casefold(): name for name in known}
    return [f"{name!r} should be {folded[name.casefold()]}" for name in names
            if name not in known and name.casefold() in folded]


def csv_header_mistake(header: list[str], first: str, known: Sequence[str]) -> str | None:
    """The mistake in a CSV `header` (its fields; `first`: the line) of a file meant to have the
    columns `known`, if it is one of those above; None otherwise."""
    if first.lstrip().startswith("["):
        return "a JSON array: write JSON lines instead (one JSON object per line)"
    if len(header) == 1:
        for separator in OTHER_SEPARATORS:
            if separator in header[0]:
                return (f"the header is one field holding {separator!r}: fields must be separated by commas "
                        "(save the file as comma-separated)")
    if "" in header:
        return (f"field {header.index('') + 1} of the header has no name (a trailing comma? an index written by "
                "pandas' to_csv without index=False?)")
    slips = case_slips(header, known)
    if slips:
        return f"column names are case-sensitive: {', '.join(slips)}"
    return None


def repeated_column(header: list[str], used: Sequence[str]) -> str | None:
    """The first of the names `used` that `header` has more than once: the reader would take the
    first and drop the other without a word."""
    for name in used:
        fields = [number for number, column in enumerate(header, start=1) if column == name]
        if len(fields) > 1:
            return f"column {name} appears {'twice' if len(fields) == 2 else f'{len(fields)} times'} " \
                   f"(fields {', '.join(map(str, fields[:-1]))} and {fields[-1]}): which one is meant?"
    return None
