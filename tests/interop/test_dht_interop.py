"""ccbt's DHT against two DHTs nobody here wrote: libtorrent's and WebTorrent's bittorrent-dht.

All three nodes live on 127.0.0.1 and bootstrap off each other; nothing else is contacted (the
libtorrent peer gets explicit loopback bootstrap nodes, replacing its public default).

Proved here: the nodes enter each other's routing tables; ccbt's get_peers finds the
libtorrent seeder that announced itself; libtorrent and bittorrent-dht accept ccbt's tokens
(ccbt's announce is stored by them); and a ccbt torrent with no trackers and no manual peers
completes from the seeder that the DHT alone found.
"""

from __future__ import annotations

import asyncio
import json
import os
import shutil
import subprocess
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from ccbt_engine.api import Session
from ccbt_engine.dht.node import DHTConfig, DHTNode
from tests.engine_settings import loopback_settings
from tests.interop import refpeers
from tests.interop.refpeers import LibtorrentPeer, make_payload, make_torrent, sha256_tree

pytestmark = [pytest.mark.interop, pytest.mark.timeout(120)]

LO = "127.0.0.1"
ROOT = Path(__file__).resolve().parents[2]
NPM_PREFIX = ROOT / ".npm-tools"
DHT_PACKAGE = NPM_PREFIX / "node_modules" / "bittorrent-dht" / "package.json"
DHT_SCRIPT = Path(__file__).with_name("dht_node.mjs")


def lt_dht_settings(*bootstrap: int) -> dict[str, Any]:
    """libtorrent DHT settings for a loopback-only swarm.

    By default libtorrent keeps one node per /24 in its table and per lookup (all of ours are
    127.0.0.1), drops "dark internet" (non-routable) nodes, prefers BEP 42-verified ids, and
    announces every 15 minutes: each of those would make a loopback swarm invisible to it.
    """
    return {
        "enable_dht": True,
        "dht_bootstrap_nodes": ",".join(f"{LO}:{p}" for p in bootstrap),
        "dht_restrict_routing_ips": False,
        "dht_restrict_search_ips": False,
        "dht_prefer_verified_node_ids": False,
        "dht_enforce_node_id": False,
        "dht_ignore_dark_internet": False,
        "dht_announce_interval": 5,
        "apply_filter_to_dht": False,
    }


class NpmDhtNode(refpeers._ManagedProcess):
    """bittorrent-dht under node (``dht_node.mjs``), driven over JSON lines."""

    name = "bittorrent-dht"

    def __init__(self, bootstrap: tuple[int, ...] = ()) -> None:
        super().__init__()
        self.bootstrap = bootstrap
        self.events: list[dict[str, Any]] = []
        self.node_id = ""
        self._cond = threading.Condition()
        self._next_id = 0

    def _on_stdout_line(self, line: str) -> None:
        super()._on_stdout_line(line)
        try:
            event = json.loads(line)
        except json.JSONDecodeError:
            return
        with self._cond:
            self.events.append(event)
            if event.get("type") == "ready":
                self.port = int(event["port"])
                self.node_id = str(event["id"])
            self._cond.notify_all()

    def start(self, timeout: float = 15.0) -> int:
        node = shutil.which("node")
        if node is None:
            raise refpeers.RefPeerError("node is not installed")
        if not DHT_PACKAGE.exists():
            subprocess.run(
                [str(ROOT / "scripts" / "install-npm-tools.sh")], timeout=300, check=False
            )
        if not DHT_PACKAGE.exists():
            raise refpeers.RefPeerError("npm package bittorrent-dht missing")
        argv = [node, "--input-type=module", "-e", DHT_SCRIPT.read_text(), "--", "--port", "0"]
        if self.bootstrap:
            argv += ["--bootstrap", ",".join(f"{LO}:{p}" for p in self.bootstrap)]
        # cwd: the ES module import of 'bittorrent-dht' resolves from .npm-tools/node_modules
        self._spawn(argv, stdin=True, cwd=NPM_PREFIX)
        with self._cond:
            if not self._cond.wait_for(lambda: self.port != 0, timeout):
                raise refpeers.RefPeerError("bittorrent-dht did not start:\n" + self.output_tail())
        return self.port

    def send(self, cmd: dict[str, Any], timeout: float = 15.0) -> dict[str, Any]:
        with self._cond:
            self._next_id += 1
            rid = self._next_id
        assert self._proc is not None and self._proc.stdin is not None
        self._proc.stdin.write((json.dumps({**cmd, "id": rid}) + "\n").encode())
        self._proc.stdin.flush()

        def reply() -> dict[str, Any] | None:
            return next(
                (e for e in self.events if e.get("type") == "reply" and e.get("id") == rid), None
            )

        with self._cond:
            if not self._cond.wait_for(lambda: reply() is not None, timeout):
                raise refpeers.RefPeerError(f"no reply to {cmd}:\n" + self.output_tail())
            got = reply()
            assert got is not None
            return got

    def seen(self, kind: str, info_hash: bytes) -> list[tuple[str, int]]:
        with self._cond:
            return [
                (e["host"], int(e["port"]))
                for e in self.events
                if e.get("type") == kind and e.get("info_hash") == info_hash.hex()
            ]

    def _polite_stop(self) -> None:
        if self._proc is not None:
            self._proc.terminate()


@pytest.fixture
def npm_dht() -> Iterator[NpmDhtNode]:
    try:
        node = NpmDhtNode()
        node.start()
    except refpeers.RefPeerError as exc:
        pytest.skip(f"bittorrent-dht unavailable: {exc}")
    try:
        yield node
    finally:
        node.stop()


@pytest.fixture
def small_torrent(tmp_path: Path) -> refpeers.MadeTorrent:
    payload = make_payload(tmp_path / "payload", 4 << 20, 4, seed=42)
    return make_torrent(payload, None, 256 * 1024, tmp_path / "t.torrent", "v1")


async def _until(pred: Any, timeout: float, step: float = 0.5) -> bool:
    loop = asyncio.get_running_loop()
    end = loop.time() + timeout
    while loop.time() < end:
        if await pred():
            return True
        await asyncio.sleep(step)
    return bool(await pred())


async def test_three_dhts_find_each_other_and_ccbt_finds_the_libtorrent_seeder(
    npm_dht: NpmDhtNode, small_torrent: refpeers.MadeTorrent
) -> None:
    made = small_torrent
    # ccbt joins through bittorrent-dht; libtorrent joins through both of them.
    ccbt_node = DHTNode(DHTConfig(bootstrap=((LO, npm_dht.port),), query_timeout=1.0))
    await ccbt_node.start([LO])
    settings = lt_dht_settings(npm_dht.port, ccbt_node.port)
    seeder = LibtorrentPeer(made.path, made.save_path, seed=True, extra_settings=settings)
    await seeder.start_async()
    try:
        lt_addr, npm_addr = (LO, seeder.port), (LO, npm_dht.port)

        async def knows_libtorrent() -> bool:
            await ccbt_node.bootstrap()  # libtorrent queried us, or npm tells us about it
            contact = ccbt_node.tables[4].find_addr(lt_addr)
            return contact is not None and contact.last_reply is not None

        assert await _until(knows_libtorrent, 20), [c.addr for c in ccbt_node.tables[4]]
        lt_addr, npm_addr = (LO, seeder.port), (LO, npm_dht.port)
        table = {c.addr: c for c in ccbt_node.tables[4]}
        # Both answered our queries: verified contacts, with the id bittorrent-dht reported.
        assert npm_addr in table and table[npm_addr].node_id.hex() == npm_dht.node_id
        assert table[npm_addr].last_reply is not None

        async def found() -> bool:
            return (LO, seeder.port) in await ccbt_node.get_peers(made.info_hash)

        assert await _until(found, 30), "ccbt's get_peers never returned the libtorrent seeder"

        # ccbt announces a swarm of its own; libtorrent and bittorrent-dht both store it.
        ours = os.urandom(20)
        await ccbt_node.announce_peer(ours, 40000)
        assert ccbt_node.stats["announced"] >= 2
        resp = await ccbt_node.query(lt_addr, "get_peers", {b"info_hash": ours})
        assert (LO, 40000) in resp.values, "libtorrent did not keep ccbt's announce"
        # BEP 51 against libtorrent: the swarm ccbt announced is among its samples.
        sampled = await ccbt_node.sample_infohashes(lt_addr)
        assert ours in sampled.samples and sampled.num is not None and sampled.num >= 1
        reply = await asyncio.to_thread(npm_dht.send, {"cmd": "lookup", "info_hash": ours.hex()})
        assert reply["ok"]
        assert (LO, 40000) in npm_dht.seen("peer", ours), npm_dht.output_tail()

        # And the WebTorrent node learnt ccbt as a contact (ccbt queried it and answered it).
        nodes = await asyncio.to_thread(npm_dht.send, {"cmd": "nodes"})
        assert nodes["nodes"] >= 2
    finally:
        await seeder.stop_async()
        await ccbt_node.stop()


async def test_trackerless_torrent_completes_from_a_seeder_found_only_via_dht(
    npm_dht: NpmDhtNode, small_torrent: refpeers.MadeTorrent, tmp_path: Path
) -> None:
    made = small_torrent
    seeder = LibtorrentPeer(
        made.path, made.save_path, seed=True, extra_settings=lt_dht_settings(npm_dht.port)
    )
    await seeder.start_async()
    settings = loopback_settings(
        network={
            "enable_dht": True,
            "dht_bootstrap_nodes": [f"{LO}:{seeder.port}", f"{LO}:{npm_dht.port}"],
        },
        disk={"state_dir": str(tmp_path / "state")},
    )
    try:
        async with Session(settings, listen_port=0) as session:
            handle = await session.add_torrent(made.path, tmp_path / "dl")  # no trackers, no peers
            status = await handle.wait_finished(timeout=60)
            assert status.state == "seeding"
            core = session._core
            torrent = core.torrents[made.info_hash]
            assert (LO, seeder.port) in torrent.known_peers  # handed over by the DHT loop
            assert core.dht is not None and core.dht.stats["lookups"] >= 1
            assert core.dht.stats["announced"] >= 1
        assert (tmp_path / "state" / "dht.json").exists()  # routing table persisted on stop
    finally:
        await seeder.stop_async()
    assert sha256_tree(tmp_path / "dl" / made.name) == sha256_tree(made.save_path / made.name)
