"""What the benchmarks measure about processes besides rates: the servers' and the load process's
CPU (children of the benchmark), the CPU of each thread of the benchmark's own process, and the
garbage collector's pauses.
"""

from __future__ import annotations

import gc
import os
import platform
import threading
import time
from collections import defaultdict
from pathlib import Path


_TICK = os.sysconf("SC_CLK_TCK")


def _read_stat(stat: Path) -> tuple[str, int, float] | None:
    """A process's or thread's `stat` file: its name, its parent's PID and the CPU seconds (user +
    system) it used so far; None if it ended meanwhile."""
    try:
        text = stat.read_text()
    except OSError:
        return None
    # the name is in parentheses (and may hold any character); after it: state, ppid, ..., utime, stime
    rest = text[text.rindex(")") + 2:].split()
    return text[text.index("(") + 1:text.rindex(")")], int(rest[1]), (int(rest[11]) + int(rest[12])) / _TICK


def children_cpu() -> dict[int, tuple[str, float]]:
    """Per child process of this one (the servers, and the load process while it runs): its name
    and the CPU seconds (user + system) it used so far."""
    out: dict[int, tuple[str, float]] = {}
    for stat in Path("/proc").glob("[0-9]*/stat"):
        read = _read_stat(stat)
        if read is not None and read[1] == os.getpid():
            out[int(stat.parent.name)] = (read[0], read[2])
    return out


def server_cpu() -> dict[str, float]:
    """`children_cpu` summed by process name."""
    out: dict[str, float] = {}
    for name, used in children_cpu().values():
        out[name] = out.get(name, 0.0) + used
    return out


class CpuSampler:
    """The children's CPU (`children_cpu`) once a second in a thread, while the block runs."""

    def __init__(self) -> None:
        self.samples: list[tuple[float, dict[int, tuple[str, float]]]] = []
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def __enter__(self) -> CpuSampler:
        self.samples.append((time.monotonic(), children_cpu()))
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join()
        self.samples.append((time.monotonic(), children_cpu()))

    def _run(self) -> None:
        while not self._stop.wait(1.0):
            self.samples.append((time.monotonic(), children_cpu()))

    def cores(self, process: str | int, first: int, last: int) -> float:
        """Cores used by `process` (the processes of that name, or the one of that PID) between
        samples `first` and `last` (indices, may be negative), over the seconds it was alive in."""
        window = self.samples[first:last % len(self.samples) + 1]
        used = seconds = 0.0
        for (t0, a), (t1, b) in zip(window, window[1:]):
            alive = [pid for pid, (name, _) in b.items() if process in (name, pid) and pid in a]
            if alive:
                used, seconds = used + sum(b[pid][1] - a[pid][1] for pid in alive), seconds + t1 - t0
        return used / seconds if seconds else 0.0


class GcTimes:
    """Pauses of the cyclic garbage collector while the block runs: per generation, how many, their
    total and longest time, and the unreachable objects they found."""

    def __init__(self) -> None:
        self.per_generation: dict[int, list[float]] = defaultdict(lambda: [0, 0.0, 0.0, 0])
        self._started = 0.0

    def __enter__(self) -> GcTimes:
        gc.callbacks.append(self._callback)
        return self

    def __exit__(self, *exc: object) -> None:
        gc.callbacks.remove(self._callback)

    def _callback(self, phase: str, info: dict[str, int]) -> None:
        if phase == "start":
            self._started = time.perf_counter()
            return
        took = time.perf_counter() - self._started
        entry = self.per_generation[info["generation"]]
        entry[0] += 1
        entry[1] += took
        entry[2] = max(entry[2], took)
        entry[3] += info["collected"]

    def summary(self) -> str:
        return ", ".join(f"generation {g}: {int(n)} collections, {total:.2f} s, longest {longest * 1e3:.1f} ms, "
                         f"{int(found):,} unreachable objects freed"
                         for g, (n, total, longest, found) in sorted(self.per_generation.items())) or "none"


def thread_cpu() -> dict[str, float]:
    """CPU seconds (user + system) used so far by this process's threads, summed by thread name
    (`threading` names; an unnamed native thread by its id). Threads that have ended are not in it
    (e.g. a finished `gbt-refit` fit): compare the sum with the process's CPU."""
    names = {t.native_id: t.name for t in threading.enumerate()}
    out: dict[str, float] = {}
    for stat in Path(f"/proc/{os.getpid()}/task").glob("*/stat"):
        read = _read_stat(stat)
        if read is not None:
            tid = int(stat.parent.name)
            name = names.get(tid, f"native {tid}")
            out[name] = out.get(name, 0.0) + read[2]
    return out


def machine_description() -> str:
    """The machine a benchmark runs on, in one line: system, CPU model, cores this process may use,
    memory, Python, and the load average when it is called."""
    model = ""
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                model = f" ({line.split(':', 1)[1].strip()})"
                break
        kib = next(int(line.split()[1]) for line in Path("/proc/meminfo").read_text().splitlines()
                   if line.startswith("MemTotal:"))
        memory = f", {kib / 2 ** 20:.1f} GiB of memory"
    except (OSError, StopIteration, ValueError):
        memory = ""
    cores = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count()
    load = " / ".join(f"{x:.2f}" for x in os.getloadavg())
    return (f"{platform.system()} {platform.release()} {platform.machine()}, {cores} cores{model}{memory}, "
            f"Python {platform.python_version()}; load average {load} (1, 5, 15 min) at the start")


def python_loop_seconds() -> float:
    """Seconds that ``s = 0; for i in range(10_000_000): s += i`` takes at module level (global
    names, as ``python3 -c`` runs it): how fast this machine runs Python right now. 0.7-0.8 s on the
    quiet days of 2026-12-05 when every speed target was met; 1.7-2.7 s on the slowed days when none
    was. Read a run's rates by it."""
    code = compile("s = 0\nfor i in range(10_000_000):\n    s += i\n", "<python speed>", "exec")
    began = time.perf_counter()
    exec(code, {})  # noqa: S102 - a fixed loop, timed
    return time.perf_counter() - began
