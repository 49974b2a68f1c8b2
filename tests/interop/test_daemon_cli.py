"""``ccbt daemon`` as a real process: a torrent added over the REST API downloads from
libtorrent, ``ccbt dashboard --once`` shows it done, SIGTERM saves the resume state, and after
a restart the torrent is back and seeds to a libtorrent leecher.

Config and state live in temporary folders (``CCBT_CONFIG_DIR``, ``CCBT_STATE_DIR``); the
password comes from ``CCBT_REMOTE_PASSWORD`` since this headless machine has no OS keyring.
"""

from __future__ import annotations

import asyncio
import json
import os
import queue
import re
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Awaitable, Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from ccbt_engine.remote.client import RemoteClient
from tests.interop.refpeers import LibtorrentPeer, free_port, make_torrent, sha256_tree

pytestmark = [pytest.mark.interop, pytest.mark.timeout(240)]

USER, PASSWORD = "seedbox", "correct horse battery staple"
PIECE = 256 * 1024
CONFIG = """\
[network]
listen_interfaces = ["127.0.0.1"]
enable_dht = false
enable_lsd = false
enable_upnp = false
enable_natpmp = false

[remote]
username = "seedbox"
"""
_URL = re.compile(r"remote API on (http://\S+/api/v1)")


class Daemon:
    """``python -m ccbt_engine daemon --port 0`` with its stderr collected by a thread."""

    def __init__(self, env: dict[str, str]) -> None:
        self.env = env
        self.lines: list[str] = []
        self._lines: queue.Queue[str | None] = queue.Queue()
        self.proc: subprocess.Popen[str] | None = None

    def start(self, timeout: float = 60.0) -> str:
        """Start and return the API's base URL from the daemon's log line."""
        argv = [sys.executable, "-m", "ccbt_engine", "daemon", "--port", "0", "--listen-port", "0"]
        self.proc = subprocess.Popen(
            argv,
            env=self.env,
            stdin=subprocess.DEVNULL,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.PIPE,
            text=True,
            start_new_session=True,
        )
        threading.Thread(target=self._read, args=(self.proc,), daemon=True).start()
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            try:
                line = self._lines.get(timeout=max(0.0, deadline - time.monotonic()))
            except queue.Empty:
                break
            if line is None:
                break
            if match := _URL.search(line):
                return match.group(1)
        raise AssertionError("daemon did not report its URL:\n" + "".join(self.lines))

    def _read(self, proc: subprocess.Popen[str]) -> None:
        assert proc.stderr is not None
        for line in proc.stderr:
            self.lines.append(line)
            self._lines.put(line)
        self._lines.put(None)

    def terminate(self, timeout: float = 60.0) -> int:
        """SIGTERM and wait; returns the exit status."""
        assert self.proc is not None
        self.proc.send_signal(signal.SIGTERM)
        return self.proc.wait(timeout)

    def kill(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            os.killpg(self.proc.pid, signal.SIGKILL)
            self.proc.wait(10)


@pytest.fixture
def env(tmp_path: Path) -> dict[str, str]:
    (tmp_path / "config").mkdir()
    (tmp_path / "config" / "config.toml").write_text(CONFIG)
    base = {k: v for k, v in os.environ.items() if not k.upper().startswith("CCBT_")}
    return {
        **base,
        "CCBT_CONFIG_DIR": str(tmp_path / "config"),
        "CCBT_STATE_DIR": str(tmp_path / "state"),
        "CCBT_REMOTE_PASSWORD": PASSWORD,
        "COLUMNS": "160",
    }


@pytest.fixture
def daemons(env: dict[str, str]) -> Iterator[Callable[[], Daemon]]:
    started: list[Daemon] = []

    def make() -> Daemon:
        started.append(Daemon(env))
        return started[-1]

    yield make
    for d in started:
        d.kill()
        print("".join(d.lines))  # shown by pytest only when the test failed


async def _until(pred: Callable[[], Awaitable[bool]], timeout: float, what: str) -> None:
    deadline = time.monotonic() + timeout
    while not await pred():
        if time.monotonic() > deadline:
            pytest.fail(f"timed out waiting for {what}")
        await asyncio.sleep(0.2)


async def _torrent(client: RemoteClient, ih: str) -> dict[str, Any]:
    by_hash = {t["info_hash"]: t for t in await client.torrents()}
    return by_hash.get(ih, {})


async def test_daemon_rest_dashboard_and_restart(
    daemons: Callable[[], Daemon], env: dict[str, str], payload_16m: Path, tmp_path: Path
) -> None:
    made = make_torrent(payload_16m, None, PIECE, tmp_path / "t.torrent", "v1")
    assert made.info_hash_v1 is not None
    ih = made.info_hash_v1.hex()
    dl = tmp_path / "dl"

    async def done(client: RemoteClient) -> bool:
        t = await _torrent(client, ih)
        return t.get("state") == "seeding" and t.get("progress") == 1.0

    daemon = daemons()
    url = daemon.start()
    with LibtorrentPeer(made.path, made.save_path, seed=True) as seeder:
        async with RemoteClient(url, USER, PASSWORD) as client:
            added = await client.add_torrent(made.path, dl)
            assert added["info_hash"] == ih
            await client.connect_peer(ih, "127.0.0.1", seeder.port)
            await _until(lambda: done(client), 120, "the download from libtorrent")
        port = url.rsplit(":", 1)[1].split("/")[0]
        shown = await asyncio.to_thread(
            subprocess.run,
            [sys.executable, "-m", "ccbt_engine", "dashboard", "--once", "--port", port],
            env=env,
            capture_output=True,
            text=True,
            timeout=60,
        )
    assert shown.returncode == 0, shown.stderr
    row = next(line for line in shown.stdout.splitlines() if made.name in line)
    assert "100.0 %" in row and "seeding" in row, shown.stdout
    assert "TorrentFinished" in shown.stdout
    assert sha256_tree(dl / made.name) == sha256_tree(payload_16m)

    assert await asyncio.to_thread(daemon.terminate) == 0, "".join(daemon.lines)
    assert "stopped" in daemon.lines[-1]
    state = tmp_path / "state"
    assert json.loads((state / "session.json").read_text())["torrents"] == [ih]
    assert (state / "torrents" / f"{ih}.resume").stat().st_size > 0

    # restart: the torrent comes back from the state folder and seeds to a fresh leecher
    daemon = daemons()
    url = daemon.start()
    async with RemoteClient(url, USER, PASSWORD) as client:
        await _until(lambda: done(client), 60, "the restored torrent to seed")
        listen_port = (await client.session())["listen_port"]
        (tmp_path / "lt").mkdir()
        with LibtorrentPeer(made.path, tmp_path / "lt", seed=False) as leecher:
            leecher.connect("127.0.0.1", listen_port)
            await asyncio.to_thread(leecher.wait_finished, 120)
        assert (await _torrent(client, ih))["uploaded"] > 0
    assert sha256_tree(tmp_path / "lt" / made.name) == sha256_tree(payload_16m)
    assert await asyncio.to_thread(daemon.terminate) == 0, "".join(daemon.lines)


def _ccbt(env: dict[str, str], *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "ccbt_engine", *args],
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
    )


def _scrape(port: int) -> str:
    import urllib.request

    with urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=10) as reply:
        return str(reply.read().decode())


async def test_remote_cli_metrics_and_live_config(
    daemons: Callable[[], Daemon], env: dict[str, str], tmp_path: Path
) -> None:
    """``ccbt remote`` commands against the daemon process; its Prometheus endpoint; and a
    config change (``ccbt config set``) applied without a restart."""
    metrics, moved = free_port(), free_port()
    config = tmp_path / "config" / "config.toml"
    config.write_text(
        CONFIG + f"\n[observability]\nenable_metrics = true\nmetrics_port = {metrics}\n"
    )
    data = tmp_path / "seed" / "data.bin"
    data.parent.mkdir()
    data.write_bytes(os.urandom(300_000))
    made = make_torrent(data, None, 16384, tmp_path / "r.torrent", "v1")
    assert made.info_hash_v1 is not None
    ih = made.info_hash_v1.hex()
    url = daemons().start()
    port = url.rsplit(":", 1)[1].split("/")[0]
    run = lambda *a: asyncio.to_thread(_ccbt, env, "remote", "--port", port, *a)  # noqa: E731

    added = await run("add", str(made.path), "--paused", "-o", str(data.parent))
    assert added.returncode == 0 and ih in added.stdout, added.stderr
    listed = await run("list")
    assert "paused" in listed.stdout and ih[:12] in listed.stdout, listed.stdout
    resumed = await run("resume", ih[:8])
    assert resumed.returncode == 0, resumed.stderr

    async def seeding() -> bool:
        shown = await run("list", "--json")
        return json.loads(shown.stdout)[0]["state"] == "seeding"

    await _until(seeding, 60, "the resumed torrent to seed")
    assert 'ccbt_torrents{state="seeding"} 1.0' in await asyncio.to_thread(_scrape, metrics)
    queued = await run("queue", "top", ih[:8])
    assert queued.returncode == 0 and "#1 (already there)" in queued.stdout, queued.stderr
    relocated = await run("move", ih[:8], str(tmp_path / "relocated"), "--wait")
    assert relocated.returncode == 0, relocated.stderr
    assert (tmp_path / "relocated" / "data.bin").exists() and not data.exists()
    limits = await run("limits", "--down", "100")
    assert "down 100.0 KiB/s" in limits.stdout, limits.stdout

    wrong = await asyncio.to_thread(
        _ccbt, {**env, "CCBT_REMOTE_PASSWORD": "nope"}, "remote", "--port", port, "status"
    )
    assert wrong.returncode == 1 and "refused our credentials" in wrong.stderr
    ambiguous = await run("pause", "zz")
    assert ambiguous.returncode == 1 and "matches no torrent" in ambiguous.stderr

    # a config change reaches the running daemon: the metrics endpoint moves
    set_port = await asyncio.to_thread(
        _ccbt, env, "config", "set", "observability.metrics_port", str(moved)
    )
    assert set_port.returncode == 0, set_port.stderr

    async def moved_there() -> bool:
        try:
            return "ccbt_torrents" in await asyncio.to_thread(_scrape, moved)
        except OSError:
            return False

    await _until(moved_there, 30, "the metrics endpoint to move")

    removed = await run("remove", ih[:10])
    assert removed.returncode == 0 and f"removed {ih}" in removed.stdout
    assert json.loads((await run("list", "--json")).stdout) == []
