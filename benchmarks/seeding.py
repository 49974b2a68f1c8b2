"""Benchmark: a libtorrent leecher pulling from ccbt vs from a libtorrent seeder, same run.

What is measured is the SEEDER. Each run starts, in turn, a ccbt seeder (this file re-run with
``--driver``, using ``ccbt_engine.api``) and a libtorrent seeder (``lt_peer.py``, its
high-throughput preset); both check the same payload from the page cache and then serve it to a
fresh libtorrent leecher (TCP only, the same high-throughput preset, so it asks for more than any
seeder can give: the seeder is what limits the transfer). The order alternates between runs so
drifting background load hits both alike; one uncounted warm-up round comes first, then medians
are reported. Before each run the harness waits a few seconds after deleting the last download
(``_common.settle``: both leechers then write into memory in the same state).

Per seeder and run:

* MiB/s: payload bytes / wall time from the moment the leecher is told to connect to the seeder
  until the leecher has every piece verified;
* CPU s: utime + stime of the seeder's process over that same window (``/proc/PID/stat``);
* peak VmHWM (the kernel's high-water mark of the seeder process since it started, start-up
  check included) and peak RssAnon (sampled every 100 ms during the transfer) from
  ``/proc/PID/status``.

    .venv/bin/python benchmarks/seeding.py                      # 1 GiB file, 1 MiB pieces, 3 runs
    .venv/bin/python benchmarks/seeding.py --size 512M --files 200
    .venv/bin/python benchmarks/seeding.py --runs 1 --profile /tmp/seed.txt   # py-spy the seeder
    .venv/bin/python benchmarks/seeding.py --loop uvloop       # the ccbt seeder on uvloop

No rate limits are set anywhere. Encryption: the leecher runs libtorrent's default policy
(MSE enabled, offering plaintext and RC4) and each seeder picks the method it prefers when
answering (both pick plaintext: see ``MSEReceiver`` in ``ccbt_engine/protocol/mse.py``);
``--enc-level rc4`` or ``plaintext`` makes the leecher offer only that method, so both seeders
do the same crypto work.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import threading
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _common import (  # benchmarks are scripts, not a package: found via sys.path
    MIB,
    ProcSampler,
    ProcStats,
    add_run_arguments,
    load_refpeers,
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


_CLK_TCK = os.sysconf("SC_CLK_TCK")


def user_sys_seconds(pid: int) -> tuple[float, float]:
    """(utime, stime) of ``pid`` so far: where the CPU goes, Python vs the kernel (send/copy)."""
    raw = Path(f"/proc/{pid}/stat").read_text()
    fields = raw[raw.rindex(")") + 2 :].split()
    return int(fields[11]) / _CLK_TCK, int(fields[12]) / _CLK_TCK


@dataclass
class RunResult:
    contender: str
    seconds: float
    payload: int
    proc: ProcStats
    user: float = 0.0
    sys: float = 0.0

    @property
    def mib_s(self) -> float:
        return self.payload / MIB / self.seconds


# --------------------------------------------------------------------------------------------
# The ccbt seeder process (``--driver``)
# --------------------------------------------------------------------------------------------


def _emit(obj: dict[str, Any]) -> None:
    sys.stdout.write(json.dumps(obj) + "\n")
    sys.stdout.flush()


async def _drive(torrent: Path, save: Path) -> int:
    """Add the torrent (checks the data), say ``ready`` with the port, seed until stdin says so.

    Start-up (imports, the data check) happens before ``ready`` so it stays out of the measured
    window, exactly as for the libtorrent seeder.
    """
    from ccbt_engine.api import Session
    from ccbt_engine.config import Settings

    settings = Settings.model_validate(
        {
            "network": {
                "listen_interfaces": ["127.0.0.1"],
                "enable_dht": False,
                "enable_lsd": False,
                "enable_upnp": False,
                "enable_natpmp": False,
            }
        }
    )
    loop = asyncio.get_running_loop()
    async with Session(settings, listen_port=0) as session:
        t0 = now()
        handle = await session.add_torrent(torrent, save)
        status = handle.status()
        _emit(
            {
                "type": "ready",
                "port": session.listen_port,
                "state": status.state,
                "check_seconds": now() - t0,
            }
        )
        if status.state != "seeding":
            return 1
        await loop.run_in_executor(None, sys.stdin.readline)  # "quit" or EOF
        _emit({"type": "bye", "uploaded": handle.status().uploaded})
    return 0


def _driver_main(args: argparse.Namespace) -> int:
    factory = None
    if args.loop == "uvloop":
        import uvloop  # optional: only this mode needs it

        factory = uvloop.new_event_loop
    with asyncio.Runner(loop_factory=factory) as runner:
        return runner.run(_drive(Path(args.torrent), Path(args.save)))


# --------------------------------------------------------------------------------------------
# The harness side
# --------------------------------------------------------------------------------------------


class CcbtSeeder:
    """The ``--driver`` subprocess, with a JSON-lines reader on its stdout."""

    def __init__(self, torrent: Path, save: Path, workdir: Path, loop: str = "asyncio") -> None:
        env = dict(os.environ)
        env.update(
            CCBT_CONFIG_DIR=str(workdir / "ccbt-config"),
            CCBT_LOCAL_CONFIG=str(workdir / "none.toml"),
            CCBT_NETWORK_LISTEN_INTERFACES='["127.0.0.1"]',
        )
        argv = [
            sys.executable,
            __file__,
            "--driver",
            "--torrent",
            str(torrent),
            "--save",
            str(save),
            "--loop",
            loop,
        ]
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

    @property
    def pid(self) -> int:
        return self.proc.pid

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

    def start(self) -> int:
        ready = self.read_event("ready")
        if ready["state"] != "seeding":
            raise RuntimeError(f"ccbt seeder is not seeding after its check: {ready}")
        return int(ready["port"])

    def stop(self) -> None:
        with contextlib.suppress(BrokenPipeError, OSError):
            assert self.proc.stdin is not None
            self.proc.stdin.write("quit\n")
            self.proc.stdin.flush()
        try:
            self.proc.wait(30)
        except subprocess.TimeoutExpired:
            os.killpg(self.proc.pid, signal.SIGKILL)
            self.proc.wait(5)


def _start_py_spy(pid: int, out: Path) -> subprocess.Popen[bytes]:
    """Attach py-spy to the seeder; ``.txt`` gives collapsed stacks, anything else speedscope."""
    spy = shutil.which("py-spy") or str(Path(sys.executable).with_name("py-spy"))
    fmt = "raw" if out.suffix == ".txt" else "speedscope"
    argv = [spy, "record", "--pid", str(pid), "-o", str(out), "--format", fmt, "--rate", "200"]
    argv.append("--threads")
    proc = subprocess.Popen(argv, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    time.sleep(1.0)  # let it attach before the transfer starts
    return proc


def leech_from(
    refpeers: Any,
    contender: str,
    seeder_pid: int,
    seeder_port: int,
    torrent: Path,
    save: Path,
    payload: int,
    timeout: float,
    profile: Path | None,
    enc_level: str,
) -> RunResult:
    """One libtorrent leecher downloads everything from the seeder; the seeder is sampled."""
    leecher = refpeers.LibtorrentPeer(
        torrent, save, seed=False, tcp_only=True, fast=True, enc_level=enc_level
    )
    leecher.start()
    spy: subprocess.Popen[bytes] | None = None
    try:
        sampler = ProcSampler(seeder_pid).start()
        if profile is not None:
            spy = _start_py_spy(seeder_pid, profile)
        sampler.mark_start()
        user0, sys0 = user_sys_seconds(seeder_pid)
        t0 = now()
        leecher.connect("127.0.0.1", seeder_port)
        final = leecher.wait_finished(timeout)
        seconds = now() - t0
        sampler.sample()
        user1, sys1 = user_sys_seconds(seeder_pid)
        stats = sampler.stop()
        if final.get("total_done") != payload:
            raise RuntimeError(f"libtorrent leecher did not complete: {final}")
    finally:
        if spy is not None:
            spy.send_signal(signal.SIGINT)
            spy.wait(60)
        leecher.stop()
    return RunResult(contender, seconds, payload, stats, user1 - user0, sys1 - sys0)


def make_source(root: Path, size: int, files: int, refpeers: Any) -> Path:
    """The seeders' data: one file ``bench.bin`` or a folder of ``files`` varied files."""
    if files == 1:
        path = root / "src" / "bench.bin"
        write_random_file(path, size)
        return path
    folder = root / "src" / "payload"
    if not folder.exists():
        refpeers.make_payload(root / "src", size, files, seed=files)
    return folder


def _print_run(r: RunResult, run: int) -> None:
    s = r.proc
    print(
        f"{run_label(run)} {r.contender:<10} {r.mib_s:8.1f} MiB/s  {r.seconds:6.2f} s  "
        f"cpu {s.cpu:6.2f} s (user {r.user:5.2f} sys {r.sys:5.2f})  "
        f"VmHWM {s.vm_hwm_kib / 1024:7.1f} MiB  "
        f"RssAnon {s.rss_anon_peak_kib / 1024:7.1f} MiB",
        flush=True,
    )


def load_average() -> float:
    """The 1-minute load average now: how busy the (shared) machine was around a run."""
    return float(Path("/proc/loadavg").read_text().split()[0])


def one_run(
    refpeers: Any, contender: str, made: Any, root: Path, args: argparse.Namespace, run: int
) -> RunResult:
    save = root / f"dl-{contender}"
    shutil.rmtree(save, ignore_errors=True)
    save.mkdir()
    settle()
    try:
        if contender == LT:
            with refpeers.LibtorrentPeer(
                made.path, made.save_path, seed=True, fast=True, tcp_only=True
            ) as seeder:
                return leech_from(
                    refpeers,
                    LT,
                    seeder.pid,
                    seeder.port,
                    made.path,
                    save,
                    made.total_size,
                    args.timeout,
                    None,
                    args.enc_level,
                )
        ccbt = CcbtSeeder(made.path, made.save_path, root, args.loop)
        try:
            port = ccbt.start()
            profile = args.profile if run == -args.warmup else None
            return leech_from(
                refpeers,
                CCBT,
                ccbt.pid,
                port,
                made.path,
                save,
                made.total_size,
                args.timeout,
                profile,
                args.enc_level,
            )
        finally:
            ccbt.stop()
    finally:
        shutil.rmtree(save, ignore_errors=True)


def bench(args: argparse.Namespace) -> dict[str, dict[str, list[float]]]:
    refpeers = load_refpeers()
    root = Path(args.dir) if args.dir else Path(tempfile.mkdtemp(prefix="ccbt-bench-seed-"))
    root.mkdir(parents=True, exist_ok=True)
    results: dict[str, dict[str, list[float]]] = {LT: {}, CCBT: {}}
    try:
        source = make_source(root, args.size, args.files, refpeers)
        made = refpeers.make_torrent(source, None, args.pieces, root / "bench.torrent", "v1")
        warm_page_cache(source)
        print(
            f"payload {made.total_size / MIB:.0f} MiB in {args.files} file(s), "
            f"{made.piece_size // 1024} KiB pieces, {args.runs} run(s), "
            f"{os.cpu_count()} CPUs, leecher offers encryption: {args.enc_level}, "
            f"ccbt event loop: {args.loop}",
            flush=True,
        )
        print(page_reporting_state(), flush=True)
        loads = [load_average()]
        for run in range(-args.warmup, args.runs):
            order = [LT, CCBT] if run % 2 == 0 else [CCBT, LT]
            for contender in order:
                r = one_run(refpeers, contender, made, root, args, run)
                _print_run(r, run)
                if run < 0:
                    continue  # a warm-up round: printed, not counted
                loads.append(load_average())
                m = results[contender]
                for key, value in (
                    ("MiB/s", r.mib_s),
                    ("CPU s", r.proc.cpu),
                    ("user CPU s", r.user),
                    ("sys CPU s", r.sys),
                    ("peak VmHWM MiB", r.proc.vm_hwm_kib / 1024),
                    ("peak RssAnon MiB", r.proc.rss_anon_peak_kib / 1024),
                    ("wall s", r.seconds),
                ):
                    m.setdefault(key, []).append(value)
        print(
            f"1-min load average on {os.cpu_count()} CPUs, before and after each transfer: "
            f"min {min(loads):.2f}, median {sorted(loads)[len(loads) // 2]:.2f}, "
            f"max {max(loads):.2f}",
            flush=True,
        )
    finally:
        if not args.dir:
            shutil.rmtree(root, ignore_errors=True)
    return results


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--size", type=parse_size, default=parse_size("1G"), help="payload size")
    p.add_argument("--pieces", type=parse_size, default=MIB, help="piece size (power of two)")
    p.add_argument("--files", type=int, default=1, help="number of files (1 = a single file)")
    add_run_arguments(p)
    p.add_argument("--dir", help="work folder, kept and reused (default: a temporary one)")
    p.add_argument("--timeout", type=float, default=600.0, help="seconds per transfer")
    p.add_argument("--profile", type=Path, help="py-spy the first ccbt seeder into this file")
    p.add_argument(
        "--enc-level",
        choices=["both", "rc4", "plaintext"],
        default="both",
        help="what the leecher's MSE handshake offers (both = libtorrent's default)",
    )
    p.add_argument(
        "--loop",
        choices=["asyncio", "uvloop"],
        default="asyncio",
        help="event loop of the ccbt seeder (uvloop must be installed)",
    )
    # internal: the ccbt seeder process
    p.add_argument("--driver", action="store_true", help=argparse.SUPPRESS)
    p.add_argument("--torrent", help=argparse.SUPPRESS)
    p.add_argument("--save", help=argparse.SUPPRESS)
    args = p.parse_args(argv)
    if args.driver:
        return _driver_main(args)
    results = bench(args)
    fmt1 = "{:.1f}".format
    fmt2 = "{:.2f}".format
    print()
    print(
        ratio_table(
            [
                ("MiB/s", fmt1),
                ("wall s", fmt2),
                ("CPU s", fmt2),
                ("user CPU s", fmt2),
                ("sys CPU s", fmt2),
                ("peak VmHWM MiB", fmt1),
                ("peak RssAnon MiB", fmt1),
            ],
            results,
            CCBT,
            LT,
        )
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
