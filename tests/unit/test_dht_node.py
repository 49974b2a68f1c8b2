"""DHT nodes on 127.0.0.1 talking to each other: bootstrap, lookups, announce, BEP 43/51,
persistence, an external transport, and a flood of junk that must leave the node answering."""

from __future__ import annotations

import asyncio
import contextlib
import gc
import os
import socket
import tracemalloc
from collections.abc import AsyncIterator, Callable
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from ccbt_engine import bencode
from ccbt_engine.dht.node import DHTConfig, DHTNode, DHTQueryError
from ccbt_engine.dht.routing import distance, is_secure_id
from ccbt_engine.protocol import krpc
from ccbt_engine.protocol.krpc import NodeInfo, Query

pytestmark = pytest.mark.timeout(60)

LO = "127.0.0.1"


async def _node(bootstrap: tuple[tuple[str, int], ...] = (), **kw: object) -> DHTNode:
    cfg = DHTConfig(bootstrap=bootstrap, query_timeout=0.5, **kw)  # type: ignore[arg-type]
    node = DHTNode(cfg)
    await node.start([LO])
    return node


@contextlib.asynccontextmanager
async def swarm(n: int) -> AsyncIterator[list[DHTNode]]:
    """``n`` nodes, all bootstrapping off the first one, then refreshed so tables fill."""
    first = await _node()
    nodes = [first]
    try:
        for _ in range(n - 1):
            nodes.append(await _node(((LO, first.port),)))
        await asyncio.gather(*(node.bootstrap() for node in nodes))
        await asyncio.gather(*(node.bootstrap() for node in nodes))
        yield nodes
    finally:
        await asyncio.gather(*(node.stop() for node in nodes))


async def test_ping_and_routing_table_learns_the_other_node() -> None:
    a = await _node()
    b = await _node(((LO, a.port),))
    try:
        assert await b.ping((LO, a.port)) == a.node_id
        assert a.tables[4].find(b.node_id) is not None  # heard from the querier
        assert b.tables[4].find(a.node_id) is not None  # verified by its reply
    finally:
        await a.stop()
        await b.stop()


async def test_lookups_in_a_swarm_find_closest_nodes_and_announced_peers() -> None:
    async with swarm(16) as nodes:
        assert all(len(n) >= 5 for n in nodes), [len(n) for n in nodes]
        target = os.urandom(20)
        found = await nodes[3].find_node(target)
        everyone = sorted(
            (n.node_id for n in nodes if n is not nodes[3]), key=lambda i: distance(i, target)
        )
        assert [f.node_id for f in found][:3] == everyone[:3]

        info_hash = os.urandom(20)
        peers = await nodes[5].announce_peer(info_hash, 51413)
        assert peers == []
        assert nodes[5].stats["announced"] >= 3
        await nodes[9].announce_peer(info_hash, 6000, implied_port=True)
        got = await nodes[12].get_peers(info_hash)
        assert (LO, 51413) in got
        assert (LO, nodes[9].port) in got  # implied port: the UDP source port


async def test_announce_with_a_bad_token_is_refused() -> None:
    a = await _node()
    b = await _node(((LO, a.port),))
    try:
        ih = os.urandom(20)
        with pytest.raises(DHTQueryError, match="203"):
            await b.query(
                (LO, a.port), "announce_peer", {b"info_hash": ih, b"port": 1, b"token": b"forged"}
            )
        resp = await b.query((LO, a.port), "get_peers", {b"info_hash": ih})
        assert resp.token and not resp.values
        await b.query(
            (LO, a.port), "announce_peer", {b"info_hash": ih, b"port": 7, b"token": resp.token}
        )
        resp = await b.query((LO, a.port), "get_peers", {b"info_hash": ih})
        assert resp.values == ((LO, 7),)
    finally:
        await a.stop()
        await b.stop()


async def test_sample_infohashes_bep51() -> None:
    a = await _node()
    b = await _node(((LO, a.port),))
    try:
        hashes = {os.urandom(20) for _ in range(5)}
        for ih in hashes:
            a.store.add(ih, "10.0.0.1", 1, a._clock())
        resp = await b.sample_infohashes((LO, a.port))
        assert set(resp.samples) == hashes
        assert resp.num == 5 and resp.interval is not None
        assert krpc.decode_nodes(krpc.encode_nodes(resp.nodes)) == resp.nodes
    finally:
        await a.stop()
        await b.stop()


async def test_read_only_node_bep43() -> None:
    a = await _node()
    ro = await _node(((LO, a.port),), read_only=True)
    c = await _node(((LO, a.port),))
    try:
        await ro.bootstrap()
        assert a.tables[4].find(ro.node_id) is None  # ro=1 queries do not enter tables
        assert len(ro) >= 1  # but the read-only node itself learns the network
        with pytest.raises(DHTQueryError):
            await c.ping((LO, ro.port))  # and never answers
        await ro.announce_peer(os.urandom(20), 1)
        assert ro.stats["announced"] == 0
    finally:
        for n in (a, ro, c):
            await n.stop()


async def test_routing_table_persists_and_bootstraps_from_saved_nodes(tmp_path: Path) -> None:
    a = await _node()
    state = tmp_path / "state" / "dht.json"
    b = await _node(((LO, a.port),), state_path=state)
    try:
        await b.bootstrap()
        await b.stop()
        saved = state.read_text()
        assert a.node_id.hex() in saved and b.node_id.hex() in saved
        # No bootstrap nodes this time: the saved table is enough, and the id is kept.
        again = await _node(state_path=state)
        try:
            assert again.node_id == b.node_id
            assert await again.bootstrap() >= 1
        finally:
            await again.stop()
    finally:
        await a.stop()
    state.write_text("{not json")
    broken = DHTNode(DHTConfig(state_path=state))
    await broken.load_state()
    assert len(broken.node_id) == 20  # a damaged file means a fresh start, not a crash


async def test_external_transport_attach() -> None:
    """The shape uTP's shared-port dispatcher will use: send callable + datagram_received."""
    a = await _node()
    loop = asyncio.get_running_loop()
    received: asyncio.Queue[bytes] = asyncio.Queue()

    class Shared(asyncio.DatagramProtocol):
        def datagram_received(self, data: bytes, addr: tuple[str, int]) -> None:
            if data[:1] == b"d":
                attached.datagram_received(data, addr)
            else:
                received.put_nowait(data)

    transport, _ = await loop.create_datagram_endpoint(Shared, local_addr=(LO, 0))
    attached = DHTNode(DHTConfig(bootstrap=((LO, a.port),), query_timeout=0.5))
    attached.attach(transport.sendto)
    try:
        assert await attached.ping((LO, a.port)) == a.node_id
        assert await attached.bootstrap() >= 1
    finally:
        await attached.stop()
        transport.close()
        await a.stop()


async def test_ipv6_bep32() -> None:
    try:
        with socket.socket(socket.AF_INET6, socket.SOCK_DGRAM) as s:
            s.bind(("::1", 0))
    except OSError:
        pytest.skip("no IPv6 loopback")
    a = DHTNode(DHTConfig(query_timeout=0.5))
    await a.start([LO, "::1"], 0)
    b = DHTNode(DHTConfig(bootstrap=(("::1", a.ports[6]),), query_timeout=0.5))
    await b.start(["::1"], 0)
    try:
        await b.bootstrap()
        assert b.tables[6].find(a.node_id) is not None
        ih = os.urandom(20)
        await b.announce_peer(ih, 4444)
        assert a.store.get(ih, a._clock(), ipv6=True) == [("::1", 4444)]
        resp = await b.query(("::1", a.ports[6]), "find_node", {b"target": ih, b"want": [b"n6"]})
        assert all(":" in n.host for n in resp.nodes6) and resp.nodes6
    finally:
        await a.stop()
        await b.stop()


async def _blast(packets: list[bytes], node: DHTNode) -> None:
    """Send in chunks that fit the socket buffer, letting the node drain each one: the point is
    that every packet reaches the node (not to measure the kernel's drops on a busy machine)."""
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s:
        s.setblocking(False)
        base = node.stats["received"]
        for start in range(0, len(packets), 100):
            for data in packets[start : start + 100]:
                s.sendto(data, (LO, node.port))
            for _ in range(500):
                if node.stats["received"] - base >= start + 100:
                    break
                await asyncio.sleep(0.001)


async def test_flood_of_10000_bogus_packets_leaves_memory_bounded_and_node_answering() -> None:
    node = await _node()
    client = await _node(((LO, node.port),))
    junk_kinds: list[Callable[[int], bytes]] = [
        lambda i: os.urandom(i % 200),
        lambda i: (
            b"d1:t2:"
            + i.to_bytes(2, "big")
            + b"1:y1:q1:q4:evil1:ad2:id20:"
            + os.urandom(20)
            + b"ee"
        ),
        lambda i: krpc.encode_query(
            i.to_bytes(4, "big"),
            "announce_peer",
            {b"id": os.urandom(20), b"info_hash": os.urandom(20), b"port": 1, b"token": b"x"},
        ),
        lambda i: krpc.encode_query(
            i.to_bytes(4, "big"), "get_peers", {b"id": os.urandom(20), b"info_hash": os.urandom(20)}
        ),
        lambda i: krpc.encode_response(
            i.to_bytes(2, "big"), {b"id": os.urandom(20), b"nodes": os.urandom(26 * 8)}
        ),
        lambda i: b"d" * (i % 3000),
    ]
    try:
        await client.ping((LO, node.port))
        packets = [junk_kinds[i % len(junk_kinds)](i) for i in range(10_000)]
        gc.collect()
        tracemalloc.start()
        before = tracemalloc.get_traced_memory()[0]
        await _blast(packets, node)
        await asyncio.sleep(0.2)
        gc.collect()
        grown = tracemalloc.get_traced_memory()[0] - before
        tracemalloc.stop()
        assert node.stats["received"] >= 9900, dict(node.stats)
        assert node.stats["malformed"] > 1000
        assert grown < 2 * 1024 * 1024, grown
        assert len(node._pending) == 0 and len(node) <= 200 and len(node.store) <= 200
        # Still answering (after the flooding IP's rate bucket refills).
        await asyncio.sleep(1.0)
        for _attempt in range(5):
            try:
                assert await client.ping((LO, node.port)) == node.node_id
                break
            except DHTQueryError:
                await asyncio.sleep(0.5)
        else:
            pytest.fail("node stopped answering after the flood")
    finally:
        await client.stop()
        await node.stop()


async def test_rate_limit_per_ip() -> None:
    node = await _node(ip_rate=1.0, ip_burst=5.0)
    loop = asyncio.get_running_loop()
    replies: list[bytes] = []

    class Rx(asyncio.DatagramProtocol):
        def datagram_received(self, data: bytes, addr: tuple[str, int]) -> None:
            replies.append(data)

    transport, _ = await loop.create_datagram_endpoint(Rx, local_addr=(LO, 0))
    try:
        for i in range(50):
            transport.sendto(
                krpc.encode_query(bytes([i]), "ping", {b"id": os.urandom(20)}), (LO, node.port)
            )
        await asyncio.sleep(0.3)
        assert 5 <= len(replies) <= 7
        assert node.stats["rate_limited"] >= 40
    finally:
        transport.close()
        await node.stop()


_fuzz_keys = st.sampled_from(
    [
        b"id",
        b"target",
        b"info_hash",
        b"port",
        b"token",
        b"implied_port",
        b"want",
        b"nodes",
        b"nodes6",
        b"values",
        b"samples",
        b"num",
        b"interval",
    ]
)
_fuzz_vals = st.one_of(
    st.integers(-5, 70000),
    st.binary(min_size=20, max_size=20),
    st.binary(max_size=60),
    st.lists(st.binary(max_size=20), max_size=3),
)


@settings(
    max_examples=300, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(
    kind=st.sampled_from([b"q", b"r", b"e"]),
    method=st.sampled_from(
        [b"ping", b"find_node", b"get_peers", b"announce_peer", b"sample_infohashes"]
    ),
    args=st.dictionaries(_fuzz_keys, _fuzz_vals, max_size=6),
    host=st.sampled_from(["127.0.0.1", "::1", "::ffff:10.0.0.1", "8.8.8.8"]),
)
def test_fuzz_node_datagram_received_never_raises(
    kind: bytes, method: bytes, args: dict[bytes, object], host: str
) -> None:
    """Whatever a datagram holds, the node's receive path neither raises nor leaks state."""
    sent: list[tuple[bytes, tuple[str, int]]] = []
    node = DHTNode(DHTConfig())
    node._send = lambda data, addr: sent.append((data, addr))
    msg = {b"t": b"aa", b"y": kind, b"q": method, b"a": args, b"r": args, b"e": [201, b"x"]}
    node.datagram_received(bencode.encode(msg), (host, 6881))
    assert len(sent) <= 1
    for data, _ in sent:
        reply = krpc.decode(data)  # whatever we answer is itself valid KRPC
        assert reply.tid == b"aa"


class FakeNetwork:
    """A simulated network of ``n`` nodes answering find_node after a delay, to observe how many
    queries a lookup keeps in flight and that it converges on the true closest nodes."""

    def __init__(self, n: int, node: DHTNode, report_ip: str = "127.0.0.1") -> None:
        self.ids = {(f"10.0.{i // 250}.{i % 250 + 1}", 6881): os.urandom(20) for i in range(n)}
        self.node = node
        self.report_ip = report_ip
        self.inflight = 0
        self.max_inflight = 0
        self.queried: set[tuple[str, int]] = set()

    def send(self, data: bytes, addr: tuple[str, int]) -> None:
        q = krpc.decode(data)
        assert isinstance(q, Query)
        self.inflight += 1
        self.max_inflight = max(self.max_inflight, self.inflight)
        self.queried.add(addr)
        asyncio.get_running_loop().call_later(0.01, self._answer, q, addr)

    def _answer(self, q: Query, addr: tuple[str, int]) -> None:
        self.inflight -= 1
        target = q.target or os.urandom(20)
        closest = sorted(self.ids.items(), key=lambda kv: distance(kv[1], target))[:8]
        nodes = [NodeInfo(nid, h, p) for (h, p), nid in closest]
        body = {b"id": self.ids[addr], b"nodes": krpc.encode_nodes(nodes), b"token": b"tk"}
        reply = krpc.encode_response(q.tid, body, ip=(self.report_ip, 4000))
        self.node.datagram_received(reply, addr)


async def test_iterative_lookup_keeps_alpha_3_in_flight_and_converges() -> None:
    node = DHTNode(DHTConfig(query_timeout=1.0))
    net = FakeNetwork(300, node)
    first = next(iter(net.ids))
    node = DHTNode(DHTConfig(bootstrap=(first,), query_timeout=1.0))
    net.node = node
    node.attach(net.send)
    try:
        assert await node.wait_bootstrapped(10)  # attach() starts its own bootstrap lookup
        net.max_inflight = 0
        net.queried.clear()
        target = os.urandom(20)
        found = await node.find_node(target)
        truth = sorted(net.ids.values(), key=lambda i: distance(i, target))[:8]
        assert [n.node_id for n in found] == truth
        assert net.max_inflight == 3  # alpha
        assert len(net.queried) < 60  # a lookup, not a crawl
    finally:
        await node.stop()


async def test_secure_node_id_adopted_once_nodes_agree_on_our_public_ip() -> None:
    public = "65.23.51.170"
    node = DHTNode(DHTConfig(query_timeout=1.0))
    net = FakeNetwork(20, node, report_ip=public)
    node = DHTNode(DHTConfig(bootstrap=tuple(net.ids)[:3], query_timeout=1.0))
    net.node = node
    node.attach(net.send)
    try:
        old = node.node_id
        assert not is_secure_id(old, public)
        await node.bootstrap()
        assert node.external_ip == public
        assert node.node_id != old and is_secure_id(node.node_id, public)
        assert len(node) > 0  # contacts survived the table rebuild under the new id
    finally:
        await node.stop()


async def test_ip_filter_blocks_both_directions() -> None:
    a = await _node(is_blocked=lambda ip: ip == "127.0.0.1")
    b = await _node()
    try:
        with pytest.raises(DHTQueryError):
            await b.ping((LO, a.port))  # a drops what a blocked address sends
        assert a.stats["blocked"] >= 1
        with pytest.raises(DHTQueryError, match="cannot reach"):
            await a.ping((LO, b.port))  # and never sends to one
    finally:
        await a.stop()
        await b.stop()
