"""URLs with passwords in them (Redis's): shown masked, and refused when the password would be misread."""

from __future__ import annotations

from urllib.parse import unquote_plus, urlsplit

__all__ = ["mask_url", "unreadable_user_part"]


def mask_url(url: str | None) -> str | None:
    """Hide the passwords of a URL: the user part's, and query parameters such as ``?password=``
    (which redis-py accepts too; also with the key percent-encoded). The user part is what comes
    before the last ``@`` of the authority (up to the first ``/``), so that a password whose ``#``
    or ``?`` was not encoded (which `Settings` refuses) is hidden whole, not read as a port and a
    query; an ``@`` in a query value is not a user part's.

    >>> mask_url("redis://user:secret@host:6379/0")
    'redis://user:***@host:6379/0'
    >>> mask_url("redis://host:6379/0?password=secret&db=1")
    'redis://host:6379/0?password=***&db=1'
    >>> mask_url("redis://host:6379")
    'redis://host:6379'
    >>> mask_url("redis://:1234#hunter2@127.0.0.1:6379/0"), mask_url("redis://:pw@[::1]:6379/0")
    ('redis://:***@127.0.0.1:6379/0', 'redis://:***@[::1]:6379/0')
    >>> mask_url("unix:///tmp/x.sock?pass%77ord=secret"), mask_url("redis://h:6379/0?client_name=a@b")
    ('unix:///tmp/x.sock?pass%77ord=***', 'redis://h:6379/0?client_name=a@b')
    >>> mask_url("redis://:hunter2@cache:6379/0?client_name=fs@node1"), mask_url("redis://host:6379?password=p@ss")
    ('redis://:***@cache:6379/0?client_name=fs@node1', 'redis://host:6379?password=***')
    """
    if not url:
        return url
    scheme, sep, rest = url.partition("://")
    if sep:
        authority, slash, path = rest.partition("/")
        user_part, at, host = authority.rpartition("@")
        query_first = "=" in user_part.partition("?")[2]  # `host?key=a@b`: the @ is a query value's
        if at and ":" in user_part and not query_first:
            rest = f"{user_part.split(':', 1)[0]}:***@{host}{slash}{path}"
    base, question, query = (scheme + sep + rest).partition("?")
    if question:
        query = "&".join(_mask_parameter(item) for item in query.split("&"))
    return base + question + query


def _mask_parameter(item: str) -> str:
    key, equals, _ = item.partition("=")
    return f"{key}=***" if equals and "password" in unquote_plus(key).lower() else item


def unreadable_user_part(url: str) -> bool:
    """Whether a password's unencoded ``#``, ``?`` or ``/`` makes the URL read otherwise than meant:
    the rest of the password as a fragment, a query item without ``=`` or a path, with an ``@`` in
    it (redis-py would connect to the digits before it as the port). An ``@`` in a query value is fine.

    >>> [unreadable_user_part(u) for u in ("redis://:1234#pw@h:6379/0", "redis://:1234?pw@h:6379/0",
    ...                                    "redis://:12/pw@h:6379/0")]
    [True, True, True]
    >>> [unreadable_user_part(u) for u in ("redis://:pw@h:6379/0?client_name=a@b", "redis://h:6379/0?password=p@ss",
    ...                                    "unix:///tmp/r.sock?password=p@ss&db=2", "redis://localhost:6379/0")]
    [False, False, False, False]
    """
    parts = urlsplit(url)
    items = parts.query.split("&") if parts.query else []
    return bool(parts.fragment) or "@" in parts.path or any("@" in item.partition("=")[0] for item in items)
