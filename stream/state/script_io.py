"""Script calls written to a connection at once and read later: the caller works while the server
runs the script (on a single server; a cluster routes each call itself, so it is made in one go).

`ScriptCalls` sends the calls of one script and reads their replies when asked (the feature
scripts of `redis_entities`, whose reply is read in parts); `call_script_meanwhile` runs a
registered script with work done meanwhile; `packed_commands` packs commands with hiredis's packer.

Work done meanwhile (`base.Meanwhile`) is given `ready()`, which tells whether the reply has begun
to come.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

from redis.cluster import RedisCluster
from redis.commands.core import Script
from redis.exceptions import NoScriptError, RedisError

from fraudstream.stream.state.base import Meanwhile

Calls = list[tuple[list[str], list[Any]]]  # (keys, args) per call of a script

try:
    from hiredis import pack_command
except ImportError:  # redis-py without its hiredis extra
    pack_command = None


def packed_commands(conn: Any, commands: list[tuple[Any, ...]]) -> list[bytes]:
    """`conn.pack_commands(commands)`, by hiredis's packer when the connection encodes text as UTF-8
    strictly (redis-py's default): a customer script call's ~3,000 keys take ~0.2 ms instead of
    ~1.6 (redis-py encodes argument by argument in Python). Arguments: str, bytes and int.

    >>> import redis
    >>> conn = redis.Redis().connection_pool.make_connection()  # not connected
    >>> command = ("EVALSHA", "ab12", 2, "{c}:é", "{c}:geo", b"\\x00\\xff", 86400000, -1)
    >>> b"".join(conn.pack_commands([command, command])) == b"".join(packed_commands(conn, [command, command]))
    True
    """
    encoder = conn.encoder
    if pack_command is None or encoder.encoding.lower() not in ("utf-8", "utf8") or encoder.encoding_errors != "strict":
        return conn.pack_commands(commands)
    return [b"".join(map(pack_command, commands))]


class ScriptCalls:
    """Calls of one script (`sha`), written to one connection of `client` now and their replies read
    by `replies`.

    The connection stays out of the pool until then; `discard` gives it back unread (closed).
    Without a connection of its own (a cluster client, or no calls) `replies` makes the calls with
    `run`, which also makes again, loading the script, the calls a server refused for not having it
    (it restarted).
    """

    def __init__(self, client: Any, sha: str, calls: Calls, run: Callable[[Calls], list[Any]]) -> None:
        self.client, self.calls, self.run = client, calls, run
        self._replies: list[Any] | None = None
        self._conn: Any = None
        if isinstance(client, RedisCluster) or not calls:
            return
        pool = client.connection_pool
        conn = pool.get_connection()
        try:
            conn.send_packed_command(packed_commands(conn, [("EVALSHA", sha, len(keys), *keys, *args)
                                                            for keys, args in calls]))
        except BaseException:
            conn.disconnect()
            pool.release(conn)
            raise
        self._conn = conn

    def ready(self) -> bool:
        """Whether the replies have begun to come (or are there: without a connection of its own, the
        calls are made by `replies`); a connection that failed counts as ready, for `replies` to raise."""
        conn = self._conn
        if conn is None:
            return True
        try:
            return bool(conn.can_read(timeout=0))
        except (RedisError, OSError, ValueError):
            return True

    def replies(self) -> list[Any]:
        """The replies in call order (read once)."""
        if self._replies is not None:
            return self._replies
        conn, self._conn = self._conn, None
        if conn is None:
            self._replies = self.run(self.calls) if self.calls else []
            return self._replies
        replies: list[Any] = []
        missing: list[int] = []
        pool = self.client.connection_pool
        try:
            for i in range(len(self.calls)):
                try:
                    replies.append(conn.read_response())
                except NoScriptError:
                    missing.append(i)
                    replies.append(None)
        except BaseException:
            conn.disconnect()
            raise
        finally:
            pool.release(conn)
        if missing:
            again = self.run([self.calls[i] for i in missing])
            for i, reply in zip(missing, again):
                replies[i] = reply
        self._replies = replies
        return replies

    def discard(self) -> None:
        """Give the connection back without reading (closed: its replies must not reach another caller)."""
        conn, self._conn = self._conn, None
        if conn is not None:
            conn.disconnect()
            self.client.connection_pool.release(conn)


def call_script_meanwhile(script: Script, keys: Sequence[str], args: Sequence[Any], meanwhile: Meanwhile) -> Any:
    """`script(keys=keys, args=args)` with `meanwhile(ready)` run while the server works on it (see
    `ScriptCalls`: on a cluster, or when the server does not have the script, `meanwhile` runs
    first and the call is made after it). If `meanwhile` raises, the connection is closed unread."""
    calls = ScriptCalls(script.registered_client, script.sha, [(list(keys), list(args))],
                        lambda again: [script(keys=k, args=a) for k, a in again])
    return replies_meanwhile(calls, meanwhile)[0]


def replies_meanwhile(calls: ScriptCalls, meanwhile: Meanwhile | None) -> list[Any]:
    """`calls.replies()`, with `meanwhile(calls.ready)` run first; if it raises, the connection is
    closed unread."""
    if meanwhile is not None:
        try:
            meanwhile(calls.ready)
        except BaseException:
            calls.discard()
            raise
    return calls.replies()
