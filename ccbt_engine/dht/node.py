"""The asyncio DHT node (BEP 5, with BEP 32 IPv6, BEP 42 ids, BEP 43 read-only, BEP 51 samples).

A thin shell around the sans-I/O pieces (:mod:`ccbt_engine.protocol.krpc`,
:mod:`.routing`, :mod:`.store`): it moves datagrams, matches replies to transactions, runs
iterative lookups and keeps the routing table fresh.

Transport: the node either opens its own UDP sockets (:meth:`DHTNode.start` with ``hosts``) or
is attached to someone else's (:meth:`DHTNode.attach` with a ``send(data, addr)`` callable, then
feed it :meth:`DHTNode.datagram_received`). The second form is how the DHT will share the
listen port with uTP: KRPC packets are bencoded dictionaries, so they start with ``b"d"``
(:func:`looks_like_krpc`), which no uTP packet does.

Hostile input: only :class:`~ccbt_engine.protocol.krpc.KRPCError` comes out of decoding, and it
is answered (for queries) or dropped. Queries are rate-limited per source IP with a bounded table
of buckets; the peer store is capped; pending transactions are only ever created by us. A flood
of junk therefore costs CPU for decoding and nothing that grows.
"""

from __future__ import annotations

import asyncio
import contextlib
import ipaddress
import json
import logging
import os
import socket
import time
from collections import Counter, OrderedDict
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from ccbt_engine.dht import routing
from ccbt_engine.dht.routing import K, RoutingTable, distance
from ccbt_engine.dht.store import PeerStore, TokenManager
from ccbt_engine.protocol import krpc
from ccbt_engine.protocol.krpc import KRPCError, NodeInfo, Query, Response

__all__ = ["DHTConfig", "DHTNode", "DHTQueryError", "LookupResult", "looks_like_krpc"]

log = logging.getLogger(__name__)

Addr = tuple[str, int]
SendFn = Callable[[bytes, Addr], None]

VERSION = b"CC\x00\x01"
#: Queries a lookup keeps in flight (Kademlia's alpha).
ALPHA = 3
_MAINTENANCE_INTERVAL = 10.0
_SAVE_INTERVAL = 300.0
#: Most lookups a node runs at once; more wait. Bounds outstanding transactions.
_MAX_PENDING = 512
_MAX_LOOKUP_QUERIES = 96
_RATE_TABLE_SIZE = 4096
_EXTERNAL_IP_VOTES = 32


def looks_like_krpc(data: bytes) -> bool:
    """The dispatcher predicate for a UDP port shared with uTP (uTP headers never start 'd')."""
    return data[:1] == b"d"


class DHTQueryError(Exception):
    """A query we sent failed: timeout, error reply, or a node refusing it."""


@dataclass(frozen=True, slots=True)
class DHTConfig:
    """How a node behaves; the session fills this from ``settings.network``."""

    bootstrap: tuple[Addr, ...] = ()
    read_only: bool = False
    #: where the routing table is saved (JSON); None keeps it in memory only
    state_path: Path | None = None
    query_timeout: float = 2.0
    alpha: int = ALPHA
    #: sustained queries per second accepted from one IP, and the burst above that
    ip_rate: float = 20.0
    ip_burst: float = 80.0
    max_hashes: int = 2000
    max_peers_per_hash: int = 200
    #: refuse (not just deprioritise) public nodes whose id fails BEP 42
    enforce_node_id: bool = False
    #: the session's IP filter: blocked addresses are neither answered nor queried
    is_blocked: Callable[[str], bool] | None = None


@dataclass(slots=True)
class LookupResult:
    """The outcome of an iterative lookup."""

    #: nodes that answered, closest first, with the token each gave (get_peers)
    nodes: list[tuple[NodeInfo, bytes | None]] = field(default_factory=list)
    peers: list[Addr] = field(default_factory=list)
    queried: int = 0


class _IpLimiter:
    """Token bucket per source IP, in an LRU of bounded size (a spoofed-IP flood stays bounded)."""

    def __init__(self, rate: float, burst: float, size: int = _RATE_TABLE_SIZE) -> None:
        self.rate = rate
        self.burst = burst
        self.size = size
        self._buckets: OrderedDict[str, list[float]] = OrderedDict()

    def allow(self, ip: str, now: float) -> bool:
        b = self._buckets.get(ip)
        if b is None:
            if len(self._buckets) >= self.size:
                self._buckets.popitem(last=False)
            b = self._buckets[ip] = [self.burst, now]
        else:
            self._buckets.move_to_end(ip)
            b[0] = min(self.burst, b[0] + (now - b[1]) * self.rate)
            b[1] = now
        if b[0] < 1.0:
            return False
        b[0] -= 1.0
        return True

    def __len__(self) -> int:
        return len(self._buckets)


class _Protocol(asyncio.DatagramProtocol):
    def __init__(self, node: DHTNode) -> None:
        self.node = node

    def datagram_received(self, data: bytes, addr: tuple[Any, ...]) -> None:
        self.node.datagram_received(data, addr)

    def error_received(self, exc: Exception) -> None:
        log.debug("dht socket error: %s", exc)


def _bind_udp(host: str, port: int) -> socket.socket:
    """A UDP socket; IPv6 ones are v6-only so "::" and "0.0.0.0" can share a port number."""
    family = socket.AF_INET6 if _is_v6(host) else socket.AF_INET
    sock = socket.socket(family, socket.SOCK_DGRAM)
    try:
        if family == socket.AF_INET6:
            sock.setsockopt(socket.IPPROTO_IPV6, socket.IPV6_V6ONLY, 1)
        with contextlib.suppress(OSError):
            # Room for bursts (many replies to one lookup arrive together); the kernel may cap it.
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 1 << 20)
        sock.bind((host, port))
        sock.setblocking(False)
    except OSError:
        sock.close()
        raise
    return sock


def _norm_addr(addr: tuple[Any, ...]) -> Addr:
    """(host, port) with IPv4-mapped IPv6 turned back into IPv4 and scope ids dropped."""
    host = str(addr[0]).split("%", 1)[0]
    if host.startswith("::ffff:") and "." in host:
        host = host[7:]
    return host, int(addr[1])


def _is_ip(host: str) -> bool:
    try:
        ipaddress.ip_address(host)
    except ValueError:
        return False
    return True


def _is_loopback(host: str) -> bool:
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def _is_v6(host: str) -> bool:
    return ":" in host


class DHTNode:
    """One DHT node. ``await start()``, ``await bootstrap()``, lookups, ``await stop()``."""

    def __init__(
        self,
        config: DHTConfig | None = None,
        *,
        node_id: bytes | None = None,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.config = config or DHTConfig()
        self._clock = clock
        self._explicit_id = node_id is not None
        self.node_id = node_id or os.urandom(20)
        self.tables: dict[int, RoutingTable] = {}
        self._reset_tables()
        self.tokens = TokenManager(clock())
        self.store = PeerStore(self.config.max_hashes, self.config.max_peers_per_hash)
        self._limiter = _IpLimiter(self.config.ip_rate, self.config.ip_burst)
        self._pending: dict[bytes, tuple[asyncio.Future[Response], Addr]] = {}
        self._next_tid = int.from_bytes(os.urandom(2), "big")
        self._transports: dict[int, asyncio.DatagramTransport] = {}
        self._send: SendFn | None = None
        self._tasks: set[asyncio.Task[Any]] = set()
        self._ip_votes: OrderedDict[str, str] = OrderedDict()
        self.external_ip: str | None = None
        self._saved_nodes: list[tuple[bytes, Addr]] = []
        self._state_loaded = False
        self._bootstrap_addrs: list[Addr] = [a for a in self.config.bootstrap if _is_ip(a[0])]
        self._resolved = False
        self._loopback_only = False
        self._bootstrapped = asyncio.Event()
        #: counters for tests, metrics and the curious
        self.stats: Counter[str] = Counter()
        self.ports: dict[int, int] = {}

    # -- transport ------------------------------------------------------------------------
    async def start(self, hosts: Sequence[str] = ("0.0.0.0",), port: int = 0) -> None:
        """Open our own UDP socket per host (IPv4 and/or IPv6) and begin maintenance."""
        await self.load_state()
        loop = asyncio.get_running_loop()
        for host in hosts:
            family = 6 if _is_v6(host) else 4
            if family in self._transports:
                continue
            sock = _bind_udp(host, port)
            transport, _ = await loop.create_datagram_endpoint(lambda: _Protocol(self), sock=sock)
            self._transports[family] = transport
            self.ports[family] = transport.get_extra_info("sockname")[1]
        self._loopback_only = all(_is_loopback(h) for h in hosts)
        self._start_maintenance()

    def attach(self, send: SendFn, port: int = 0) -> None:
        """Use an external datagram transport; its receive side must call datagram_received.

        ``port`` is the shared socket's port (what :attr:`port` reports and announces use).
        Await :meth:`load_state` first to resume the saved id and table.
        """
        self._send = send
        if port:
            self.ports[4] = port
        self._start_maintenance()

    @property
    def port(self) -> int:
        return self.ports.get(4) or self.ports.get(6) or 0

    def _start_maintenance(self) -> None:
        if not self._tasks:
            self._spawn(self._maintenance_loop())

    async def stop(self) -> None:
        for task in list(self._tasks):
            task.cancel()
        if self._tasks:
            await asyncio.gather(*self._tasks, return_exceptions=True)
        for fut, _ in self._pending.values():
            if not fut.done():
                # Not cancel(): a caller's task (a torrent's DHT loop) must see a failed query,
                # not be cancelled itself.
                fut.set_exception(DHTQueryError("DHT node stopped"))
        self._pending.clear()
        with contextlib.suppress(OSError):
            await self.save_state()
        for transport in self._transports.values():
            transport.close()
        self._transports.clear()

    def _spawn(self, coro: Any) -> asyncio.Task[Any]:
        task: asyncio.Task[Any] = asyncio.ensure_future(coro)
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)
        return task

    def _sendto(self, data: bytes, addr: Addr) -> None:
        self.stats["sent"] += 1
        if self._send is not None:
            self._send(data, addr)
            return
        transport = self._transports.get(6 if _is_v6(addr[0]) else 4)
        if transport is not None and not transport.is_closing():
            transport.sendto(data, addr)

    def _has_family(self, family: int) -> bool:
        return self._send is not None or family in self._transports

    def _can_reach(self, host: str) -> bool:
        """A socket of the right family, and not a public address from a loopback-only node
        (the kernel would refuse the send anyway; tests bind 127.0.0.1 and must stay there)."""
        if not self._has_family(6 if _is_v6(host) else 4):
            return False
        if self.config.is_blocked is not None and self.config.is_blocked(host):
            return False
        return not self._loopback_only or _is_loopback(host)

    # -- receiving ------------------------------------------------------------------------
    def datagram_received(self, data: bytes, addr: tuple[Any, ...]) -> None:
        """Entry point for every datagram (own socket or an external dispatcher)."""
        self.stats["received"] += 1
        blocked = self.config.is_blocked
        try:
            src = _norm_addr(addr)
            if blocked is not None and blocked(src[0]):
                self.stats["blocked"] += 1
                return
            msg = krpc.decode(data)
        except (KRPCError, ValueError, IndexError) as exc:
            self.stats["malformed"] += 1
            tid = exc.tid if isinstance(exc, KRPCError) else None
            if tid is not None and not self.config.read_only:
                host, port = _norm_addr(addr)
                if self._limiter.allow(host, self._clock()):
                    code = exc.code if isinstance(exc, KRPCError) else krpc.ERROR_PROTOCOL
                    self._sendto(krpc.encode_error(tid, code, str(exc)[:100]), (host, port))
            return
        if isinstance(msg, Query):
            self._on_query(msg, src)
        else:
            self._on_reply(msg, src)

    def _on_reply(self, msg: Response | krpc.ErrorReply, src: Addr) -> None:
        entry = self._pending.get(msg.tid)
        if entry is None or entry[1][0] != src[0]:
            self.stats["unexpected_reply"] += 1
            return  # unsolicited or spoofed: a reply must come from the IP we asked
        fut, _ = self._pending.pop(msg.tid)
        if fut.done():
            return
        if isinstance(msg, krpc.ErrorReply):
            fut.set_exception(DHTQueryError(f"error {msg.code}: {msg.message}"))
            return
        now = self._clock()
        self._table_for(src[0]).add(msg.sender, src[0], src[1], now, replied=True)
        if msg.ip is not None:
            self._vote_external_ip(src[0], msg.ip[0])
        fut.set_result(msg)

    def _on_query(self, q: Query, src: Addr) -> None:
        self.stats["queries"] += 1
        if self.config.read_only:
            return  # BEP 43: a read-only node does not answer queries
        now = self._clock()
        if not self._limiter.allow(src[0], now):
            self.stats["rate_limited"] += 1
            return
        if not q.read_only:
            # Heard from, not verified: it takes a free slot but never evicts anyone.
            self._table_for(src[0]).add(q.sender, src[0], src[1], now)
        body: dict[bytes, Any] = {b"id": self.node_id}
        if q.method in ("find_node", "get_peers", "sample_infohashes"):
            assert q.target is not None
            self._add_nodes(body, q.target, q.want, src[0])
        if q.method == "get_peers":
            assert q.target is not None
            body[b"token"] = self.tokens.token(src[0], now)
            peers = self.store.get(q.target, now, ipv6=_is_v6(src[0]))
            if peers:
                body[b"values"] = [krpc.encode_peer(h, p) for h, p in peers]
        elif q.method == "announce_peer":
            assert q.target is not None and q.token is not None
            if not self.tokens.valid(q.token, src[0], now):
                self._sendto(krpc.encode_error(q.tid, krpc.ERROR_PROTOCOL, "bad token"), src)
                return
            port = src[1] if q.implied_port or q.port is None else q.port
            self.store.add(q.target, src[0], port, now)
        elif q.method == "sample_infohashes":
            body[b"interval"] = 300
            body[b"num"] = len(self.store)
            body[b"samples"] = b"".join(self.store.sample(20))
        self._sendto(krpc.encode_response(q.tid, body, ip=src, version=VERSION), src)

    def _add_nodes(
        self, body: dict[bytes, Any], target: bytes, want: frozenset[str], ip: str
    ) -> None:
        families = {w for w in want if w in ("n4", "n6")} or {"n6" if _is_v6(ip) else "n4"}
        if "n4" in families and 4 in self.tables:
            close = self.tables[4].closest(target, K)
            body[b"nodes"] = krpc.encode_nodes([NodeInfo(c.node_id, c.host, c.port) for c in close])
        if "n6" in families and 6 in self.tables:
            close = self.tables[6].closest(target, K)
            body[b"nodes6"] = krpc.encode_nodes(
                [NodeInfo(c.node_id, c.host, c.port) for c in close]
            )

    # -- identity (BEP 42) ----------------------------------------------------------------
    def _reset_tables(self) -> None:
        old = [c for t in self.tables.values() for c in t]
        self.tables = {
            fam: RoutingTable(self.node_id, enforce=self.config.enforce_node_id) for fam in (4, 6)
        }
        now = self._clock()
        for c in old:
            self._table_for(c.host).add(
                c.node_id, c.host, c.port, now, replied=c.last_reply is not None
            )

    def _table_for(self, host: str) -> RoutingTable:
        return self.tables[6 if _is_v6(host) else 4]

    def _vote_external_ip(self, voter: str, ip: str) -> None:
        """Nodes tell us our address (BEP 42); once 3 distinct voters agree, adopt a secure id.

        One vote per voter IP (the latest), so a single node repeating a lie cannot move us.
        """
        self._ip_votes.pop(voter, None)
        self._ip_votes[voter] = ip
        while len(self._ip_votes) > _EXTERNAL_IP_VOTES:
            self._ip_votes.popitem(last=False)
        best, count = Counter(self._ip_votes.values()).most_common(1)[0]
        if count < 3 or best == self.external_ip:
            return
        self.external_ip = best
        if not self._explicit_id and not routing.is_secure_id(self.node_id, best):
            self.node_id = routing.generate_secure_id(best)
            self._reset_tables()
            log.info("dht: external address %s, new secure node id %s", best, self.node_id.hex())

    # -- sending queries ------------------------------------------------------------------
    def _tid(self) -> bytes:
        for _ in range(65536):
            self._next_tid = (self._next_tid + 1) & 0xFFFF
            tid = self._next_tid.to_bytes(2, "big")
            if tid not in self._pending:
                return tid
        raise DHTQueryError("no free transaction id")

    async def query(self, addr: Addr, method: str, args: dict[bytes, Any]) -> Response:
        """Send one query and wait for its reply (or raise :class:`DHTQueryError`)."""
        if not self._can_reach(addr[0]):
            raise DHTQueryError(f"cannot reach {addr[0]} (no socket of its family, or filtered)")
        if len(self._pending) >= _MAX_PENDING:
            raise DHTQueryError("too many queries in flight")
        tid = self._tid()
        fut: asyncio.Future[Response] = asyncio.get_running_loop().create_future()
        self._pending[tid] = (fut, addr)
        body = {b"id": self.node_id, **args}
        data = krpc.encode_query(
            tid, method, body, read_only=self.config.read_only, version=VERSION
        )
        try:
            self._sendto(data, addr)
            return await asyncio.wait_for(fut, self.config.query_timeout)
        except TimeoutError:
            self.stats["timeouts"] += 1
            raise DHTQueryError(f"{method} to {addr[0]}:{addr[1]} timed out") from None
        except OSError as exc:
            raise DHTQueryError(f"{method} to {addr[0]}:{addr[1]}: {exc}") from None
        finally:
            self._pending.pop(tid, None)

    async def _query_node(
        self, node: NodeInfo | None, addr: Addr, method: str, args: dict[bytes, Any]
    ) -> Response:
        try:
            return await self.query(addr, method, args)
        except DHTQueryError:
            if node is not None:
                self._table_for(addr[0]).failed(node.node_id)
            raise

    async def ping(self, addr: Addr) -> bytes:
        """Ping ``addr``; returns its node id."""
        return (await self.query(addr, "ping", {})).sender

    async def sample_infohashes(self, addr: Addr, target: bytes | None = None) -> Response:
        return await self.query(addr, "sample_infohashes", {b"target": target or os.urandom(20)})

    # -- lookups --------------------------------------------------------------------------
    def _want(self) -> list[bytes]:
        return [b"n4" if fam == 4 else b"n6" for fam in (4, 6) if self._has_family(fam)]

    async def _lookup(
        self,
        target: bytes,
        method: str,
        seeds: Iterable[tuple[bytes | None, Addr]] = (),
    ) -> LookupResult:
        """Iterative Kademlia lookup with ``alpha`` queries in flight.

        Ends when the ``K`` closest nodes not known to have failed have all answered, or the
        query budget is spent. Nodes without a known id (bootstrap addresses) go first.
        """
        key = b"info_hash" if method == "get_peers" else b"target"
        args: dict[bytes, Any] = {key: target}
        want = self._want()
        if len(want) > 1:
            args[b"want"] = want
        candidates: dict[Addr, bytes | None] = {}
        for table in self.tables.values():
            for c in table.closest(target, K * 2):
                candidates[c.addr] = c.node_id
        for node_id, addr in seeds:
            candidates.setdefault(addr, node_id)
        state: dict[Addr, str] = {}  # "inflight" | "ok" | "fail"
        tokens: dict[Addr, bytes | None] = {}
        result = LookupResult()
        peers: dict[Addr, None] = {}
        inflight: dict[asyncio.Task[Response], Addr] = {}

        def rank(addr: Addr) -> int:
            node_id = candidates[addr]
            return -1 if node_id is None else distance(node_id, target)

        def next_candidate() -> Addr | None:
            live = sorted((a for a in candidates if state.get(a) != "fail"), key=rank)
            for addr in live[:K]:
                if addr not in state:
                    return addr
            return None

        try:
            while True:
                while len(inflight) < self.config.alpha and result.queried < _MAX_LOOKUP_QUERIES:
                    pick = next_candidate()
                    if pick is None:
                        break
                    addr = pick
                    state[addr] = "inflight"
                    result.queried += 1
                    node_id = candidates[addr]
                    info = None if node_id is None else NodeInfo(node_id, *addr)
                    task = asyncio.ensure_future(self._query_node(info, addr, method, args))
                    inflight[task] = addr
                if not inflight:
                    break
                done, _ = await asyncio.wait(inflight, return_when=asyncio.FIRST_COMPLETED)
                for task in done:
                    addr = inflight.pop(task)
                    if task.cancelled() or task.exception() is not None:
                        state[addr] = "fail"
                        continue
                    resp = task.result()
                    state[addr] = "ok"
                    candidates[addr] = resp.sender
                    tokens[addr] = resp.token
                    for peer in resp.values:
                        peers.setdefault(peer, None)
                    for n in resp.nodes + resp.nodes6:
                        if n.node_id != self.node_id and self._can_reach(n.host):
                            candidates.setdefault(n.addr, n.node_id)
        finally:
            for task in inflight:
                task.cancel()
            if inflight:
                await asyncio.gather(*inflight, return_exceptions=True)
        answered = sorted((a for a, s in state.items() if s == "ok"), key=rank)
        for addr in answered[:K]:
            node_id = candidates[addr]
            assert node_id is not None
            result.nodes.append((NodeInfo(node_id, *addr), tokens.get(addr)))
        result.peers = list(peers)
        return result

    async def find_node(self, target: bytes) -> list[NodeInfo]:
        """The ``K`` closest nodes to ``target`` that answered."""
        res = await self._lookup(target, "find_node", self._bootstrap_seeds())
        return [n for n, _ in res.nodes]

    async def get_peers(
        self, info_hash: bytes, *, announce_port: int | None = None, implied_port: bool = False
    ) -> list[Addr]:
        """Find peers for ``info_hash``; with ``announce_port``, also announce ourselves there.

        A read-only node never announces (it would ask others to store a peer that does not
        take part in the DHT, which is fine, but BEP 43 nodes are meant to be invisible).
        """
        res = await self._lookup(info_hash, "get_peers", self._bootstrap_seeds())
        self.stats["lookups"] += 1
        # We may be one of the closest nodes ourselves: peers announced *to us* count too.
        now = self._clock()
        for ipv6 in (False, True):
            for peer in self.store.get(info_hash, now, ipv6=ipv6):
                if peer not in res.peers:
                    res.peers.append(peer)
        if announce_port is not None and not self.config.read_only:
            await self._announce(info_hash, announce_port, implied_port, res)
        return res.peers

    async def announce_peer(
        self, info_hash: bytes, port: int, *, implied_port: bool = False
    ) -> list[Addr]:
        """Look up ``info_hash`` and announce to the closest nodes; returns the peers found."""
        return await self.get_peers(info_hash, announce_port=port, implied_port=implied_port)

    async def _announce(
        self, info_hash: bytes, port: int, implied: bool, res: LookupResult
    ) -> None:
        args: dict[bytes, Any] = {b"info_hash": info_hash, b"port": port}
        if implied:
            args[b"implied_port"] = 1
        jobs = [
            self.query(node.addr, "announce_peer", {**args, b"token": token})
            for node, token in res.nodes
            if token
        ]
        results = await asyncio.gather(*jobs, return_exceptions=True)
        ok = sum(1 for r in results if isinstance(r, Response))
        self.stats["announced"] += ok
        log.debug("dht: announced %s to %d/%d nodes", info_hash.hex(), ok, len(jobs))

    # -- bootstrap and maintenance ----------------------------------------------------------
    def _bootstrap_seeds(self) -> list[tuple[bytes | None, Addr]]:
        if len(self) >= K:
            return []
        seeds: list[tuple[bytes | None, Addr]] = [(i, a) for i, a in self._saved_nodes]
        seeds += [(None, a) for a in self._bootstrap_addrs]
        return [(i, a) for i, a in seeds if self._can_reach(a[0])]

    async def _resolve_bootstrap(self) -> None:
        """Turn bootstrap host names into addresses (once; IP literals pass straight through)."""
        if self._resolved:
            return
        loop = asyncio.get_running_loop()
        out: list[Addr] = []
        for host, port in self.config.bootstrap:
            if _is_ip(host):
                out.append((host, port))
                continue
            if self._loopback_only:
                continue  # only loopback nodes are reachable: no DNS look-up for public names
            try:
                infos = await asyncio.wait_for(
                    loop.getaddrinfo(host, port, type=socket.SOCK_DGRAM), 10.0
                )
            except (OSError, TimeoutError) as exc:
                log.info("dht: cannot resolve bootstrap node %s: %s", host, exc)
                continue
            for info in infos:
                addr = _norm_addr(info[4])
                if addr not in out:
                    out.append(addr)
        self._bootstrap_addrs = out
        self._resolved = True

    def __len__(self) -> int:
        return sum(len(t) for t in self.tables.values())

    async def bootstrap(self) -> int:
        """Join the network: look up our own id through the bootstrap and saved nodes.

        Returns how many nodes the routing table holds afterwards.
        """
        try:
            await self._resolve_bootstrap()
            await self._lookup(self.node_id, "find_node", self._bootstrap_seeds())
        finally:
            self._bootstrapped.set()
        log.info("dht: bootstrapped with %d nodes", len(self))
        return len(self)

    async def wait_bootstrapped(self, timeout: float) -> bool:
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(self._bootstrapped.wait(), timeout)
        return self._bootstrapped.is_set()

    async def _maintenance_loop(self) -> None:
        last_save = self._clock()
        await self._safe(self.bootstrap())
        while True:
            await asyncio.sleep(_MAINTENANCE_INTERVAL)
            now = self._clock()
            self.store.expire(now)
            if len(self) == 0:
                await self._safe(self.bootstrap())
                continue
            await self._safe(self.refresh(now))
            if now - last_save >= _SAVE_INTERVAL:
                last_save = now
                with contextlib.suppress(OSError):
                    await self.save_state()

    async def _safe(self, coro: Any) -> None:
        try:
            await coro
        except (DHTQueryError, OSError) as exc:
            log.debug("dht maintenance: %s", exc)

    async def refresh(self, now: float) -> None:
        """Ping a few questionable nodes, and refresh one stale bucket with a lookup."""
        pings = []
        for table in self.tables.values():
            for c in table.questionable(now)[:8]:
                pings.append(
                    self._query_node(NodeInfo(c.node_id, c.host, c.port), c.addr, "ping", {})
                )
        if pings:
            await asyncio.gather(*pings, return_exceptions=True)
        for table in self.tables.values():
            stale = table.stale_buckets(now)
            if stale and len(table):
                index = stale[0]
                table.buckets[index].last_changed = now
                await self.find_node(routing.random_id_in_bucket(self.node_id, index))
                return

    # -- persistence ----------------------------------------------------------------------
    async def load_state(self) -> None:
        """Resume the saved node id and contacts (read off the event loop; once)."""
        if self._state_loaded:
            return
        self._state_loaded = True
        saved = await asyncio.get_running_loop().run_in_executor(None, self._read_state)
        if "id" in saved and not self._explicit_id and saved["id"] != self.node_id:
            self.node_id = saved["id"]
            self._reset_tables()
        self._saved_nodes = saved.get("nodes", [])

    def _read_state(self) -> dict[str, Any]:
        """Saved id and contacts; a missing or damaged file just means starting fresh."""
        path = self.config.state_path
        if path is None:
            return {}
        try:
            raw = json.loads(Path(path).read_text())
            node_id = bytes.fromhex(raw["node_id"])
            nodes = []
            for entry in raw.get("nodes", [])[:400]:
                nid, host, port = bytes.fromhex(entry[0]), str(entry[1]), int(entry[2])
                ipaddress.ip_address(host)
                if len(nid) == 20 and 0 < port < 65536:
                    nodes.append((nid, (host, port)))
            if len(node_id) != 20:
                return {}
            return {"id": node_id, "nodes": nodes}
        except (OSError, ValueError, KeyError, TypeError, IndexError) as exc:
            if not isinstance(exc, FileNotFoundError):
                log.warning("dht: ignoring unreadable state %s: %s", path, exc)
            return {}

    def state(self) -> dict[str, Any]:
        """The JSON-ready table: our id and the contacts that answered us, best first."""
        now = self._clock()
        nodes = sorted(
            (c for t in self.tables.values() for c in t if c.last_reply is not None),
            key=lambda c: not c.is_good(now),
        )
        return {
            "node_id": self.node_id.hex(),
            "nodes": [[c.node_id.hex(), c.host, c.port] for c in nodes[:400]],
        }

    async def save_state(self) -> None:
        """Write the table atomically (temp file, fsync, rename) off the event loop."""
        path = self.config.state_path
        if path is None:
            return
        state = self.state()
        if not state["nodes"]:
            return  # an offline run must not wipe a good saved table
        text = json.dumps(state)
        await asyncio.get_running_loop().run_in_executor(None, _atomic_write, Path(path), text)


def _atomic_write(path: Path, text: str) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(path.name + ".tmp")
    with open(tmp, "w", encoding="utf-8") as fh:
        fh.write(text)
        fh.flush()
        os.fsync(fh.fileno())
    os.replace(tmp, path)
