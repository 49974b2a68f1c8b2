"""The reference-peer harness works: real transfers between reference clients only (no ccbt).

If these fail, an interop failure involving ccbt says nothing about ccbt. Each transfer test
checks the downloaded tree is SHA-256-identical to the payload, so a harness that "finishes"
without moving the data cannot pass.
"""

from __future__ import annotations

import json
import signal
import subprocess
import sys
import time
import urllib.parse
import urllib.request
from pathlib import Path

import pytest

from tests.interop import refpeers
from tests.interop.refpeers import (
    Aria2Peer,
    LibtorrentPeer,
    MiniTracker,
    OpenTracker,
    RefPeerError,
    TransmissionPeer,
    make_torrent,
    sha256_tree,
)

pytest.importorskip("libtorrent")
pytestmark = pytest.mark.interop

PIECE = 256 * 1024


def _same_data(payload: Path, download_root: Path) -> None:
    got = sha256_tree(download_root / payload.name)
    assert got == sha256_tree(payload), "downloaded tree differs from the payload"


async def test_libtorrent_to_libtorrent_by_connect_command(
    payload_16m: Path, tmp_path: Path
) -> None:
    """No tracker: the leecher is told to connect, the way tests will point peers at ccbt."""
    t = make_torrent(payload_16m, None, PIECE, tmp_path / "t.torrent")
    seeder = LibtorrentPeer(t.path, t.save_path, seed=True)
    leecher = LibtorrentPeer(t.path, tmp_path / "dl", seed=False)
    # The async API keeps an event loop (ccbt's, in real tests) running meanwhile.
    seed_port = await seeder.start_async()
    await leecher.start_async()
    try:
        assert seeder.info_hash_v1 == t.info_hash.hex()
        assert (await leecher.status_async())["progress"] == 0.0
        await leecher.connect_async("127.0.0.1", seed_port)
        final = await leecher.wait_finished_async(30)
        assert final["total_done"] == t.total_size
        assert seeder.status()["total_upload"] >= t.total_size
        assert not leecher.alerts("hash_failed")
    finally:
        await leecher.stop_async()
        await seeder.stop_async()
    _same_data(payload_16m, tmp_path / "dl")


def test_libtorrent_seeder_to_aria2_leecher_via_mini_tracker(
    payload_16m: Path, tmp_path: Path, mini_tracker: MiniTracker, aria2c: str
) -> None:
    t = make_torrent(payload_16m, mini_tracker.announce_url, PIECE, tmp_path / "t.torrent")
    with LibtorrentPeer(t.path, t.save_path, seed=True) as seeder:
        mini_tracker.wait_for_peers(t.info_hash, 1)  # seeder announced before aria2 asks
        with Aria2Peer(t.path, tmp_path / "dl", seed=False) as leecher:
            status = leecher.wait_finished(30)
            assert status["completedLength"] == t.total_size
        assert seeder.status()["total_upload"] >= t.total_size
    _same_data(payload_16m, tmp_path / "dl")
    events = {(a["port"], a["event"]) for a in mini_tracker.announces}
    assert (seeder.port, "started") in events


def test_aria2_seeder_to_libtorrent_leecher_via_mini_tracker(
    payload_16m: Path, tmp_path: Path, mini_tracker: MiniTracker, aria2c: str
) -> None:
    t = make_torrent(payload_16m, mini_tracker.announce_url, PIECE, tmp_path / "t.torrent")
    with Aria2Peer(t.path, t.save_path, seed=True) as seeder:
        mini_tracker.wait_for_peers(t.info_hash, 1)
        # aria2 speaks no uTP: a TCP-only libtorrent skips the uTP attempt that would time out.
        with LibtorrentPeer(t.path, tmp_path / "dl", seed=False, tcp_only=True) as leecher:
            leecher.wait_finished(30)
        assert seeder.status()["uploadLength"] >= t.total_size
        # aria2 also serves a peer that dials its port directly (how ccbt will reach it).
        quiet = make_torrent(payload_16m, None, PIECE, tmp_path / "quiet.torrent")
        with LibtorrentPeer(quiet.path, tmp_path / "dl2", seed=False, tcp_only=True) as direct:
            direct.connect("127.0.0.1", seeder.port)
            direct.wait_finished(30)
    _same_data(payload_16m, tmp_path / "dl")
    _same_data(payload_16m, tmp_path / "dl2")


def test_mini_tracker_add_peer_points_aria2_at_a_listener(
    payload_16m: Path, tmp_path: Path, mini_tracker: MiniTracker, aria2c: str
) -> None:
    """How a test points aria2 at ccbt: the seeder is known only through ``add_peer``."""
    t = make_torrent(payload_16m, mini_tracker.announce_url, PIECE, tmp_path / "t.torrent")
    # A libtorrent seeder that never announces (no tracker in its copy) stands in for ccbt.
    quiet = make_torrent(payload_16m, None, PIECE, tmp_path / "quiet.torrent")
    with LibtorrentPeer(quiet.path, quiet.save_path, seed=True) as seeder:
        mini_tracker.add_peer(t.info_hash, "127.0.0.1", seeder.port)
        with Aria2Peer(t.path, tmp_path / "dl", seed=False) as leecher:
            leecher.wait_finished(30)
    _same_data(payload_16m, tmp_path / "dl")


@pytest.mark.parametrize("scheme", ["http", "udp"])
def test_opentracker_brings_libtorrent_peers_together(
    payload_16m: Path, tmp_path: Path, open_tracker: OpenTracker, scheme: str
) -> None:
    url = open_tracker.announce_url if scheme == "http" else open_tracker.udp_url
    t = make_torrent(payload_16m, url, PIECE, tmp_path / "t.torrent")
    open_tracker.allow(t.info_hash)
    with LibtorrentPeer(t.path, t.save_path, seed=True) as seeder:
        seeder.wait_for(lambda _: bool(seeder.alerts("tracker_reply")), 10)
        with LibtorrentPeer(t.path, tmp_path / "dl", seed=False, tcp_only=True) as leecher:
            leecher.wait_finished(30)
    _same_data(payload_16m, tmp_path / "dl")


def test_libtorrent_seeder_to_transmission_leecher(tmp_path: Path) -> None:
    """Transmission never dials 127.x peers, so the seeder connects to it (as ccbt will)."""
    try:
        refpeers.ensure_apt_binary("transmission-cli", "transmission-cli")
    except RefPeerError as exc:
        pytest.skip(str(exc))
    # Transmission waits for its 10 s rechoke before it asks for data: keep the payload small.
    payload = refpeers.make_payload(tmp_path / "src", 1 << 20, 3, seed=7)
    t = make_torrent(payload, None, 32 * 1024, tmp_path / "t.torrent")
    with (
        LibtorrentPeer(t.path, t.save_path, seed=True, tcp_only=True) as seeder,
        TransmissionPeer(t.path, tmp_path / "dl", seed=False) as leecher,
    ):
        seeder.connect("127.0.0.1", leecher.port)
        assert leecher.wait_finished(30)["progress"] == 1.0
    _same_data(payload, tmp_path / "dl")


def test_encryption_policy_reaches_libtorrent(payload_16m: Path, tmp_path: Path) -> None:
    """forced↔forced transfers (over RC4); forced↔disabled cannot talk at all."""
    t = make_torrent(payload_16m, None, PIECE, tmp_path / "t.torrent")
    with LibtorrentPeer(
        t.path, t.save_path, seed=True, enc="forced", enc_level="rc4", tcp_only=True
    ) as seeder:
        with LibtorrentPeer(
            t.path, tmp_path / "plain", seed=False, enc="disabled", tcp_only=True
        ) as plain:
            plain.connect("127.0.0.1", seeder.port)
            time.sleep(1.5)
            assert plain.status()["total_done"] == 0
            assert plain.alerts("peer_disconnected") or seeder.alerts("peer_disconnected")
        with LibtorrentPeer(
            t.path, tmp_path / "dl", seed=False, enc="forced", enc_level="rc4", tcp_only=True
        ) as leecher:
            leecher.connect("127.0.0.1", seeder.port)
            leecher.wait_finished(30)
    _same_data(payload_16m, tmp_path / "dl")


def _announce(tracker: MiniTracker, info_hash: bytes, port: int, **extra: str) -> bytes:
    query = urllib.parse.urlencode(
        {"info_hash": info_hash, "peer_id": b"-XX0000-" + b"%012d" % port, "port": port, **extra}
    )
    opener = urllib.request.build_opener(urllib.request.ProxyHandler({}))
    with opener.open(f"{tracker.announce_url}?{query}", timeout=5) as resp:
        body: bytes = resp.read()
    return body


def _compact(body: bytes) -> list[int]:
    """Ports of the compact peer list in a reply (all peers here are 127.0.0.1)."""
    start = body.index(b"5:peers") + len(b"5:peers")
    length, rest = body[start:].split(b":", 1)
    raw = rest[: int(length)]
    assert all(raw[i : i + 4] == bytes([127, 0, 0, 1]) for i in range(0, len(raw), 6))
    return sorted(int.from_bytes(raw[i + 4 : i + 6], "big") for i in range(0, len(raw), 6))


def test_mini_tracker_protocol(mini_tracker: MiniTracker) -> None:
    ih = bytes(range(20))
    assert _compact(_announce(mini_tracker, ih, 1001, event="started")) == []
    assert _compact(_announce(mini_tracker, ih, 1002)) == [1001]  # never the requester
    mini_tracker.add_peer(ih.hex(), "127.0.0.1", 2000)
    assert _compact(_announce(mini_tracker, ih, 1003, compact="1")) == [1001, 1002, 2000]
    assert len(_compact(_announce(mini_tracker, ih, 1003, numwant="1"))) == 1
    _announce(mini_tracker, ih, 1001, event="stopped")
    assert _compact(_announce(mini_tracker, ih, 1003)) == [1002, 2000]
    listed = _announce(mini_tracker, ih, 1003, compact="0")
    assert b"4:porti1002e" in listed and b"2:ip9:127.0.0.1" in listed
    assert b"failure reason" in _announce(mini_tracker, b"short", 1004)
    assert sorted(mini_tracker.peers(ih)) == [("127.0.0.1", p) for p in (1002, 1003, 2000)]
    assert mini_tracker.announces[0]["event"] == "started"
    assert mini_tracker.announces[0]["info_hash"] == ih
    opener = urllib.request.build_opener(urllib.request.ProxyHandler({}))
    scrape = f"http://127.0.0.1:{mini_tracker.port}/scrape?" + urllib.parse.urlencode(
        {"info_hash": ih}
    )
    with opener.open(scrape, timeout=5) as resp:
        assert b"8:completei3e" in resp.read()  # announces without "left" count as seeds


def test_lt_peer_rejects_bad_commands_and_stops_cleanly(tmp_path: Path) -> None:
    payload = refpeers.make_payload(tmp_path / "src", 100_000, 2, seed=1)
    t = make_torrent(payload, None, 16384, tmp_path / "t.torrent")
    peer = LibtorrentPeer(t.path, t.save_path, seed=True)
    peer.start()
    assert peer.pid in refpeers.live_pids()
    with pytest.raises(RefPeerError, match="unknown command"):
        peer.send({"cmd": "explode"})
    with pytest.raises(RefPeerError, match="KeyError"):
        peer.send({"cmd": "connect", "host": "127.0.0.1"})  # no port
    assert peer.running  # a bad command never kills the reference peer
    started = time.monotonic()
    assert peer.stop() == 0  # the quit command, not a signal
    assert time.monotonic() - started < 2.5
    assert peer.pid not in refpeers.live_pids()
    assert any(e.get("type") == "bye" for e in peer.events)


def test_libtorrent_seeder_with_bad_data_fails_fast(tmp_path: Path) -> None:
    """A seeder whose data is wrong must say so, not leave the leecher waiting for a timeout."""
    payload = refpeers.make_payload(tmp_path / "src", 200_000, 2, seed=4)
    t = make_torrent(payload, None, 16384, tmp_path / "t.torrent")
    victim = next(payload.glob("file*.bin"))
    data = bytearray(victim.read_bytes())
    data[100] ^= 0xFF
    victim.write_bytes(bytes(data))
    started = time.monotonic()
    with pytest.raises(RefPeerError, match="fails the check"):
        LibtorrentPeer(t.path, t.save_path, seed=True).start(timeout=20)
    assert time.monotonic() - started < 10
    assert refpeers.live_pids() == []


def test_aria2_seeder_with_bad_data_fails_fast(tmp_path: Path, aria2c: str) -> None:
    payload = refpeers.make_payload(tmp_path / "src", 2_000_000, 2, seed=5)
    t = make_torrent(payload, None, 65536, tmp_path / "t.torrent")
    victim = next(payload.glob("file*.bin"))
    data = bytearray(victim.read_bytes())
    data[100] ^= 0xFF
    victim.write_bytes(bytes(data))
    with pytest.raises(RefPeerError, match="fails the check"):
        Aria2Peer(t.path, t.save_path, seed=True).start(timeout=20)
    assert refpeers.live_pids() == []


def test_lt_peer_exits_when_its_parent_goes_away(tmp_path: Path) -> None:
    """stdin closing (the harness died) makes lt_peer quit: nothing outlives the tests."""
    payload = refpeers.make_payload(tmp_path / "src", 50_000, 1, seed=2)
    t = make_torrent(payload, None, 16384, tmp_path / "t.torrent")
    argv = LibtorrentPeer(t.path, t.save_path, seed=True).argv()
    proc = subprocess.Popen(argv, stdin=subprocess.PIPE, stdout=subprocess.PIPE)
    try:
        assert proc.stdout is not None and proc.stdin is not None
        ready = json.loads(proc.stdout.readline())
        while ready["type"] != "ready":  # alerts (listen_succeeded ...) come first
            ready = json.loads(proc.stdout.readline())
        assert ready["port"] > 0
        proc.stdin.close()
        assert proc.wait(5) == 0
    finally:
        proc.kill()
        proc.wait()


class _Stubborn(refpeers._ManagedProcess):
    """A child ignoring SIGTERM and SIGINT, with a grandchild in its process group."""

    name = "stubborn"

    def start(self) -> int:
        script = "trap '' TERM INT; sleep 60 & echo $!; wait"
        self._spawn(["sh", "-c", script])
        deadline = time.monotonic() + 5
        while not self._tail and time.monotonic() < deadline:
            time.sleep(0.01)
        return 0


def test_stop_escalates_to_sigkill_and_reaps_the_group() -> None:
    proc = _Stubborn()
    proc.start()
    grandchild = int(proc.output_tail(1))
    assert proc.stop(timeout=0.6) == -signal.SIGKILL
    time.sleep(0.1)
    # Orphaned, it may linger as a zombie if PID 1 does not reap (containers); never running.
    stat = Path(f"/proc/{grandchild}/stat")
    assert not stat.exists() or stat.read_text().split(") ", 1)[1][0] == "Z"


def test_payload_and_hash_helpers(tmp_path: Path) -> None:
    a = refpeers.make_payload(tmp_path / "a", 1_000_000, 9, seed=3)
    b = refpeers.make_payload(tmp_path / "b", 1_000_000, 9, seed=3)
    sizes = [f.stat().st_size for f in a.rglob("*") if f.is_file()]
    assert len(sizes) == 9 and sum(sizes) == 1_000_000 and min(sizes) >= 1
    assert sha256_tree(a) == sha256_tree(b)
    assert sha256_tree(a) != sha256_tree(refpeers.make_payload(tmp_path / "c", 1_000_000, 9))
    (a / ".pad").mkdir()
    (a / ".pad" / "16384").write_bytes(b"\0" * 16384)
    (a / "file000.bin.aria2").write_bytes(b"control")
    assert sha256_tree(a) == sha256_tree(b)
    assert len(sha256_tree(a, ignore_pad=False)) == 10
    one = next(a.glob("file000.bin"))
    assert sha256_tree(one) == {"file000.bin": sha256_tree(a)["file000.bin"]}


def test_refpeers_loads_by_path_without_the_tests_package() -> None:
    """Benchmarks import the harness by file path; it must not need ``tests`` or ccbt."""
    code = (
        "import importlib.util, sys\n"
        f"spec = importlib.util.spec_from_file_location('rp', {str(refpeers.__file__)!r})\n"
        "m = importlib.util.module_from_spec(spec); sys.modules['rp'] = m\n"
        "spec.loader.exec_module(m)\n"
        "assert 'ccbt_engine' not in sys.modules and 'tests' not in sys.modules\n"
        "print(m.free_port() > 0)\n"
    )
    out = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, check=True, cwd="/"
    )
    assert out.stdout.strip() == "True"
