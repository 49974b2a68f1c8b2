"""Helpers shared by the benchmarks: sizes, payloads, the reference-peer harness, /proc sampling.

Why /proc and not ``wait4``/``getrusage(RUSAGE_CHILDREN)``: the processes we compare are stopped
by the harness (SIGTERM/SIGKILL of a process group), and a killed child's rusage is either lost or
includes its shutdown. Sampling ``/proc/PID/stat`` and ``/proc/PID/status`` while the process runs
measures exactly the window we care about and works the same for any process, ours or a reference
client. Linux only, like the benchmarks themselves.
"""

from __future__ import annotations

import argparse
import importlib.util
import math
import os
import statistics
import sys
import threading
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from types import ModuleType

ROOT = Path(__file__).resolve().parent.parent
MIB = 1024 * 1024
_SUFFIXES = {"": 1, "K": 1024, "M": MIB, "G": 1024 * MIB}
_CLK_TCK = os.sysconf("SC_CLK_TCK")


def parse_size(text: str) -> int:
    """``1G``, ``512M``, ``64K``, ``1GiB`` or plain bytes (an argparse ``type``)."""
    t = text.strip().upper().removesuffix("IB").removesuffix("B")
    suffix = t[-1:] if t[-1:] in _SUFFIXES else ""
    try:
        value = int(t[: len(t) - len(suffix)]) * _SUFFIXES[suffix]
    except ValueError:
        raise argparse.ArgumentTypeError(f"not a size: {text!r}") from None
    if value <= 0:
        raise argparse.ArgumentTypeError(f"size must be positive: {text!r}")
    return value


def load_refpeers() -> ModuleType:
    """Import ``tests/interop/refpeers.py`` by path: benchmarks must not import the tests package.

    The module is registered in ``sys.modules`` first because its dataclasses look their module
    up there while being created.
    """
    if "refpeers" in sys.modules:
        return sys.modules["refpeers"]
    spec = importlib.util.spec_from_file_location("refpeers", ROOT / "tests/interop/refpeers.py")
    if spec is None or spec.loader is None:
        raise ImportError("cannot load tests/interop/refpeers.py")
    module = importlib.util.module_from_spec(spec)
    sys.modules["refpeers"] = module
    spec.loader.exec_module(module)
    return module


def write_random_file(path: Path, size: int) -> None:
    """Write ``size`` random bytes unless a file of exactly that size is already there.

    Random data because compressible data would flatter nothing here but costs the same to
    generate; reuse because writing a GiB takes seconds that no measurement needs.
    """
    if path.exists() and path.stat().st_size == size:
        return
    path.parent.mkdir(parents=True, exist_ok=True)
    with path.open("wb") as fh:
        left = size
        while left:
            n = min(8 * MIB, left)
            fh.write(os.urandom(n))
            left -= n


def warm_page_cache(root: Path) -> None:
    """Read every file under ``root`` once so no timed run pays for the disk."""
    files = [root] if root.is_file() else [p for p in root.rglob("*") if p.is_file()]
    buf = bytearray(8 * MIB)
    for f in files:
        with f.open("rb", buffering=0) as fh:
            while fh.readinto(buf):
                pass


#: seconds between deleting one run's download and starting the next leecher: see settle()
SETTLE_S = 3.0
_PAGE_REPORTING = Path("/sys/module/page_reporting/parameters")


def settle(seconds: float = SETTLE_S) -> None:
    """Wait after deleting a run's download so the next leecher writes into the same memory.

    A leecher writing a fresh GiB allocates a GiB of page cache. On a VM whose balloon driver
    reports free pages to the host (``virtio_balloon`` free page reporting), memory freed a
    moment ago (the previous run's deleted download) is still backed by the host and cheap to
    fill, while reported memory faults into the host on first touch: on our 2-core VMs filling
    a GiB of page cache took 0.18 s of system time when warm and 1.4-1.9 s when reported, which
    alone moves a leecher between ~550 and ~300 MiB/s. The reporting thread gets to freed pages
    within about a second, so without this pause a leecher ran on warm or cold memory depending
    on how soon after the delete it started writing. After the pause both start from the same
    state. On hardware without free page reporting the pause changes nothing.
    """
    time.sleep(seconds)


def page_reporting_state() -> str:
    """One line about free page reporting on this machine (see :func:`settle`)."""
    if not _PAGE_REPORTING.is_dir():
        return "free page reporting: not present"
    values = []
    for param in sorted(_PAGE_REPORTING.iterdir()):
        try:
            values.append(f"{param.name}={param.read_text().strip()}")
        except OSError:
            continue
    return "free page reporting: " + " ".join(values)


# --------------------------------------------------------------------------------------------
# /proc sampling
# --------------------------------------------------------------------------------------------


def cpu_seconds(pid: int) -> float:
    """utime + stime of every thread of ``pid`` so far (``/proc/PID/stat`` fields 14 and 15)."""
    return sum(cpu_split(pid))


def cpu_split(pid: int) -> tuple[float, float]:
    """(utime, stime) of every thread of ``pid`` so far, in seconds.

    stime is the kernel's share: on loopback it includes the TCP work of the *other* end that
    the kernel runs in this process's syscalls, so it tells user-space cost from the stack's.
    """
    fields = _stat_fields(pid)
    return int(fields[11]) / _CLK_TCK, int(fields[12]) / _CLK_TCK


def minor_faults(pid: int) -> int:
    """Minor page faults of ``pid`` so far: fresh anonymous memory costs one per page touched."""
    return int(_stat_fields(pid)[7])


def _stat_fields(pid: int) -> list[str]:
    """``/proc/PID/stat`` from field 3 on (index 0 is the state)."""
    raw = Path(f"/proc/{pid}/stat").read_text()
    # the command name (field 2) may contain spaces and parentheses: split after the last ')'
    return raw[raw.rindex(")") + 2 :].split()


def memory_kib(pid: int) -> tuple[int, int]:
    """(VmHWM, RssAnon) of ``pid`` in KiB from ``/proc/PID/status``.

    VmHWM is the kernel's own peak of the resident set; RssAnon is the current heap-like part
    (page-cache-backed file mappings excluded), whose peak we track by sampling.
    """
    hwm = anon = 0
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            hwm = int(line.split()[1])
        elif line.startswith("RssAnon:"):
            anon = int(line.split()[1])
    return hwm, anon


@dataclass
class ProcStats:
    """What a :class:`ProcSampler` saw of one process."""

    cpu_start: float = 0.0
    cpu_last: float = 0.0
    sys_start: float = 0.0
    sys_last: float = 0.0
    vm_hwm_kib: int = 0
    rss_anon_peak_kib: int = 0
    faults_start: int = 0
    faults_last: int = 0
    samples: int = 0

    @property
    def cpu(self) -> float:
        """CPU seconds between :meth:`ProcSampler.mark_start` and the last sample."""
        return self.cpu_last - self.cpu_start

    @property
    def sys_cpu(self) -> float:
        """The kernel's share (stime) of :attr:`cpu`."""
        return self.sys_last - self.sys_start

    @property
    def minor_faults(self) -> int:
        """Minor page faults between :meth:`ProcSampler.mark_start` and the last sample."""
        return self.faults_last - self.faults_start


class ProcSampler:
    """Samples one process's CPU time and memory every ``interval`` seconds on a thread.

    ``mark_start()`` when the measured work begins, ``sample()`` once more right before the
    process is told to exit, then ``stop()``. A process that vanished mid-way keeps the last
    values read.
    """

    def __init__(self, pid: int, interval: float = 0.1) -> None:
        self.pid = pid
        self.interval = interval
        self.stats = ProcStats()
        self._lock = threading.Lock()
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True, name=f"sampler-{pid}")

    def start(self) -> ProcSampler:
        self.sample()
        self.stats.cpu_start = self.stats.cpu_last
        self.stats.sys_start = self.stats.sys_last
        self.stats.faults_start = self.stats.faults_last
        self._thread.start()
        return self

    def mark_start(self) -> None:
        self.sample()
        with self._lock:
            self.stats.cpu_start = self.stats.cpu_last
            self.stats.sys_start = self.stats.sys_last
            self.stats.faults_start = self.stats.faults_last

    def sample(self) -> None:
        try:
            user, system = cpu_split(self.pid)
            faults = minor_faults(self.pid)
            hwm, anon = memory_kib(self.pid)
        except (FileNotFoundError, ProcessLookupError, ValueError, IndexError):
            return
        with self._lock:
            s = self.stats
            s.cpu_last = user + system
            s.sys_last = system
            s.faults_last = faults
            s.vm_hwm_kib = max(s.vm_hwm_kib, hwm)
            s.rss_anon_peak_kib = max(s.rss_anon_peak_kib, anon)
            s.samples += 1

    def stop(self) -> ProcStats:
        self._stop.set()
        if self._thread.is_alive():
            self._thread.join(2.0)
        return self.stats

    def _run(self) -> None:
        while not self._stop.wait(self.interval):
            self.sample()


# --------------------------------------------------------------------------------------------
# Results
# --------------------------------------------------------------------------------------------


def add_run_arguments(p: argparse.ArgumentParser) -> None:
    """``--runs`` and ``--warmup``, the same for every transfer benchmark."""
    p.add_argument("--runs", type=int, default=3)
    p.add_argument(
        "--warmup",
        type=int,
        default=1,
        help="uncounted rounds first (the first transfer after a seeder starts is slower)",
    )


def run_label(run: int) -> str:
    """``run N`` for counted runs (0-based ``run``), ``warm-up`` for the negative ones."""
    return f"run {run + 1}" if run >= 0 else "warm-up"


def median(values: Sequence[float]) -> float:
    """The median of the values that are numbers (a metric a run could not measure is NaN)."""
    known = [v for v in values if not math.isnan(v)]
    return statistics.median(known) if known else float("nan")


def ratio_table(
    metrics: Sequence[tuple[str, Callable[[float], str]]],
    results: dict[str, dict[str, list[float]]],
    numerator: str | Sequence[str],
    denominator: str,
) -> str:
    """A text table: one row per metric, one column per contender's median, then the ratios.

    ``results[contender][metric]`` is the list of per-run values; ``metrics`` gives each metric's
    name and how to format one value. For each numerator two ratios are shown: of the medians,
    and the median of the per-run ratios (each run's contenders ran back to back under the same
    background load, so on a busy machine the second is the steadier one).
    """
    nums = [numerator] if isinstance(numerator, str) else list(numerator)
    names = list(results)
    header = ["metric", *[f"{n} (median)" for n in names]]
    for num in nums:
        header += [f"{num}/{denominator}", "per-run"]
    rows = [header]
    for metric, fmt in metrics:
        meds = {n: median(results[n].get(metric, [])) for n in names}
        row = [metric, *[fmt(meds[n]) for n in names]]
        den = meds[denominator]
        for num in nums:
            ratio = meds[num] / den if den else float("nan")
            mine, theirs = results[num].get(metric, []), results[denominator].get(metric, [])
            pairs = zip(mine, theirs, strict=True)
            per_run = median([a / b for a, b in pairs if b and not math.isnan(a)])
            row += [f"{ratio:.2f}", f"{per_run:.2f}"]
        rows.append(row)
    widths = [max(len(r[i]) for r in rows) for i in range(len(header))]
    lines = ["  ".join(c.ljust(w) for c, w in zip(r, widths, strict=True)) for r in rows]
    lines.insert(1, "  ".join("-" * w for w in widths))
    return "\n".join(lines)


def now() -> float:
    """The benchmarks' one clock (monotonic, comparable across processes on Linux)."""
    return time.monotonic()
