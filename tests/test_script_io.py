"""A script call written at once and read after work done meanwhile (`stream.state.script_io`), on
the real server."""

from __future__ import annotations

import time
import uuid
from collections.abc import Callable

import pytest
import redis

from fraudstream.config import Settings
from fraudstream.stream.state.script_io import call_script_meanwhile

pytestmark = pytest.mark.services

SCRIPT = "redis.call('INCR', KEYS[1]); return {redis.call('GET', KEYS[1]), ARGV[1]}"


class Boom(Exception):
    pass


def test_the_work_runs_while_the_server_has_the_call(settings: Settings) -> None:
    client = redis.Redis.from_url(settings.redis_url)
    script = client.register_script(SCRIPT)
    client.script_load(SCRIPT)  # else the first call is refused (NOSCRIPT) and made after the work
    key = f"test:{uuid.uuid4().hex}"
    seen: list[bytes | None] = []
    # meanwhile: another connection already sees the script's effect (the call was written first)
    reply = call_script_meanwhile(script, [key], [b"x"],
                                  lambda ready: seen.append(redis.Redis.from_url(settings.redis_url).get(key)))
    assert reply == [b"1", b"x"]
    assert seen == [b"1"]


def test_work_that_fails_leaves_no_reply_for_the_next_caller(settings: Settings) -> None:
    client = redis.Redis.from_url(settings.redis_url)
    script = client.register_script(SCRIPT)
    client.script_load(SCRIPT)  # else the call is refused (NOSCRIPT) and made only after the work
    key = f"test:{uuid.uuid4().hex}"

    def fail(ready: object) -> None:
        raise Boom

    with pytest.raises(Boom):
        call_script_meanwhile(script, [key], [b"first"], fail)
    assert client.get(key) == b"1"  # the call had been made
    assert client.ping() is True  # the next caller reads its own reply (closed unread; redis-py checks too)
    assert call_script_meanwhile(script, [key], [b"second"], lambda ready: None) == [b"2", b"second"]


def test_a_server_without_the_script_gets_it_and_the_work_runs_once(settings: Settings) -> None:
    client = redis.Redis.from_url(settings.redis_url)
    script = client.register_script(SCRIPT)
    key = f"test:{uuid.uuid4().hex}"
    client.script_flush()  # as after a restart
    runs: list[int] = []
    assert call_script_meanwhile(script, [key], [b"y"], lambda ready: runs.append(1)) == [b"1", b"y"]
    assert runs == [1]
    assert client.get(key) == b"1"  # run once: the refused call changed nothing


SLOW_SCRIPT = """
local start = redis.call('TIME')
repeat
  local now = redis.call('TIME')
until (now[1] - start[1]) * 1000000 + (now[2] - start[2]) >= tonumber(ARGV[1])
return redis.call('INCR', KEYS[1])
"""


def test_ready_tells_when_the_reply_has_come_and_leaves_it_to_be_read(settings: Settings) -> None:
    """`ready` is False while the server still works on the call (a script that takes 200 ms), turns
    True once it has answered, and reading it does not consume the reply."""
    client = redis.Redis.from_url(settings.redis_url)
    script = client.register_script(SLOW_SCRIPT)
    client.script_load(SLOW_SCRIPT)
    key = f"test:{uuid.uuid4().hex}"
    looks: list[bool] = []

    def watch(ready: Callable[[], bool]) -> None:
        looks.append(ready())
        deadline = time.monotonic() + 10
        while not ready() and time.monotonic() < deadline:
            time.sleep(0.005)
        looks.append(ready())
        looks.append(ready())

    assert call_script_meanwhile(script, [key], [200_000], watch) == 1
    assert looks == [False, True, True]
    assert client.ping() is True
