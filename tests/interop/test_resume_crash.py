"""Crash test for fast resume: ``kill -9`` a ``ccbt download`` halfway, restart it, compare.

A libtorrent seeder serves the payload; ccbt runs as a real subprocess (``python -m
ccbt_engine download``) with its state folder and config folder in the test's tmp dir and a
2-second checkpoint interval. The first run is throttled on ccbt's side (libtorrent exempts
local peers from its own limits) so the kill lands mid-way; it is killed with SIGKILL once its
resume file claims about half the pieces. Before the restart a garbage ``<infohash>.resume.tmp``
is left beside the resume file, as a kill during a resume write would leave it. The restart
(unthrottled) must:

* use the previous resume file: log ``resumed N of T pieces from checkpoint, rechecked M`` with
  N = the pieces the last resume file claims and M = 0 (no recheck, not even partial),
* delete the leftover temp file,
* re-download at most one checkpoint interval's worth of data: the seeder's total upload over
  both runs minus the payload size is what the crash cost, bounded by the throttle rate times
  (interval + in-flight request time) plus a few partial pieces,
* finish with data sha256-identical to the seeder's.

Size: the issue's 512 MiB (about 12 s here on 2 cores); ``CCBT_RESUME_CRASH_MIB=128`` for a
quicker run.
"""

from __future__ import annotations

import os
import re
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from ccbt_engine.storage.resume import ResumeError, decode_resume
from tests.interop.refpeers import LibtorrentPeer, make_payload, make_torrent, sha256_tree

pytestmark = [pytest.mark.interop, pytest.mark.timeout(240)]

MIB = 1024 * 1024
SIZE_MIB = int(os.environ.get("CCBT_RESUME_CRASH_MIB", "512"))
PIECE = 256 * 1024
CHECKPOINT_INTERVAL = 2
#: first-run download limit (KiB/s): the first half takes about 4 s whatever the size
THROTTLE_KIB = max(16 * 1024, SIZE_MIB * 1024 // 8)
#: requests ccbt keeps in flight to one peer at most (1000 blocks); the seeder counts what it
#: sent for them as uploaded even when the kill came before ccbt read it
MAX_IN_FLIGHT = 1000 * 16 * 1024


def _ccbt_env(tmp: Path, *, throttle: bool) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("CCBT_")}
    env.update(
        {
            "CCBT_STATE_DIR": str(tmp / "state"),
            "CCBT_CONFIG_DIR": str(tmp / "config"),
            "CCBT_DISK_CHECKPOINT_INTERVAL": str(CHECKPOINT_INTERVAL),
            "CCBT_NETWORK_LISTEN_INTERFACES": "127.0.0.1",
            "CCBT_NETWORK_ENABLE_DHT": "false",
            "CCBT_NETWORK_ENABLE_LSD": "false",
            "CCBT_NETWORK_ENABLE_UPNP": "false",
            "CCBT_NETWORK_ENABLE_NATPMP": "false",
            "PYTHONUNBUFFERED": "1",
        }
    )
    if throttle:
        env["CCBT_LIMITS_GLOBAL_DOWN_KIB"] = str(THROTTLE_KIB)
    return env


def _start_ccbt(
    torrent: Path, out: Path, seeder_port: int, tmp: Path, log: Path, *, throttle: bool
) -> subprocess.Popen[bytes]:
    argv = [sys.executable, "-m", "ccbt_engine", "-v", "download", str(torrent)]
    argv += ["-o", str(out), "--peer", f"127.0.0.1:{seeder_port}", "--port", "0"]
    with log.open("wb") as fh:
        return subprocess.Popen(
            argv,
            stdin=subprocess.DEVNULL,
            stdout=fh,
            stderr=subprocess.STDOUT,
            env=_ccbt_env(tmp, throttle=throttle),
            cwd=tmp,
        )


def _claimed(resume: Path) -> int:
    """Pieces the resume file claims now (0 while it is missing)."""
    try:
        return decode_resume(resume.read_bytes()).claimed()
    except (OSError, ResumeError):
        return 0


def test_kill_9_midway_then_resume(tmp_path: Path) -> None:
    payload = make_payload(tmp_path / "seed", SIZE_MIB * MIB, 4, seed=512)
    made = make_torrent(payload, None, PIECE, tmp_path / "t.torrent", "v1")
    assert made.info_hash_v1 is not None
    info_hash = made.info_hash_v1.hex()
    num_pieces = -(-SIZE_MIB * MIB // PIECE)
    resume = tmp_path / "state" / "torrents" / f"{info_hash}.resume"
    out = tmp_path / "dl"

    with LibtorrentPeer(made.path, made.save_path, seed=True) as seeder:
        # -- run 1: throttled, killed with SIGKILL once the checkpoint claims ~half -----------
        proc = _start_ccbt(
            made.path, out, seeder.port, tmp_path, tmp_path / "run1.log", throttle=True
        )
        try:
            deadline = time.monotonic() + 60
            while _claimed(resume) < num_pieces // 2:
                assert proc.poll() is None, (tmp_path / "run1.log").read_text()[-3000:]
                assert time.monotonic() < deadline, "run 1 made no progress"
                time.sleep(0.05)
            proc.send_signal(signal.SIGKILL)
        finally:
            if proc.poll() is None:
                proc.kill()
            proc.wait(10)
        uploaded_run1 = seeder.status()["total_upload"]
        last = decode_resume(resume.read_bytes())  # what the restart will find
        assert not last.clean, "a killed process cannot have written a clean checkpoint"
        assert num_pieces // 2 <= last.claimed() < num_pieces, "the kill did not land mid-way"

        # -- a kill during a resume write leaves a temp file; the old resume must win ---------
        leftover = resume.with_name(resume.name + ".tmp")
        leftover.write_bytes(b"d19:ccbt-resume-versioni1e9:info-hash20:\x00\x01")

        # -- run 2: unthrottled, must finish from the checkpoint --------------------------------
        started = time.monotonic()
        proc = _start_ccbt(
            made.path, out, seeder.port, tmp_path, tmp_path / "run2.log", throttle=False
        )
        try:
            code = proc.wait(120)
        finally:
            if proc.poll() is None:
                proc.kill()
                proc.wait(10)
        elapsed = time.monotonic() - started
        log = (tmp_path / "run2.log").read_text()
        assert code == 0, log[-3000:]
        uploaded_total = seeder.status()["total_upload"]

    match = re.search(r"resumed (\d+) of (\d+) pieces from checkpoint, rechecked (\d+)", log)
    assert match, log[-3000:]
    trusted, total, rechecked = map(int, match.groups())
    assert total == num_pieces
    assert trusted == last.claimed(), "the previous resume file was not the one used"
    assert rechecked == 0, "pieces were rechecked although nothing was doubtful"
    assert "left by an interrupted write" in log and not leftover.exists()

    # what the crash cost: bytes sent twice (pieces verified after the last checkpoint, partial
    # pieces, requests in flight at the kill)
    payload_bytes = SIZE_MIB * MIB
    wasted = uploaded_total - payload_bytes
    allowed = THROTTLE_KIB * 1024 * CHECKPOINT_INTERVAL + MAX_IN_FLIGHT + 16 * PIECE
    print(
        f"\n{SIZE_MIB} MiB: killed at {last.claimed()}/{num_pieces} pieces checkpointed, "
        f"seeder sent {uploaded_run1 / MIB:.1f} MiB in run 1, "
        f"{(uploaded_total - uploaded_run1) / MIB:.1f} MiB in run 2 ({elapsed:.1f} s); "
        f"re-sent {wasted / MIB:.1f} MiB (allowed {allowed / MIB:.1f} MiB)"
    )
    assert uploaded_total >= payload_bytes - PIECE
    assert wasted <= allowed
    assert sha256_tree(out / made.name) == sha256_tree(payload)
