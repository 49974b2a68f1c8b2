"""uTP core (BEP 29) on a simulated network, plus the asyncio shell over real loopback UDP.

The simulated network is deterministic: a seeded RNG decides loss, duplication and extra delay
(reordering), and a fake clock jumps straight to the next delivery or timer deadline, so a
transfer that would take seconds of real time runs in milliseconds and always the same way.
"""

from __future__ import annotations

import asyncio
import contextlib
import heapq
import itertools
import random
import struct
from dataclasses import dataclass, field

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from ccbt_engine.protocol import utp
from ccbt_engine.protocol.utp import (
    Closed,
    Connected,
    Data,
    Packet,
    Reset,
    UTPConnection,
    UTPError,
    decode,
    encode,
)

pytestmark = pytest.mark.timeout(60)


@dataclass
class SimNet:
    """Two endpoints ("a", "b"), one-way delay, seeded loss/duplication/reordering."""

    seed: int = 1
    delay: float = 0.02
    jitter: float = 0.0
    loss: float = 0.0
    dup: float = 0.0
    queue: list[tuple[float, int, str, bytes]] = field(default_factory=list)
    sent: int = 0
    dropped: int = 0

    def __post_init__(self) -> None:
        self.rng = random.Random(self.seed)

    def send(self, dst: str, datagram: bytes, now: float) -> None:
        self.sent += 1
        if self.rng.random() < self.loss:
            self.dropped += 1
            return
        copies = 2 if self.rng.random() < self.dup else 1
        for _ in range(copies):
            at = now + self.delay + self.rng.random() * self.jitter
            heapq.heappush(self.queue, (at, self.sent * 4 + copies, dst, datagram))


@dataclass
class Endpoint:
    conn: UTPConnection | None
    received: bytearray = field(default_factory=bytearray)
    events: list[utp.Event] = field(default_factory=list)

    def take(self, events: list[utp.Event]) -> None:
        for event in events:
            self.events.append(event)
            if isinstance(event, Data):
                self.received += event.data


def run(
    net: SimNet,
    a: Endpoint,
    b: Endpoint,
    *,
    until: float = 600.0,
    stop: object = None,
    on_step: object = None,
) -> float:
    """Move packets until nothing is left to do (or ``until``); returns the fake time."""
    now = 0.0
    peers = {"a": a, "b": b}
    other = {"a": "b", "b": "a"}
    while now < until:
        for name, ep in peers.items():
            if ep.conn is not None:
                for dg in ep.conn.poll(now):
                    net.send(other[name], dg, now)
        if callable(stop) and stop():
            return now
        deadlines = [ep.conn.deadline() for ep in peers.values() if ep.conn is not None]
        times = [d for d in deadlines if d is not None]
        if net.queue:
            times.append(net.queue[0][0])
        if not times:
            return now
        now = max(now, min(times))
        while net.queue and net.queue[0][0] <= now:
            _, _, dst, dg = heapq.heappop(net.queue)
            ep = peers[dst]
            if ep.conn is None:  # b listens: the first SYN creates its connection
                pkt = decode(dg)
                if pkt.type == utp.ST_SYN:
                    ep.conn = UTPConnection.accept(pkt, now, seq_nr=30000)
                continue
            ep.take(ep.conn.receive(dg, now))
        for ep in peers.values():
            if ep.conn is not None:
                ep.take(ep.conn.timer(now))
        if callable(on_step):
            on_step(now)
    return now


def transfer(
    net: SimNet, size_ab: int, size_ba: int = 0, *, seed: int = 7
) -> tuple[Endpoint, Endpoint, float]:
    rng = random.Random(seed)
    data_ab = rng.randbytes(size_ab)
    data_ba = rng.randbytes(size_ba)
    a = Endpoint(UTPConnection.connect(1000, 0.0))
    b = Endpoint(None)
    state = {"sent_b": False, "closed": set()}

    def step(now: float) -> None:
        if b.conn is not None and not state["sent_b"]:
            state["sent_b"] = True
            if data_ba:
                b.conn.send(data_ba)
            b.conn.close()

    assert a.conn is not None
    a.conn.send(data_ab)
    a.conn.close()
    end = run(net, a, b, on_step=step)
    assert bytes(b.received) == data_ab
    assert bytes(a.received) == data_ba
    return a, b, end


def test_header_round_trip() -> None:
    pkt = Packet(utp.ST_DATA, 0x1234, 5, 6, 7, 65535, 0, b"\x01\x00\x00\x80", b"payload")
    assert decode(encode(pkt)) == pkt
    raw = encode(pkt)
    assert raw[0] == 0x01 and raw[1] == utp.EXT_SACK
    assert struct.unpack(">H", raw[2:4])[0] == 0x1234


def test_clean_transfer_both_directions() -> None:
    a, b, end = transfer(SimNet(delay=0.01), 300_000, 200_000)
    assert a.conn is not None and b.conn is not None
    assert a.conn.retransmits == 0 and b.conn.retransmits == 0
    assert any(isinstance(e, Connected) for e in a.events)
    assert isinstance(a.events[-1], Closed) and isinstance(b.events[-1], Closed)
    assert a.conn.finished and b.conn.finished
    assert end < 10


@pytest.mark.parametrize("seed", [1, 2, 3])
def test_lossy_reordering_duplicating_network(seed: int) -> None:
    net = SimNet(seed=seed, delay=0.02, jitter=0.03, loss=0.05, dup=0.03)
    a, _b, _ = transfer(net, 400_000, 100_000, seed=seed)
    assert net.dropped > 10
    assert a.conn is not None and a.conn.retransmits > 0


def test_selective_ack_repairs_a_single_hole() -> None:
    """Drop exactly one DATA packet: the receiver SACKs the ones after it; the sender resends
    only the hole long before the retransmission timeout."""
    net = SimNet(delay=0.01)
    dropped: list[int] = []
    original = net.send

    def send(dst: str, dg: bytes, now: float) -> None:
        pkt = decode(dg)
        if dst == "b" and pkt.type == utp.ST_DATA and pkt.seq_nr == 5 and not dropped:
            dropped.append(pkt.seq_nr)
            return
        original(dst, dg, now)

    net.send = send  # type: ignore[method-assign,assignment]
    sacks: list[bytes] = []
    a = Endpoint(UTPConnection.connect(77, 0.0))
    b = Endpoint(None)
    assert a.conn is not None
    a.conn.send(bytes(range(256)) * 200)

    real_poll = UTPConnection.poll

    def spy(self: UTPConnection, now: float) -> list[bytes]:
        out = real_poll(self, now)
        if self is b.conn:
            sacks.extend(p.sack for p in map(decode, out) if p.sack)
        return out

    UTPConnection.poll = spy  # type: ignore[method-assign]
    try:
        end = run(net, a, b, stop=lambda: len(b.received) == 51200)
    finally:
        UTPConnection.poll = real_poll  # type: ignore[method-assign]
    assert dropped == [5]
    assert bytes(b.received) == bytes(range(256)) * 200
    assert sacks and sacks[0][0] & 1  # ack_nr = 4, so bit 0 (= seq 6) is the first one SACKed
    assert a.conn.retransmits == 1
    assert end < utp.INITIAL_RTO


def test_sack_bits_acknowledge_packets_out_of_order() -> None:
    conn = UTPConnection.connect(10, 0.0, seq_nr=100)
    conn.poll(0.0)  # SYN 100
    conn.receive(encode(Packet(utp.ST_STATE, 11, 0, 0, 1 << 20, 500, 100)), 0.01)
    conn.send(b"x" * (utp.PAYLOAD_SIZE * 6))
    sent = [decode(d) for d in conn.poll(0.02)]
    assert [p.seq_nr for p in sent] == [101, 102]  # initial window: two packets
    conn.cwnd = 10 * utp.PAYLOAD_SIZE
    sent = [decode(d) for d in conn.poll(0.02)]
    assert [p.seq_nr for p in sent] == [103, 104, 105, 106]
    # ack 101, SACK 103..106 (bits 0..3 = ack_nr+2 ..): 102 lost, 4 overtook it
    conn.receive(
        encode(Packet(utp.ST_STATE, 11, 0, 0, 1 << 20, 500, 101, b"\x0f\x00\x00\x00")), 0.05
    )
    assert conn.unacked == utp.PAYLOAD_SIZE  # only 102 left
    again = [decode(d) for d in conn.poll(0.05)]
    assert [p.seq_nr for p in again] == [102]
    assert conn.retransmits == 1


def test_connect_times_out_into_reset() -> None:
    conn = UTPConnection.connect(5, 0.0)
    syns = conn.poll(0.0)
    assert len(syns) == 1 and decode(syns[0]).type == utp.ST_SYN
    events: list[utp.Event] = []
    now = 0.0
    for _ in range(20):
        deadline = conn.deadline()
        if deadline is None:
            break
        now = deadline
        events += conn.timer(now)
        syns += conn.poll(now)
    assert events == [Reset("connection timed out")]
    assert len(syns) == utp.SYN_ATTEMPTS
    assert conn.finished and 5 < now < 10


def test_dead_peer_times_out_into_reset() -> None:
    net = SimNet(delay=0.01)
    a = Endpoint(UTPConnection.connect(1, 0.0))
    b = Endpoint(None)
    assert a.conn is not None
    run(net, a, b, stop=lambda: any(isinstance(e, Connected) for e in a.events))
    b.conn = None  # the peer vanishes
    net.loss = 1.0
    a.conn.send(b"z" * 10_000)
    end = run(net, a, Endpoint(None))
    assert isinstance(a.events[-1], Reset) and "timed out" in a.events[-1].reason
    assert end > utp.MIN_RTO * (2**utp.MAX_TIMEOUTS - 2)


def test_peer_reset_is_reported() -> None:
    conn = UTPConnection.accept(Packet(utp.ST_SYN, 40, 0, 0, 1 << 20, 1, 0), 0.0, seq_nr=9)
    assert conn.recv_id == 41 and conn.send_id == 40
    synack = decode(conn.poll(0.0)[0])
    assert (synack.type, synack.connection_id, synack.ack_nr, synack.seq_nr) == (2, 40, 1, 9)
    events = conn.receive(encode(Packet(utp.ST_RESET, 41, 0, 0, 0, 2, 9)), 0.1)
    assert events == [Reset("connection reset by peer")]
    assert conn.finished and conn.poll(0.2) == []


def test_paused_reading_shrinks_window_and_holds_data() -> None:
    conn = UTPConnection.accept(Packet(utp.ST_SYN, 40, 0, 0, 1 << 20, 1, 0), 0.0, seq_nr=9)
    conn.pause_reading()
    events = conn.receive(encode(Packet(utp.ST_DATA, 41, 0, 0, 1 << 20, 2, 8, None, b"abc")), 0.1)
    assert events == []
    assert conn.window == utp.RECV_WINDOW - 3
    assert conn.resume_reading() == [Data(b"abc")]
    assert decode(conn.poll(0.2)[-1]).wnd_size == utp.RECV_WINDOW


def _ledbat_rounds(delays_us: list[int]) -> UTPConnection:
    """A connected sender; per round, send a window's worth and ack all of it at once."""
    conn = UTPConnection.connect(10, 0.0, seq_nr=100)
    conn.poll(0.0)
    conn.receive(encode(Packet(utp.ST_STATE, 11, 0, 0, 1 << 24, 500, 100)), 0.01)
    conn.cwnd = 100_000
    conn._slow_start = False
    conn.send(b"y" * 5_000_000)
    now = 0.02
    for delay in delays_us:
        last = decode(conn.poll(now)[-1]).seq_nr
        now += 0.05
        conn.receive(encode(Packet(utp.ST_STATE, 11, 0, delay, 1 << 24, 500, last)), now)
    return conn


def test_ledbat_shrinks_window_when_delay_exceeds_target() -> None:
    conn = _ledbat_rounds([1000] + [1000 + 300_000] * 10)  # base 1 ms, then 300 ms queueing
    assert conn.cwnd < 100_000 - 8 * utp.MAX_CWND_INCREASE


def test_ledbat_grows_window_below_target() -> None:
    conn = _ledbat_rounds([1000] + [1000 + 20_000] * 10)  # 20 ms queueing: under the target
    assert 100_000 + 5 * utp.MAX_CWND_INCREASE < conn.cwnd <= 100_000 + 11 * utp.MAX_CWND_INCREASE


def test_resent_syn_is_answered_again() -> None:
    syn = Packet(utp.ST_SYN, 40, 0, 0, 1 << 20, 1, 0)
    conn = UTPConnection.accept(syn, 0.0, seq_nr=9)
    conn.poll(0.0)
    conn.receive(encode(syn), 1.0)
    again = [decode(d) for d in conn.poll(1.0)]
    assert [(p.type, p.ack_nr) for p in again] == [(utp.ST_STATE, 1)]


@settings(max_examples=400, deadline=None)
@given(st.binary(max_size=80))
def test_garbage_datagrams_raise_only_utp_error(data: bytes) -> None:
    with contextlib.suppress(UTPError):
        decode(data)
    conn = UTPConnection.accept(Packet(utp.ST_SYN, 40, 0, 0, 1 << 20, 1, 0), 0.0, seq_nr=9)
    with contextlib.suppress(UTPError):
        conn.receive(data, 0.5)
    conn.poll(0.6)
    conn.timer(2.0)


@settings(max_examples=300, deadline=None)
@given(
    st.lists(
        st.tuples(
            st.integers(0, 4),
            st.integers(0, 0xFFFF),
            st.integers(0, 0xFFFF),
            st.one_of(st.none(), st.binary(min_size=4, max_size=4)),
            st.binary(max_size=40),
        ),
        max_size=20,
    )
)
def test_hostile_well_formed_packets_never_crash(
    packets: list[tuple[int, int, int, bytes | None, bytes]],
) -> None:
    """Valid headers with arbitrary seq/ack/SACK values only ever produce events."""
    conn = UTPConnection.connect(10, 0.0)
    conn.send(b"q" * 20_000)
    now = 0.0
    for ptype, seq, ack, sack, payload in packets:
        now += 0.05
        pkt = Packet(ptype, 11, 0, 0, 1 << 16, seq, ack, sack, payload)
        conn.receive(encode(pkt), now)
        conn.poll(now)
        conn.timer(now)
    assert conn.unacked >= 0 and conn.window >= 0


def test_shell_loopback_transfer() -> None:
    from ccbt_engine.net.utp_socket import UTPSocket

    class Sink(asyncio.Protocol):
        def __init__(self) -> None:
            self.data = bytearray()
            self.done = asyncio.get_running_loop().create_future()

        def data_received(self, data: bytes) -> None:
            self.data += data

        def connection_lost(self, exc: Exception | None) -> None:
            if not self.done.done():
                self.done.set_result(None)

    payload = random.Random(3).randbytes(3_000_000)

    async def main() -> None:
        sinks: list[Sink] = []

        def incoming() -> asyncio.Protocol:
            sink = Sink()
            sinks.append(sink)
            return sink

        server = await UTPSocket.open("127.0.0.1", 0, accept=incoming)
        client = await UTPSocket.open("127.0.0.1", 0)
        krpc: list[bytes] = []
        server.register_handler(lambda d: d[:1] == b"d", lambda d, addr: krpc.append(d))
        try:
            transport, _proto = await client.connect(Sink, "127.0.0.1", server.port, timeout=5)
            assert transport.get_extra_info("peername") == ("127.0.0.1", server.port)
            assert transport.get_extra_info("socket") is None
            transport.write(payload[:1000])
            transport.writelines([payload[1000:2000], memoryview(payload)[2000:]])
            transport.close()
            client.sendto(b"d1:ad2:id20:" + b"x" * 20 + b"e1:q4:ping1:t2:aa1:y1:qe", server.address)
            await asyncio.wait_for(sinks_done(sinks), 20)
            assert bytes(sinks[0].data) == payload
            assert krpc and krpc[0].startswith(b"d1:a")
            assert transport.is_closing()
        finally:
            client.close()
            server.close()

    async def sinks_done(sinks: list[Sink]) -> None:
        while not sinks:
            await asyncio.sleep(0.01)
        await sinks[0].done

    asyncio.run(main())


def test_shell_connect_refused_without_listener() -> None:
    from ccbt_engine.net.utp_socket import UTPSocket

    async def main() -> None:
        server = await UTPSocket.open("127.0.0.1", 0)  # accepts nothing: answers SYN with RESET
        client = await UTPSocket.open("127.0.0.1", 0)
        try:
            with pytest.raises(ConnectionError):
                await client.connect(asyncio.Protocol, "127.0.0.1", server.port, timeout=5)
        finally:
            client.close()
            server.close()

    asyncio.run(main())


def test_partial_resume_keeps_order() -> None:
    """A reader that resumes in bites (a rate limiter) gets the backlog first, then new data."""
    conn = UTPConnection.accept(Packet(utp.ST_SYN, 40, 0, 0, 1 << 20, 1, 0), 0.0, seq_nr=9)
    conn.pause_reading()
    conn.receive(encode(Packet(utp.ST_DATA, 41, 0, 0, 1 << 20, 2, 8, None, b"abcd")), 0.1)
    assert conn.resume_reading(3) == [Data(b"abc")]
    assert conn.held == 1
    events = conn.receive(encode(Packet(utp.ST_DATA, 41, 0, 0, 1 << 20, 3, 8, None, b"ef")), 0.2)
    assert events == []  # queued behind the held byte, not overtaking it
    assert conn.resume_reading() == [Data(b"def")]
    assert conn.held == 0


# -- the libtorrent stall (issue 7), replayed packet by packet ------------------------------
# Relay logs of ccbt downloading from libtorrent through 1 % loss showed two ways to stall, both
# ending with libtorrent silently dropping the connection (it gives a packet three
# transmissions, utp_num_resends, and sends no RESET) while ccbt waited for data forever:
#  1. packets 5..9 lost twice; libtorrent's timeout resends them one per ACK (one packet in
#     flight), and the ACK for the last one is lost: nothing later re-acknowledges it;
#  2. one packet lost three times: no ACK can help, the sender is gone.
LT_ID = 40  # libtorrent's SYN connection id: it sends DATA on 41, we answer on 40
LT_MIN_TIMEOUT = 0.5  # libtorrent's utp_min_timeout: its retransmission timer never fires sooner


def _lt_data(seq: int, payload: bytes = b"p" * 100) -> bytes:
    return encode(Packet(utp.ST_DATA, LT_ID + 1, 1, 0, 1 << 20, seq, 9, None, payload))


def _receiver_with_hole() -> tuple[UTPConnection, float]:
    """Accepted connection: DATA 2..20 arrived except 5..9 (the first-transmission loss)."""
    conn = UTPConnection.accept(Packet(utp.ST_SYN, LT_ID, 1, 0, 1 << 20, 1, 0), 0.0, seq_nr=10)
    conn.poll(0.0)  # SYN-ACK
    for seq in range(2, 21):
        if not 5 <= seq <= 9:
            conn.receive(_lt_data(seq), 0.1)
    last = decode(conn.poll(0.1)[-1])
    assert last.ack_nr == 4 and last.sack is not None
    return conn, 0.1


def _run_silence(conn: UTPConnection, start: float, until: float) -> tuple[list[Packet], float]:
    """Nothing arrives: run the timers as a shell would; returns what was sent and the time."""
    sent: list[Packet] = []
    now = start
    while not conn.finished:
        deadline = conn.deadline()
        if deadline is None or deadline > until:
            break
        now = max(now, deadline)
        conn.timer(now)
        sent += [decode(d) for d in conn.poll(now)]
    return sent, now


def test_lost_ack_of_a_timeout_resend_is_repeated_before_the_sender_times_out() -> None:
    conn, now = _receiver_with_hole()
    # libtorrent's timeout: it resends 5, 6, 7 one at a time, each after our ACK of the last
    for seq in (5, 6, 7):
        now += 0.8 if seq == 5 else 0.001
        conn.receive(_lt_data(seq), now)
        acks = [decode(d) for d in conn.poll(now)]  # the ACK for 7 is the one the relay drops
        assert acks[-1].ack_nr == seq
    # silence: libtorrent waits at least 500 ms for that ACK, then gives the connection up
    sent, _ = _run_silence(conn, now, now + 0.5)
    assert [(p.type, p.ack_nr) for p in sent] == [(utp.ST_STATE, 7)]
    assert sent[0].sack is not None and sent[0].sack[0] & 0b100  # 10 (= ack_nr + 3) still held


def test_ack_is_repeated_once_per_silence_not_as_a_stream() -> None:
    """Every packet we send restarts libtorrent's timeout: repeating the ACK on a timer would
    keep it from ever resending the hole. One repeat per silence, then leave the sender be."""
    conn, now = _receiver_with_hole()
    sent, _ = _run_silence(conn, now, now + utp.HOLE_PROBE_AFTER - 0.01)
    assert [(p.type, p.ack_nr) for p in sent] == [(utp.ST_STATE, 4)]


def test_a_silent_hole_is_probed_slowly_enough_for_the_sender_to_resend() -> None:
    """The probes repeat our newest acknowledged packet (nothing sent yet: seq_nr - 1) without
    payload, and leave libtorrent's 500 ms timer room to fire between them."""
    conn, now = _receiver_with_hole()
    probes: list[tuple[float, Packet]] = []
    t = now
    while not conn.finished:
        deadline = conn.deadline()
        assert deadline is not None
        t = deadline
        conn.timer(t)
        probes += [(t, p) for p in map(decode, conn.poll(t)) if p.type == utp.ST_DATA]
    assert len(probes) == utp.HOLE_PROBES
    assert {(p.seq_nr, p.payload, p.ack_nr) for _, p in probes} == {(9, b"", 4)}  # seq_nr=10
    times = [at for at, _ in probes]
    assert times[0] == pytest.approx(now + utp.HOLE_PROBE_AFTER)
    gaps = [b - a for a, b in itertools.pairwise(times)]
    assert gaps == pytest.approx([utp.HOLE_PROBE_INTERVAL] * (utp.HOLE_PROBES - 1))
    assert utp.HOLE_PROBE_INTERVAL > LT_MIN_TIMEOUT
    assert t == pytest.approx(now + utp.HOLE_TIMEOUT)


def test_an_answered_probe_keeps_the_connection() -> None:
    """A live sender in a long back-off (libutp: up to 8 s) answers the probe; we wait on."""
    conn, now = _receiver_with_hole()
    for _ in range(5):
        sent, now = _run_silence(conn, now, now + utp.HOLE_PROBE_AFTER + 0.1)
        assert [p.type for p in sent if p.type == utp.ST_DATA] == [utp.ST_DATA]
        state = Packet(utp.ST_STATE, LT_ID + 1, 1, 0, 1 << 20, 21, 9)  # its ACK of the probe
        conn.receive(encode(state), now + 0.01)
    assert not conn.finished
    conn.receive(_lt_data(5), now + 1.0)
    assert conn.ack_nr == 5


def test_a_probe_from_the_peer_is_answered_with_an_ack_and_delivers_nothing() -> None:
    conn, now = _receiver_with_hole()
    assert conn.receive(_lt_data(4, b""), now + 0.5) == []  # seq 4 = our ack_nr: old
    acks = [decode(d) for d in conn.poll(now + 0.5)]
    assert [(p.type, p.ack_nr) for p in acks] == [(utp.ST_STATE, 4)]


def test_a_hole_the_sender_never_fills_times_the_connection_out() -> None:
    conn, now = _receiver_with_hole()
    conn.receive(_lt_data(5), now + 0.8)  # the hole shrinks, but 6..9 never come
    conn.poll(now + 0.8)
    events: list[utp.Event] = []
    t = now + 0.8
    while not conn.finished:
        deadline = conn.deadline()
        assert deadline is not None, "a receiver with a hole must keep a timer running"
        t = deadline
        events += conn.timer(t)
        conn.poll(t)
    assert len(events) == 1 and isinstance(events[0], Reset)
    assert "timed out" in events[0].reason
    assert t == pytest.approx(now + 0.8 + utp.HOLE_TIMEOUT)


def test_a_hole_is_not_timed_out_while_the_sender_keeps_talking() -> None:
    """Only silence counts: a slow sender still delivering later packets is alive."""
    conn, now = _receiver_with_hole()
    for step in range(1, 40):
        now += utp.HOLE_TIMEOUT / 4
        conn.receive(_lt_data(20 + step), now)
        assert conn.timer(now) == []
        conn.poll(now)
    assert not conn.finished
    conn.receive(_lt_data(5), now)
    assert conn.ack_nr == 5 and not conn.finished


# -- what uTP changes above it: one port for every connection -------------------------------
# Over uTP our outgoing connections come from the listen port, so libtorrent matches them to the
# peer entry it already has for that address; for a hybrid torrent found through its v2 swarm
# that entry prefers the truncated v2 infohash, and libtorrent answers our v1 handshake with it.


class _Handler:
    def on_peer_connected(self, conn: object) -> str | None:
        return None


@pytest.mark.parametrize(
    ("answer", "accepted"),
    [(b"1" * 20, True), (b"2" * 20, True), (b"3" * 20, False), (b"4" * 20, False)],
)
async def test_a_hybrid_torrents_other_infohash_is_a_valid_answer(
    answer: bytes, accepted: bool
) -> None:
    from ccbt_engine.net.peer import PeerConnection
    from ccbt_engine.protocol import wire

    ours, other = _Handler(), _Handler()
    v1, v2, alien = b"1" * 20, b"2" * 20, b"3" * 20  # b"4" * 20: no torrent at all
    table = {v1: (ours, v1, 4), v2: (ours, v2, 4), alien: (other, alien, 4)}
    conn = PeerConnection(
        peer_id=b"-CC0001-" + b"x" * 12,
        lookup=table.get,  # type: ignore[arg-type]
        outgoing_info_hash=v1,
        encryption="disabled",
    )
    reply = wire.Handshake(info_hash=answer, peer_id=b"-LT2010-" + b"y" * 12, reserved=bytes(8))
    assert conn._accept_handshake(reply) is accepted
    assert conn.info_hash == (answer if accepted else v1)
