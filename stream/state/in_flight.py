"""`InFlight`: Redis commands written now, their replies read later, so that the client works
while the server does (redis-py's pipeline writes and reads in one call).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import redis


class InFlight:
    """Commands written to a connection of the client's pool whose replies are read later (redis-py's
    pipeline writes and reads in one call). Replies are raw (no redis-py response callbacks). The
    connection is held until `replies` or `abandon`."""

    def __init__(self, client: redis.Redis, commands: list[tuple[Any, ...]]) -> None:
        self.pool = client.connection_pool
        self.connection = self.pool.get_connection()
        self.count = len(commands)
        try:
            self.connection.send_packed_command(self.connection.pack_commands(commands))
        except BaseException:
            self.abandon()
            raise

    def replies(self) -> list[Any]:
        """Every reply, in order; the first error reply is raised once all are read (the connection
        stays in step); a connection error drops the connection."""
        replies: list[Any] = []
        try:
            for _ in range(self.count):
                try:
                    replies.append(self.connection.read_response())
                except redis.exceptions.ResponseError as exc:
                    replies.append(exc)
        except BaseException:
            self.abandon()
            raise
        self.pool.release(self.connection)
        for reply in replies:
            if isinstance(reply, redis.exceptions.ResponseError):
                raise reply
        return replies

    def abandon(self) -> None:
        """Drop the connection with its unread replies (the commands may have run)."""
        self.connection.disconnect()
        self.pool.release(self.connection)


def overlapped(client: redis.Redis, commands: list[tuple[Any, ...]], meanwhile: Callable[[], None]) -> list[Any]:
    """Write `commands`, call `meanwhile()` while the server works on them, then read their replies."""
    in_flight = InFlight(client, commands)
    try:
        meanwhile()
    except BaseException:
        in_flight.abandon()
        raise
    return in_flight.replies()
