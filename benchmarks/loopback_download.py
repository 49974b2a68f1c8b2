"""Benchmark: ccbt vs libtorrent downloading the same torrent from one libtorrent seeder.

One libtorrent seeder (its high-throughput preset, data checked and in the page cache) serves a
generated payload. Each run times two leechers in turn, each in its own process so neither shares
an interpreter or a GIL with the harness: a libtorrent leecher (``lt_peer.py``, TCP only, default
settings) and a ccbt leecher (this file re-run with ``--driver``, using ``ccbt_engine.api``, TCP
only too). The order alternates between runs so drifting background load hits both alike; one
uncounted warm-up round comes first, then medians are reported.

Both leechers are TCP only, like the seeder: with uTP on (ccbt's default) ccbt dials uTP first and
TCP only after ``UTP_HEAD_START`` (0.5 s) without an answer, which a TCP-only seeder never gives;
that is a connection policy worth half a second once per peer, not transfer speed. Between runs
the harness waits a few seconds after deleting the last download, so that both leechers write
into memory in the same state (``_common.settle`` explains why that matters on a VM).

Per leecher and run:

* MiB/s: payload bytes / wall time from the moment it is told to connect to the seeder until it
  reports every piece verified;
* 10-90% MiB/s and first byte s: from the leecher's files on disk, sampled every 20 ms
  (``DiskProgress``): the transfer rate without connection set-up and the final hashes;
* CPU s: utime + stime of the leecher's process over that same window (``/proc/PID/stat``, last
  sample taken right after completion, before the process is told to quit); "sys CPU s" is its
  kernel share (on loopback the kernel runs much of the other end's TCP work in our syscalls);
* peak VmHWM and peak RssAnon, sampled from ``/proc/PID/status`` every 100 ms during the run.

    .venv/bin/python benchmarks/loopback_download.py                 # 1 GiB file, 1 MiB pieces
    .venv/bin/python benchmarks/loopback_download.py --size 512M --files 200
    .venv/bin/python benchmarks/loopback_download.py --runs 1 --profile /tmp/ccbt.txt  # py-spy
    .venv/bin/python benchmarks/loopback_download.py --probe   # where ccbt's loop thread waits
    .venv/bin/python benchmarks/loopback_download.py --write-mode cached  # through the page cache
    git archive HEAD ccbt_engine | tar -x -C /tmp/base    # then, before/after in one run:
    .venv/bin/python benchmarks/loopback_download.py --size 512M --baseline /tmp/base

``--baseline DIR`` adds a third leecher: ccbt imported from ``DIR`` (a folder holding another
``ccbt_engine``, e.g. the last commit). On a loaded machine only a comparison made in the same
run, interleaved, means anything.

No rate limits are set anywhere (libtorrent ignores them between local peers anyway).
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import os
import resource
import selectors
import shutil
import signal
import subprocess
import sys
import tempfile
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _common import (  # benchmarks are scripts, not a package: found via sys.path
    MIB,
    ProcSampler,
    ProcStats,
    add_run_arguments,
    cpu_seconds,
    load_refpeers,
    median,
    now,
    page_reporting_state,
    parse_size,
    ratio_table,
    run_label,
    settle,
    warm_page_cache,
    write_random_file,
)

LT = "libtorrent"
CCBT = "ccbt"
BASE = "ccbt-base"


@dataclass
class RunResult:
    contender: str
    seconds: float
    payload: int
    proc: ProcStats
    #: seconds from "connect" to the first payload byte written (see DiskProgress)
    first_byte: float
    #: MiB/s while the payload went from 10% to 90% written
    steady_mib_s: float
    #: ``--probe``: the ccbt leecher's event-loop thread over the window (see LoopProbe)
    loop: dict[str, float] = field(default_factory=dict)

    @property
    def mib_s(self) -> float:
        return self.payload / MIB / self.seconds


# --------------------------------------------------------------------------------------------
# The ccbt leecher process (``--driver``)
# --------------------------------------------------------------------------------------------


def _emit(obj: dict[str, Any]) -> None:
    sys.stdout.write(json.dumps(obj) + "\n")
    sys.stdout.flush()


def _self_cpu() -> float:
    ru = resource.getrusage(resource.RUSAGE_SELF)
    return ru.ru_utime + ru.ru_stime


class LoopProbe:
    """``--probe``: where the ccbt leecher's event-loop thread spends the transfer (Linux).

    Between :meth:`start` ("go") and :meth:`result` ("done") it takes the thread's CPU time and
    its run-queue wait (the second field of ``/proc/thread-self/schedstat``: nanoseconds
    runnable but not running), and times every ``epoll_wait`` of the loop thread and every
    ``PeerConnection.send`` (CPU and wall), by wrapping them in this driver process only. The
    figures overlap (a wake-up from ``epoll_wait`` that waits for a CPU counts in both), so they
    do not add up to the window; read them side by side: much time in ``epoll_wait`` means the
    loop had nothing to read (the disk held it back, or the seeder), much waiting for a CPU
    means something else ran where the loop could have.
    """

    def __init__(self) -> None:
        from ccbt_engine.net.peer import PeerConnection

        self.loop_thread = threading.get_ident()
        self.epoll = self.send_cpu = self.send_wall = 0.0
        self.sends = 0
        self._start = self._snapshot()
        select = selectors.DefaultSelector.select
        send = PeerConnection.send
        probe = self

        def timed_select(sel: Any, timeout: float | None = None) -> Any:
            if threading.get_ident() != probe.loop_thread:
                return select(sel, timeout)
            t = time.perf_counter()
            try:
                return select(sel, timeout)
            finally:
                probe.epoll += time.perf_counter() - t

        def timed_send(conn: Any, data: bytes) -> None:
            cpu, wall = time.thread_time(), time.perf_counter()
            send(conn, data)
            probe.send_cpu += time.thread_time() - cpu
            probe.send_wall += time.perf_counter() - wall
            probe.sends += 1

        selectors.DefaultSelector.select = timed_select  # type: ignore[method-assign, assignment]
        PeerConnection.send = timed_send  # type: ignore[method-assign, assignment]

    @staticmethod
    def _snapshot() -> tuple[float, float, float]:
        with open("/proc/thread-self/schedstat", encoding="ascii") as f:
            waited = int(f.read().split()[1]) / 1e9
        return time.perf_counter(), time.thread_time(), waited

    def start(self) -> None:
        self.epoll = self.send_cpu = self.send_wall = 0.0
        self.sends = 0
        self._start = self._snapshot()

    def result(self) -> dict[str, float]:
        wall, cpu, waited = (b - a for a, b in zip(self._start, self._snapshot(), strict=True))
        return {
            "loop CPU s": cpu,
            "loop waiting for a CPU s": waited,
            "loop in epoll_wait s": self.epoll,
            "window s": wall,
            "request sends": float(self.sends),
            "send CPU s": self.send_cpu,
            "send wall s": self.send_wall,
        }


async def _drive(
    torrent: Path,
    save: Path,
    peer: tuple[str, int],
    timeout: float,
    probe: LoopProbe | None,
    write_mode: str | None = None,
) -> int:
    """Add the torrent, say ``ready``, wait for ``go`` on stdin, download, say ``done``, wait.

    Waiting for the parent at both ends keeps interpreter start-up, imports and shutdown out of
    the measured window, exactly as for the libtorrent leecher.
    """
    from ccbt_engine.api import Session
    from ccbt_engine.config import Settings

    config: dict[str, Any] = {
        "network": {
            "listen_interfaces": ["127.0.0.1"],
            "enable_utp": False,  # TCP only, as the libtorrent leecher (see the docstring)
            "enable_dht": False,
            "enable_lsd": False,
            "enable_upnp": False,
            "enable_natpmp": False,
        }
    }
    if write_mode is not None:  # else the engine's default (a --baseline may predate the key)
        config["disk"] = {"write_mode": write_mode}
    settings = Settings.model_validate(config)
    loop = asyncio.get_running_loop()
    async with Session(settings, listen_port=0) as session:
        handle = await session.add_torrent(torrent, save)
        _emit({"type": "ready", "state": handle.status().state})
        if (await loop.run_in_executor(None, sys.stdin.readline)).strip() != "go":
            return 1
        cpu0, t0 = _self_cpu(), now()
        if probe is not None:
            probe.start()
        handle.connect_peer(*peer)
        try:
            status = await handle.wait_finished(timeout=timeout)
        except Exception as exc:  # report any failure to the parent, which prints it
            _emit({"type": "error", "error": f"{type(exc).__name__}: {exc}"})
            return 1
        _emit(
            {
                "type": "done",
                "seconds": now() - t0,
                "cpu": _self_cpu() - cpu0,
                "state": status.state,
                "hash_failures": status.hash_failures,
                "wanted_done": status.wanted_done,
                "loop": probe.result() if probe is not None else {},
            }
        )
        await loop.run_in_executor(None, sys.stdin.readline)  # "quit" or EOF
    return 0


def _driver_main(args: argparse.Namespace) -> int:
    host, _, port = args.peer.rpartition(":")
    factory = None
    if args.loop == "uvloop":
        import uvloop  # optional: only this mode needs it

        factory = uvloop.new_event_loop
    with asyncio.Runner(loop_factory=factory) as runner:
        return runner.run(
            _drive(
                Path(args.torrent),
                Path(args.save),
                (host, int(port)),
                args.timeout,
                LoopProbe() if args.probe else None,
                args.write_mode,
            )
        )


# --------------------------------------------------------------------------------------------
# The harness side
# --------------------------------------------------------------------------------------------


class CcbtLeecher:
    """The ``--driver`` subprocess, with a JSON-lines reader on its stdout."""

    def __init__(
        self,
        torrent: Path,
        save: Path,
        seeder_port: int,
        workdir: Path,
        code: Path | None = None,
        loop: str = "asyncio",
        probe: bool = False,
        write_mode: str | None = None,
    ) -> None:
        env = dict(os.environ)
        env.update(
            CCBT_CONFIG_DIR=str(workdir / "ccbt-config"),
            CCBT_LOCAL_CONFIG=str(workdir / "none.toml"),
            CCBT_NETWORK_LISTEN_INTERFACES='["127.0.0.1"]',
        )
        if code is not None:  # another ccbt_engine first on the path (--baseline)
            env["PYTHONPATH"] = os.pathsep.join(filter(None, [str(code), env.get("PYTHONPATH")]))
        argv = [sys.executable, __file__, "--driver", "--torrent", str(torrent)]
        argv += ["--save", str(save), "--peer", f"127.0.0.1:{seeder_port}", "--loop", loop]
        argv += ["--probe"] if probe else []
        argv += ["--write-mode", write_mode] if write_mode else []
        self.proc = subprocess.Popen(
            argv,
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
            env=env,
            start_new_session=True,
        )
        self.stderr_tail: list[str] = []
        threading.Thread(target=self._drain_stderr, daemon=True).start()

    def _drain_stderr(self) -> None:
        assert self.proc.stderr is not None
        for line in self.proc.stderr:
            self.stderr_tail = [*self.stderr_tail[-30:], line.rstrip()]

    def read_event(self, expected: str) -> dict[str, Any]:
        assert self.proc.stdout is not None
        line = self.proc.stdout.readline()
        if not line:
            raise RuntimeError("ccbt driver exited:\n" + "\n".join(self.stderr_tail))
        event: dict[str, Any] = json.loads(line)
        if event.get("type") != expected:
            raise RuntimeError(f"ccbt driver: wanted {expected}, got {event}")
        return event

    def send(self, line: str) -> None:
        assert self.proc.stdin is not None
        self.proc.stdin.write(line + "\n")
        self.proc.stdin.flush()

    def stop(self) -> None:
        with contextlib.suppress(BrokenPipeError, OSError):
            self.send("quit")
        try:
            self.proc.wait(30)
        except subprocess.TimeoutExpired:
            os.killpg(self.proc.pid, signal.SIGKILL)
            self.proc.wait(5)


class DiskProgress:
    """How many payload bytes the leecher has written, sampled every 20 ms from ``st_blocks``.

    Both leechers write into sparse files and ext4 counts delayed allocations in ``st_blocks``,
    so allocated bytes track bytes written. From the samples come the time to the first written
    byte and the rate between 10% and 90% of the payload: the transfer itself, without the
    connection set-up (libtorrent dials a peer added by ``connect_peer`` on its next tick, ccbt
    at once) or the hash and write of the last pieces. Same sampler, same files, for both.
    """

    INTERVAL = 0.02

    def __init__(self, save: Path, payload: int, t0: float) -> None:
        self.save = save
        self.payload = payload
        self.t0 = t0
        self.samples: list[tuple[float, int]] = []
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True, name="disk-progress")
        self._thread.start()

    def _written(self) -> int:
        total = 0
        stack = [str(self.save)]
        while stack:
            with contextlib.suppress(FileNotFoundError), os.scandir(stack.pop()) as it:
                for entry in it:
                    if entry.is_dir(follow_symlinks=False):
                        stack.append(entry.path)
                    elif entry.is_file(follow_symlinks=False):
                        with contextlib.suppress(FileNotFoundError):
                            total += entry.stat(follow_symlinks=False).st_blocks * 512
        return total

    def _run(self) -> None:
        while not self._stop.is_set():
            self.samples.append((now() - self.t0, self._written()))
            self._stop.wait(self.INTERVAL)

    def stop(self, finished: float) -> tuple[float, float]:
        """(seconds to the first written byte, MiB/s from 10% to 90% of the payload).

        ``finished``: seconds from ``t0`` until the leecher reported every piece verified. A
        leecher can say so before 90% of the bytes are in its files (libtorrent's store buffer
        keeps verified blocks until its disk threads get to them); its transfer is over all the
        same, so the 90% mark is then taken as ``finished`` (the earlier of the two, which
        only ever favours that leecher) rather than left undefined.
        """
        self._stop.set()
        self._thread.join(2.0)
        first = next((t for t, n in self.samples if n > 0), float("nan"))
        lo, hi = self._crossing(0.1), self._crossing(0.9)
        if not hi <= finished:  # also when never reached (nan)
            hi = finished
        steady = 0.8 * self.payload / MIB / (hi - lo) if hi > lo else float("nan")
        return first, steady

    def _crossing(self, fraction: float) -> float:
        """When the written bytes crossed ``fraction`` of the payload (linear between samples)."""
        target = fraction * self.payload
        prev_t, prev_n = 0.0, 0
        for t, n in self.samples:
            if n >= target:
                if n == prev_n:
                    return t
                return prev_t + (t - prev_t) * (target - prev_n) / (n - prev_n)
            prev_t, prev_n = t, n
        return float("nan")


def run_ccbt(
    torrent: Path,
    save: Path,
    seeder_port: int,
    payload: int,
    workdir: Path,
    profile: Path | None,
    code: Path | None = None,
    loop: str = "asyncio",
    probe: bool = False,
    write_mode: str | None = None,
) -> RunResult:
    leecher = CcbtLeecher(torrent, save, seeder_port, workdir, code, loop, probe, write_mode)
    spy: subprocess.Popen[bytes] | None = None
    try:
        leecher.read_event("ready")
        sampler = ProcSampler(leecher.proc.pid).start()
        if profile is not None:
            spy = _start_py_spy(leecher.proc.pid, profile)
        sampler.mark_start()
        t0 = now()
        progress = DiskProgress(save, payload, t0)
        leecher.send("go")
        done = leecher.read_event("done")
        seconds = now() - t0
        sampler.sample()
        stats = sampler.stop()
        first_byte, steady = progress.stop(seconds)
        if done["wanted_done"] != payload or done["state"] != "seeding":
            raise RuntimeError(f"ccbt did not complete: {done}")
    finally:
        if spy is not None:
            spy.send_signal(signal.SIGINT)
            spy.wait(60)
        leecher.stop()
    contender = CCBT if code is None else BASE
    return RunResult(contender, seconds, payload, stats, first_byte, steady, done["loop"])


def _start_py_spy(pid: int, out: Path) -> subprocess.Popen[bytes]:
    """Attach py-spy to the driver; ``.txt`` gives collapsed stacks, anything else speedscope.

    ``.strace`` attaches ``strace -c -f`` instead (syscall counts and time per call of every
    thread), ``.perf`` ``perf record -g`` (kernel stacks too): where the leecher's system CPU,
    half of its CPU, goes.
    """
    if out.suffix in (".strace", ".perf"):
        argv = (
            ["strace", "-c", "-f", "-o", str(out), "-p", str(pid)]
            if out.suffix == ".strace"
            else ["perf", "record", "-g", "-o", str(out), "-p", str(pid)]
        )
        proc = subprocess.Popen(argv, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        time.sleep(1.0)
        return proc
    spy = shutil.which("py-spy") or str(Path(sys.executable).with_name("py-spy"))
    fmt = "raw" if out.suffix == ".txt" else "speedscope"
    argv = [spy, "record", "--pid", str(pid), "-o", str(out), "--format", fmt, "--rate", "200"]
    proc = subprocess.Popen(argv, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    time.sleep(1.0)  # let it attach before the transfer starts
    return proc


def run_libtorrent(
    refpeers: Any, torrent: Path, save: Path, seeder_port: int, payload: int, timeout: float
) -> RunResult:
    leecher = refpeers.LibtorrentPeer(torrent, save, seed=False, tcp_only=True)
    leecher.start()
    try:
        sampler = ProcSampler(leecher.pid).start()
        sampler.mark_start()
        t0 = now()
        progress = DiskProgress(save, payload, t0)
        leecher.connect("127.0.0.1", seeder_port)
        final = leecher.wait_finished(timeout)
        seconds = now() - t0
        sampler.sample()
        stats = sampler.stop()
        first_byte, steady = progress.stop(seconds)
        if final.get("total_done") != payload:
            raise RuntimeError(f"libtorrent did not complete: {final}")
    finally:
        leecher.stop()
    return RunResult(LT, seconds, payload, stats, first_byte, steady)


def make_source(root: Path, size: int, files: int, refpeers: Any) -> Path:
    """The seeder's data: one file ``bench.bin`` or a folder of ``files`` varied files."""
    if files == 1:
        path = root / "src" / "bench.bin"
        write_random_file(path, size)
        return path
    folder = root / "src" / "payload"
    if not folder.exists():
        refpeers.make_payload(root / "src", size, files, seed=files)
    return folder


def _print_run(r: RunResult, run: int, seeder_cpu: float) -> None:
    s = r.proc
    print(
        f"{run_label(run)} {r.contender:<10} {r.mib_s:8.1f} MiB/s  {r.seconds:6.2f} s  "
        f"(first byte {r.first_byte:4.2f} s, 10-90% {r.steady_mib_s:6.1f} MiB/s)  "
        f"cpu {s.cpu:6.2f} s (sys {s.sys_cpu:5.2f})  VmHWM {s.vm_hwm_kib / 1024:7.1f} MiB  "
        f"RssAnon {s.rss_anon_peak_kib / 1024:7.1f} MiB  faults {s.minor_faults:7d}  "
        f"seeder cpu {seeder_cpu:5.2f} s",
        flush=True,
    )
    if r.loop:
        print("      loop thread: " + ", ".join(f"{k} {v:.3g}" for k, v in r.loop.items()))


Figures = dict[str, dict[str, list[float]]]  # contender -> metric -> one value per run


def bench(args: argparse.Namespace) -> tuple[Figures, Figures]:
    """Run the rounds; returns (the figures of every contender, the ``--probe`` figures)."""
    refpeers = load_refpeers()
    root = Path(args.dir) if args.dir else Path(tempfile.mkdtemp(prefix="ccbt-bench-"))
    root.mkdir(parents=True, exist_ok=True)
    contenders = [LT, CCBT] + ([BASE] if args.baseline else [])
    results: Figures = {c: {} for c in contenders}
    loops: Figures = {}  # --probe, ccbt contenders only (libtorrent's loop is not ours to probe)
    try:
        source = make_source(root, args.size, args.files, refpeers)
        made = refpeers.make_torrent(source, None, args.pieces, root / "bench.torrent", "v1")
        warm_page_cache(source)
        print(
            f"payload {made.total_size / MIB:.0f} MiB in {args.files} file(s), "
            f"{made.piece_size // 1024} KiB pieces, {args.runs} run(s)",
            flush=True,
        )
        print(page_reporting_state(), flush=True)
        # not seed_mode: that hashes each piece on its first upload, which would slow down
        # whichever leecher comes first. A full check at start-up costs a few seconds once.
        seeder = refpeers.LibtorrentPeer(
            made.path, made.save_path, seed=True, fast=True, tcp_only=True
        )
        with seeder:
            for run in range(-args.warmup, args.runs):
                # rotate the order: whoever runs first in a round tends to be slower
                k = run % len(contenders)
                for contender in contenders[k:] + contenders[:k]:
                    save = root / f"dl-{contender}"
                    shutil.rmtree(save, ignore_errors=True)
                    save.mkdir()
                    settle()
                    seeder_cpu0 = cpu_seconds(seeder.pid)
                    if contender == LT:
                        r = run_libtorrent(
                            refpeers, made.path, save, seeder.port, made.total_size, args.timeout
                        )
                    elif contender == CCBT:
                        profile = args.profile if run == -args.warmup else None
                        r = run_ccbt(
                            made.path,
                            save,
                            seeder.port,
                            made.total_size,
                            root,
                            profile,
                            None,
                            args.loop,
                            args.probe,
                            args.write_mode,
                        )
                    else:
                        r = run_ccbt(
                            made.path,
                            save,
                            seeder.port,
                            made.total_size,
                            root,
                            None,
                            args.baseline,
                            args.loop,
                            args.probe,
                            args.write_mode,
                        )
                    seeder_cpu = cpu_seconds(seeder.pid) - seeder_cpu0
                    shutil.rmtree(save, ignore_errors=True)
                    _print_run(r, run, seeder_cpu)
                    if run < 0:
                        continue  # a warm-up round: printed, not counted
                    m = results[contender]
                    for key, value in r.loop.items():
                        loops.setdefault(contender, {}).setdefault(key, []).append(value)
                    for key, value in (
                        ("MiB/s", r.mib_s),
                        ("10-90% MiB/s", r.steady_mib_s),
                        ("first byte s", r.first_byte),
                        ("CPU s", r.proc.cpu),
                        ("sys CPU s", r.proc.sys_cpu),
                        ("minor faults", float(r.proc.minor_faults)),
                        ("seeder CPU s", seeder_cpu),
                        ("peak VmHWM MiB", r.proc.vm_hwm_kib / 1024),
                        ("peak RssAnon MiB", r.proc.rss_anon_peak_kib / 1024),
                        ("wall s", r.seconds),
                    ):
                        m.setdefault(key, []).append(value)
    finally:
        if not args.dir:
            shutil.rmtree(root, ignore_errors=True)
    return results, loops


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--size", type=parse_size, default=parse_size("1G"), help="payload size")
    p.add_argument("--pieces", type=parse_size, default=MIB, help="piece size (power of two)")
    p.add_argument("--files", type=int, default=1, help="number of files (1 = a single file)")
    add_run_arguments(p)
    p.add_argument("--dir", help="work folder, kept and reused (default: a temporary one)")
    p.add_argument("--timeout", type=float, default=600.0, help="seconds per download")
    p.add_argument(
        "--profile", type=Path, help="profile the first ccbt run: py-spy, or .strace / .perf"
    )
    p.add_argument(
        "--baseline", type=Path, help="also time ccbt imported from this folder (before/after)"
    )
    p.add_argument(
        "--probe",
        action="store_true",
        help="time where ccbt's event-loop thread spends each transfer (Linux; see LoopProbe)",
    )
    p.add_argument(
        "--loop",
        choices=["asyncio", "uvloop"],
        default="asyncio",
        help="event loop of the ccbt leecher (uvloop must be installed)",
    )
    p.add_argument(
        "--write-mode",
        choices=["direct", "cached"],
        help="disk.write_mode of the ccbt leechers (default: the engine's default, direct)",
    )
    # internal: the ccbt leecher process
    p.add_argument("--driver", action="store_true", help=argparse.SUPPRESS)
    p.add_argument("--torrent", help=argparse.SUPPRESS)
    p.add_argument("--save", help=argparse.SUPPRESS)
    p.add_argument("--peer", help=argparse.SUPPRESS)
    args = p.parse_args(argv)
    if args.driver:
        return _driver_main(args)
    results, loops = bench(args)
    fmt1 = "{:.1f}".format
    fmt2 = "{:.2f}".format
    print()
    print(
        ratio_table(
            [
                ("MiB/s", fmt1),
                ("10-90% MiB/s", fmt1),
                ("first byte s", fmt2),
                ("wall s", fmt2),
                ("CPU s", fmt2),
                ("sys CPU s", fmt2),
                ("minor faults", "{:.0f}".format),
                ("seeder CPU s", fmt2),
                ("peak VmHWM MiB", fmt1),
                ("peak RssAnon MiB", fmt1),
            ],
            results,
            [c for c in results if c != LT],
            LT,
        )
    )
    if loops:
        names = list(loops)
        print("\nccbt's event-loop thread over the window (--probe), medians:")
        print(f"{'':28}" + "".join(f"{n:>14}" for n in names))
        for key in loops[names[0]]:
            cells = "".join(f"{median(loops[n].get(key, [])):14.3f}" for n in names)
            print(f"{key:28}{cells}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
