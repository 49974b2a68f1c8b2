"""Glue between the DHT node and the session/torrents: start-up from settings, the per-torrent
get_peers/announce_peer cycle.

Kept out of ``session.py`` and ``torrent.py`` so those files only carry one-line hooks.
"""

from __future__ import annotations

import asyncio
import logging
import random
from collections.abc import Callable, Coroutine, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

import platformdirs

from ccbt_engine.dht.node import DHTConfig, DHTNode, DHTQueryError, looks_like_krpc
from ccbt_engine.net.proxy import udp_block_reason

if TYPE_CHECKING:
    from ccbt_engine.session import SessionCore
    from ccbt_engine.torrent import Torrent

__all__ = [
    "ANNOUNCE_INTERVAL",
    "DHT_KEYS",
    "apply_dht_settings",
    "parse_host_port",
    "peer_loop",
    "start_session_dht",
    "torrent_dht_job",
]

log = logging.getLogger(__name__)

#: How often a torrent looks itself up and re-announces (BEP 5 peers expire after 30 minutes).
ANNOUNCE_INTERVAL = 15 * 60.0
#: First retries while a lookup finds nobody (the table may still be filling): 5 s, 10 s, 20 s …
_FIRST_RETRY = 5.0
_IDLE_CHECK = 30.0

AddPeers = Callable[[Sequence[tuple[str, int]], str], None]


def parse_host_port(text: str) -> tuple[str, int]:
    """``host:port`` or ``[v6]:port`` into a pair; ValueError when it is neither."""
    host, sep, port = text.strip().rpartition(":")
    if not sep or not host or not port.isdigit() or not 0 < int(port) < 65536:
        raise ValueError(f"not host:port: {text!r}")
    if host.startswith("[") and host.endswith("]"):
        host = host[1:-1]
    return host, int(port)


def _state_path(session: SessionCore) -> Path:
    folder = session.settings.disk.state_dir
    base = Path(folder) if folder is not None else platformdirs.user_data_path("ccbt")
    return base / "dht.json"


async def start_session_dht(session: SessionCore) -> DHTNode | None:
    """A running node bound like the peer listener (``dht_port`` or the listen port).

    A DHT that cannot start (port taken) must not stop the session: log it and go without.
    """
    net = session.settings.network
    if (blocked := udp_block_reason(net)) is not None:
        log.info("dht: %s", blocked)
        return None
    bootstrap = []
    for entry in net.dht_bootstrap_nodes:
        try:
            bootstrap.append(parse_host_port(entry))
        except ValueError as exc:
            log.warning("dht: ignoring bootstrap node: %s", exc)
    config = DHTConfig(
        bootstrap=tuple(bootstrap),
        state_path=_state_path(session),
        is_blocked=session.is_blocked,
    )
    node = DHTNode(config)
    if session.utp is not None and net.dht_port in (0, session.listen_port):
        # one UDP port for uTP and the DHT: KRPC datagrams start with "d", uTP headers never do
        await node.load_state()
        node.attach(session.utp.sendto, session.listen_port)
        session.utp.register_handler(looks_like_krpc, node.datagram_received)
        log.info("dht: node %s sharing UDP port %d with uTP", node.node_id.hex(), node.port)
        return node
    hosts = [h for h in net.listen_interfaces if net.enable_ipv6 or ":" not in h]
    try:
        await node.start(hosts, net.dht_port or session.listen_port)
    except OSError as exc:
        log.warning(
            "dht: cannot listen on UDP port %d: %s", net.dht_port or session.listen_port, exc
        )
        await node.stop()
        return None
    log.info("dht: node %s on UDP port %d", node.node_id.hex(), node.port)
    return node


async def peer_loop(
    node_source: Callable[[], DHTNode | None],
    info_hash: bytes,
    add_peers: AddPeers,
    announce_port: Callable[[], int | None] | None = None,
    *,
    interval: float = ANNOUNCE_INTERVAL,
) -> None:
    """Look ``info_hash`` up now and every ``interval`` (jittered), announcing when asked to.

    Runs until cancelled (the torrent's tasks are cancelled when it stops). Peers go to
    ``add_peers(addresses, "dht")``, which already ignores ones it knows. ``node_source`` is
    asked every cycle, so a DHT switched on, off or moved by a settings change is followed.
    """
    retry = _FIRST_RETRY
    while True:
        node = node_source()
        if node is None:  # DHT off: look again now and then, in case it is switched on
            await asyncio.sleep(_IDLE_CHECK)
            continue
        await node.wait_bootstrapped(30.0)
        port = announce_port() if announce_port is not None else None
        try:
            peers = await node.get_peers(info_hash, announce_port=port or None)
        except DHTQueryError as exc:
            log.debug("dht: lookup of %s failed: %s", info_hash.hex(), exc)
            peers = []
        if peers:
            add_peers(peers, "dht")
        if peers or retry >= interval:
            wait = interval * random.uniform(0.9, 1.1)
        else:
            wait, retry = retry, retry * 2
        await asyncio.sleep(wait)


def torrent_dht_job(torrent: Torrent) -> Coroutine[Any, Any, None] | None:
    """The DHT task for a started torrent, or None for a private torrent (BEP 27).

    It runs even while the DHT is off, idling, so switching the DHT on later needs no restart.
    """
    if torrent.info.private:
        return None

    def node() -> DHTNode | None:
        return torrent.session.dht

    hashes = [torrent.info.info_hash]
    if torrent.info.is_hybrid and torrent.info.info_hash_v2 is not None:
        hashes.append(torrent.info.info_hash_v2[:20])  # v2 swarm of a hybrid (BEP 52)

    def port() -> int | None:
        return torrent.session.listen_port or None

    async def run() -> None:
        await asyncio.gather(*(peer_loop(node, h, torrent.add_peers, port) for h in hashes))

    return run()


async def apply_dht_settings(session: SessionCore) -> None:
    """Settings changed live: stop the running node (saving its table) and start per the new
    settings. Torrents pick the new node up on their next cycle (``peer_loop``)."""
    if session.dht is not None:
        old, session.dht = session.dht, None
        await old.stop()
        if session.utp is not None:
            session.utp.unregister_handler(old.datagram_received)
    if session.settings.network.enable_dht:
        session.dht = await start_session_dht(session)


#: settings whose change means restarting the DHT node
DHT_KEYS = frozenset(
    {
        "network.enable_dht",
        "network.dht_port",
        "network.dht_bootstrap_nodes",
        "network.listen_port",
        "network.listen_interfaces",
        "network.enable_ipv6",
    }
)
