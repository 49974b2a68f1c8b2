"""Benchmark: recheck of existing data against single-thread hashlib (and libtorrent's recheck).

The bar (from the issue): checking 1 GiB of existing data must run at >= 1.6x the speed of one
thread reading the same file and SHA-1-ing each piece with hashlib, i.e. the check really puts
both cores to work instead of fighting over the GIL.

All contenders read the same file from the page cache (a warm-up read runs first), so the
comparison is about CPU use, not the disk. Runs are interleaved (hashlib, ccbt, libtorrent,
hashlib, ...) so background load drifts hit all of them alike; medians are reported, and
best-of-N as well because on a shared machine other work only ever slows a run down.

* hashlib 1 thread: ``readinto`` a piece-sized buffer, ``hashlib.sha1`` it, next piece.
* ccbt: ``ccbt_engine.storage.checker.recheck`` on a fresh ``TorrentStorage`` (this process,
  its own event loop), every piece must verify.
* libtorrent (when the ``libtorrent`` wheel is installed; ``--no-libtorrent`` skips it): a
  seeder started on the data (``lt_peer.py``), then ``force_recheck``; the time runs from the
  command to the ``torrent_checked`` alert (both stamped with the same monotonic clock).

    .venv/bin/python benchmarks/recheck.py [--size 1G] [--pieces 1M] [--runs 3] [--dir DIR]
"""

from __future__ import annotations

import argparse
import asyncio
import hashlib
import importlib.util
import os
import shutil
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
from _common import (  # benchmarks are scripts, not a package: found via sys.path
    MIB,
    cpu_seconds,
    load_refpeers,
    median,
    parse_size,
    warm_page_cache,
    write_random_file,
)

from ccbt_engine.create import create_torrent
from ccbt_engine.metainfo import TorrentInfo, parse_torrent
from ccbt_engine.storage.checker import default_workers, recheck
from ccbt_engine.storage.files import TorrentStorage

BASE = "hashlib 1 thread"
CCBT = "ccbt recheck"
LT = "libtorrent recheck"


def hashlib_single_thread(path: Path, piece_length: int) -> float:
    """The baseline: read piece by piece into one buffer and SHA-1 each piece, one thread."""
    start = time.perf_counter()
    buf = bytearray(piece_length)
    mv = memoryview(buf)
    with open(path, "rb", buffering=0) as fh:
        while n := fh.readinto(buf):
            hashlib.sha1(mv[:n]).digest()
    return time.perf_counter() - start


def ccbt_recheck(info: TorrentInfo, save: Path, workers: int | None) -> float:
    async def run() -> list[bool]:
        storage = TorrentStorage(info, save)
        try:
            return await recheck(storage, workers=workers)
        finally:
            await storage.close()

    start = time.perf_counter()
    result = asyncio.run(run())
    seconds = time.perf_counter() - start
    if not all(result):
        raise RuntimeError(f"ccbt recheck failed {result.count(False)} pieces")
    return seconds


class LibtorrentChecker:
    """A libtorrent seeder on the payload, rechecked on demand."""

    def __init__(self, torrent: Path, save: Path) -> None:
        refpeers = load_refpeers()
        self.peer = refpeers.LibtorrentPeer(torrent, save, seed=True, tcp_only=True)
        self.peer.start(timeout=300)

    def recheck(self, timeout: float = 300.0) -> tuple[float, float]:
        """(wall seconds, CPU seconds of the libtorrent process) of one forced recheck."""
        before = len(self.peer.alerts("torrent_checked"))
        cpu0 = cpu_seconds(self.peer.pid)
        t0 = time.monotonic()
        self.peer.force_recheck()
        deadline = t0 + timeout
        while len(alerts := self.peer.alerts("torrent_checked")) <= before:
            if time.monotonic() > deadline:
                raise TimeoutError("libtorrent recheck did not finish")
            time.sleep(0.005)
        cpu = cpu_seconds(self.peer.pid) - cpu0  # includes its idle alert loop: ~0
        status = self.peer.status()
        if status["total_done"] != status["total_wanted"]:
            raise RuntimeError(f"libtorrent recheck found missing pieces: {status}")
        return float(alerts[-1]["t"]) - t0, cpu

    def stop(self) -> None:
        self.peer.stop()


def _load_average() -> float:
    """The 1-minute load average now (the machine is shared: say how busy it was)."""
    return float(Path("/proc/loadavg").read_text().split()[0])


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--size", type=parse_size, default=parse_size("1G"), help="payload (1G)")
    ap.add_argument("--pieces", type=parse_size, default=MIB, help="piece length (1M)")
    ap.add_argument("--runs", type=int, default=3, help="timed runs of each contender (3)")
    ap.add_argument("--workers", type=int, default=None, help="ccbt hashing threads (per core)")
    ap.add_argument("--dir", type=Path, default=None, help="keep/reuse the payload here")
    ap.add_argument("--no-libtorrent", action="store_true", help="skip libtorrent's recheck")
    args = ap.parse_args(argv)

    root = args.dir or Path(tempfile.mkdtemp(prefix="ccbt-bench-recheck-"))
    root.mkdir(parents=True, exist_ok=True)
    lt: LibtorrentChecker | None = None
    try:
        data = root / "src" / "bench.bin"
        write_random_file(data, args.size)
        torrent_bytes = create_torrent(data, piece_length=args.pieces, version="v1")
        torrent = root / "bench.torrent"
        torrent.write_bytes(torrent_bytes)
        info = parse_torrent(torrent_bytes).info
        warm_page_cache(data)
        workers = args.workers or default_workers()
        print(
            f"payload {args.size / MIB:.0f} MiB, {args.pieces // 1024} KiB pieces, "
            f"{os.cpu_count()} CPUs, ccbt workers {workers}, {args.runs} runs",
            flush=True,
        )
        times: dict[str, list[float]] = {BASE: [], CCBT: []}
        cpu: dict[str, list[float]] = {BASE: [], CCBT: []}
        with_lt = not args.no_libtorrent and importlib.util.find_spec("libtorrent") is not None
        if with_lt:
            lt = LibtorrentChecker(torrent, data.parent)
            times[LT] = []
            cpu[LT] = []
        loads = [_load_average()]
        for run in range(args.runs):
            c0 = time.process_time()
            times[BASE].append(hashlib_single_thread(data, args.pieces))
            c1 = time.process_time()
            times[CCBT].append(ccbt_recheck(info, data.parent, workers))
            cpu[BASE].append(c1 - c0)
            cpu[CCBT].append(time.process_time() - c1)
            if lt is not None:
                wall, lt_cpu = lt.recheck()
                times[LT].append(wall)
                cpu[LT].append(lt_cpu)
            line = "  ".join(
                f"{n} {args.size / MIB / ts[-1]:6.0f} MiB/s" for n, ts in times.items()
            )
            loads.append(_load_average())
            print(f"run {run + 1}: {line}  (load {loads[-1]:.2f})", flush=True)
        size_mib = args.size / MIB
        gib = args.size / (1024 * MIB)
        base_med = size_mib / median(times[BASE])
        base_best = size_mib / min(times[BASE])
        print()
        for name, ts in times.items():
            med, best = size_mib / median(ts), size_mib / min(ts)
            cpu_med = median(cpu[name])
            print(
                f"{name:19s} median {med:6.0f} MiB/s x{med / base_med:4.2f}"
                f"   best {best:6.0f} MiB/s x{best / base_best:4.2f}"
                f"   CPU {cpu_med / gib:5.2f} s/GiB (cores busy {cpu_med / median(ts):.2f})"
            )
        ratio = median(times[BASE]) / median(times[CCBT])
        per_run = median([b / c for b, c in zip(times[BASE], times[CCBT], strict=True)])
        verdict = "met" if ratio >= 1.6 else "NOT met"
        print(
            f"ccbt recheck / hashlib 1 thread (medians) = {ratio:.2f}, median of per-run ratios"
            f" = {per_run:.2f}  (target >= 1.60: {verdict})"
        )
        # CPU time is what load inflates least: the speed the check would reach with two idle
        # cores is about 2 x (baseline CPU / ccbt CPU), the baseline being one busy core
        cpu_ratio = median(cpu[BASE]) / median(cpu[CCBT])
        cores = min(workers, os.cpu_count() or 1)
        print(
            f"CPU s per GiB: hashlib {median(cpu[BASE]) / gib:.2f}, ccbt"
            f" {median(cpu[CCBT]) / gib:.2f}; with {cores} idle cores ccbt would reach about"
            f" x{cores * cpu_ratio:.2f}"
        )
        print(
            f"1-min load average on {os.cpu_count()} CPUs around the runs: min {min(loads):.2f},"
            f" median {median(loads):.2f}, max {max(loads):.2f}"
        )
        if LT in times:
            print(
                f"ccbt recheck / libtorrent recheck (medians) = "
                f"{median(times[LT]) / median(times[CCBT]):.2f}"
            )
    finally:
        if lt is not None:
            lt.stop()
        if args.dir is None:
            shutil.rmtree(root, ignore_errors=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
