"""uTP (BEP 29), sans-I/O: one connection's state machine.

Feed it datagrams and the current time; it returns events (:class:`Connected`, :class:`Data`,
:class:`Closed`, :class:`Reset`) and, from :meth:`UTPConnection.poll`, the datagrams to send.
:meth:`UTPConnection.deadline` says when :meth:`UTPConnection.timer` must run next. No socket,
no clock: the asyncio shell (``net/utp_socket.py``) owns both.

Sequence-number rules follow libtorrent and libutp, which disagree with a literal reading of the
BEP in one place: every packet carries the *next* unused ``seq_nr``; SYN, DATA and FIN consume it,
STATE does not. So the initiator, on the SYN-ACK (a STATE), sets ``ack_nr = seq_nr - 1``.

Congestion control is LEDBAT with the BEP's 100 ms target: the peer echoes our timestamps as
``timestamp_difference``; the smallest difference seen in the last two minutes is the base
(propagation) delay and anything above it is queueing we caused. Losses (three duplicate or
selective acknowledgements past a packet, or a timeout) halve the window like TCP.
"""

from __future__ import annotations

import bisect
import enum
import struct
from dataclasses import dataclass

#: BEP 29 packet types
ST_DATA, ST_FIN, ST_STATE, ST_RESET, ST_SYN = 0, 1, 2, 3, 4
VERSION = 1
HEADER_SIZE = 20
EXT_SACK = 1

_HEADER = struct.Struct(">BBHIIIHH")
_SEQ = 0xFFFF
_TS = 0xFFFFFFFF

#: payload bytes per DATA packet: 1380 + 20 header + a 34-byte SACK stays below 1472, the UDP
#: payload of an unfragmented 1500-byte Ethernet frame (a safe fixed size instead of MTU probing)
PAYLOAD_SIZE = 1380
#: receive window we advertise; in-order bytes the application has not taken count against it
RECV_WINDOW = 2 * 1024 * 1024
#: LEDBAT target queueing delay (BEP 29: 100 ms)
TARGET_DELAY_US = 100_000
#: LEDBAT gain: the window grows by at most this many bytes per round trip
MAX_CWND_INCREASE = 3000
MAX_CWND = 8 * 1024 * 1024
MIN_RTO = 0.5
MAX_RTO = 30.0
INITIAL_RTO = 1.0
#: consecutive timeouts before the connection is declared dead
MAX_TIMEOUTS = 6
#: SYN transmissions before a connect attempt gives up
SYN_ATTEMPTS = 3
#: an accepted connection whose initiator never speaks is dropped after this long
SYN_RECV_TIMEOUT = 20.0
#: packets a sender may have in flight (well below half the 16-bit sequence space)
MAX_OUTSTANDING = 8192
#: receive side: how far ahead of ack_nr a packet may be and still be buffered
MAX_REORDER = 2000
#: SACK bitmask bytes on a DATA packet (BEP: a multiple of 4); 32 bytes cover 256 packets
SACK_BYTES = 32
#: on a STATE packet the SACK covers the whole reorder span, as libtorrent's does: packets past
#: a short mask are never acknowledged, and libtorrent then stalls on the hole before them
STATE_SACK_BYTES = 252  # the extension length is one byte: 2016 packets
DUP_ACKS = 3
#: after received data, this much silence makes us send the last ACK once more. A sender that
#: is recovering from a timeout has a single packet in flight, so nothing later re-acknowledges
#: it if that ACK is lost; libtorrent then waits for its next timeout and, because that packet
#: has by then been sent three times (``utp_num_resends``), drops the connection without a
#: RESET. libtorrent's timeout is never below 500 ms, so the repeat arrives first.
ACK_REPEAT_DELAY = 0.2
#: receive side, a hole in the sequence and the peer silent: is the sender still there? A
#: sender gives a packet a limited number of transmissions (libtorrent three, then it drops the
#: connection without a RESET and ignores our packets), so a packet lost that often is a dead
#: connection that would otherwise wait for data forever. After HOLE_PROBE_AFTER of silence we
#: probe: a duplicate of our last acknowledged DATA packet, which every implementation answers
#: with an ACK (it is how a receiver recovers a lost ACK). A live sender answers, even one deep
#: in its exponential back-off (libutp's reaches 8 s); a dead one does not, and after
#: HOLE_PROBES unanswered probes the connection is reset and the engine dials the peer again.
#: Probes are HOLE_PROBE_INTERVAL apart and start again only after fresh silence: each packet
#: we send restarts libtorrent's retransmission timer (500 ms at least), so probing any faster
#: would keep a live sender from ever resending the hole.
HOLE_PROBE_AFTER = 2.0
HOLE_PROBE_INTERVAL = 1.0
HOLE_PROBES = 4
#: silence with a hole after which the connection is reset (when no probe was answered)
HOLE_TIMEOUT = HOLE_PROBE_AFTER + HOLE_PROBES * HOLE_PROBE_INTERVAL
#: base delay history: one minimum per minute, the last two minutes count
DELAY_BUCKET = 60.0


class UTPError(Exception):
    """A datagram that is not a well-formed uTP packet."""


@dataclass(frozen=True, slots=True)
class Packet:
    type: int
    connection_id: int
    timestamp: int
    timestamp_diff: int
    wnd_size: int
    seq_nr: int
    ack_nr: int
    sack: bytes | None = None
    payload: bytes = b""


def decode(data: bytes) -> Packet:
    """Parse one datagram; raises :class:`UTPError` for anything that is not uTP v1."""
    if len(data) < HEADER_SIZE:
        raise UTPError(f"datagram of {len(data)} bytes is shorter than a uTP header")
    tv, ext, conn_id, ts, tsdiff, wnd, seq, ack = _HEADER.unpack_from(data)
    ptype, version = tv >> 4, tv & 0x0F
    if version != VERSION:
        raise UTPError(f"uTP version {version} is not 1")
    if ptype > ST_SYN:
        raise UTPError(f"unknown uTP packet type {ptype}")
    pos = HEADER_SIZE
    sack: bytes | None = None
    while ext:
        if pos + 2 > len(data):
            raise UTPError("truncated uTP extension header")
        next_ext, length = data[pos], data[pos + 1]
        body = data[pos + 2 : pos + 2 + length]
        if len(body) != length:
            raise UTPError("truncated uTP extension")
        if ext == EXT_SACK and length:
            # BEP 29 says a multiple of 4 bytes; libtorrent sends any length (5, 6, 7 ...) once
            # its reorder span passes 32 packets, so refusing those would drop all its ACKs
            sack = bytes(body)
        ext = next_ext
        pos += 2 + length
    return Packet(ptype, conn_id, ts, tsdiff, wnd, seq, ack, sack, bytes(data[pos:]))


def encode(packet: Packet) -> bytes:
    ext = EXT_SACK if packet.sack else 0
    head = _HEADER.pack(
        (packet.type << 4) | VERSION,
        ext,
        packet.connection_id,
        packet.timestamp & _TS,
        packet.timestamp_diff & _TS,
        packet.wnd_size & _TS,
        packet.seq_nr & _SEQ,
        packet.ack_nr & _SEQ,
    )
    if packet.sack:
        return b"".join((head, bytes((0, len(packet.sack))), packet.sack, packet.payload))
    return head + packet.payload if packet.payload else head


def timestamp_us(now: float) -> int:
    return int(now * 1_000_000) & _TS


def _dist(a: int, b: int) -> int:
    """How far ``a`` is ahead of ``b`` in 16-bit sequence space (0..65535)."""
    return (a - b) & _SEQ


# -- events -------------------------------------------------------------------------------
@dataclass(frozen=True, slots=True)
class Connected:
    """The SYN was answered (initiator); the connection can carry data."""


@dataclass(frozen=True, slots=True)
class Data:
    data: bytes


@dataclass(frozen=True, slots=True)
class Closed:
    """The peer sent FIN and every byte before it has been delivered."""


@dataclass(frozen=True, slots=True)
class Reset:
    """The connection is dead: reset by the peer, or timed out."""

    reason: str


Event = Connected | Data | Closed | Reset


class State(enum.Enum):
    SYN_SENT = "syn_sent"
    #: SYN answered, nothing heard since: we may not send DATA yet
    SYN_RECV = "syn_recv"
    CONNECTED = "connected"
    #: our FIN is queued or in flight
    CLOSING = "closing"
    #: our FIN is acknowledged; nothing more to send
    CLOSED = "closed"
    RESET = "reset"


@dataclass(slots=True)
class _Out:
    seq: int
    type: int
    payload: bytes
    sent_at: float = 0.0
    transmissions: int = 0
    need_resend: bool = False
    fast_resent: bool = False

    @property
    def size(self) -> int:
        return len(self.payload) + HEADER_SIZE


class UTPConnection:
    """One uTP connection. Create with :meth:`connect` (initiator) or :meth:`accept`."""

    def __init__(
        self,
        *,
        recv_id: int,
        send_id: int,
        seq_nr: int,
        now: float,
        payload_size: int = PAYLOAD_SIZE,
        recv_window: int = RECV_WINDOW,
    ) -> None:
        self.recv_id = recv_id & _SEQ
        self.send_id = send_id & _SEQ
        self.seq_nr = seq_nr & _SEQ
        self.ack_nr = 0
        self.state = State.SYN_SENT
        self.payload_size = payload_size
        self.recv_window = recv_window
        # sending
        self._sendbuf = bytearray()
        self._inflight: dict[int, _Out] = {}  # insertion order == sequence order
        self._in_flight_bytes = 0
        self._fin_queued = False
        self._fin_seq: int | None = None
        self.peer_window = recv_window
        self.cwnd = 2 * (payload_size + HEADER_SIZE)
        self._slow_start = True
        self._ssthresh = MAX_CWND
        self.rtt = 0.0
        self.rtt_var = 0.0
        self.rto = INITIAL_RTO
        self._rto_deadline: float | None = None
        self._timeouts = 0
        self._dup_acks = 0
        self._last_loss = -1e9
        self._delay_hist: list[tuple[float, int]] = []  # (bucket start, min diff µs)
        self._reply_micro = 0  # timestamp_difference to put in our packets
        # receiving
        self._ooo: dict[int, tuple[int, bytes]] = {}  # seq -> (type, payload)
        self._ooo_bytes = 0
        self._held: list[bytes] = []
        self._held_bytes = 0
        self._read_paused = False
        self._need_ack = False
        self._ack_repeat_at: float | None = None
        self._last_recv = now
        self._probes = 0  # hole probes sent since the last packet from the peer
        self._need_probe = False
        self._eof_seq: int | None = None
        self._peer_syn = -1
        self.peer_closed = False
        self._out: list[bytes] = []
        #: counters for tests and the curious
        self.retransmits = 0
        self.packets_sent = 0
        self.packets_received = 0

    # -- construction ------------------------------------------------------------------
    @classmethod
    def connect(cls, recv_id: int, now: float, *, seq_nr: int = 1, **kw: int) -> UTPConnection:
        """Initiator: SYN goes out on the first :meth:`poll`."""
        conn = cls(recv_id=recv_id, send_id=recv_id + 1, seq_nr=seq_nr, now=now, **kw)
        syn = _Out(conn.seq_nr, ST_SYN, b"")
        conn._inflight[syn.seq] = syn
        syn.need_resend = True  # "send me" (first transmission)
        conn.seq_nr = (conn.seq_nr + 1) & _SEQ
        return conn

    @classmethod
    def accept(cls, syn: Packet, now: float, *, seq_nr: int, **kw: int) -> UTPConnection:
        """Responder, from the peer's SYN: connected at once, the SYN-ACK goes out on poll."""
        if syn.type != ST_SYN:
            raise UTPError("accept() needs a SYN packet")
        conn = cls(
            recv_id=syn.connection_id + 1, send_id=syn.connection_id, seq_nr=seq_nr, now=now, **kw
        )
        conn.state = State.SYN_RECV
        conn._rto_deadline = now + SYN_RECV_TIMEOUT
        conn.ack_nr = syn.seq_nr
        conn._peer_syn = syn.seq_nr
        conn.peer_window = syn.wnd_size
        conn._reply_micro = (timestamp_us(now) - syn.timestamp) & _TS
        conn._need_ack = True
        return conn

    # -- application side --------------------------------------------------------------
    def send(self, data: bytes | bytearray | memoryview) -> None:
        """Queue bytes; they leave as DATA packets when the windows allow (see :meth:`poll`)."""
        if self._fin_queued or self.state in (State.CLOSED, State.RESET):
            raise UTPError("send on a closed uTP connection")
        self._sendbuf += data

    def close(self) -> None:
        """Send FIN after everything queued; the connection finishes when the FIN is acked."""
        if self.state in (State.CLOSED, State.RESET) or self._fin_queued:
            return
        self._fin_queued = True
        if self.state == State.CONNECTED:
            self.state = State.CLOSING

    def reset(self) -> bytes | None:
        """Abort: returns the RESET datagram to send (None if nothing was connected)."""
        was = self.state
        self.state = State.RESET
        self._inflight.clear()
        self._sendbuf.clear()
        if was == State.SYN_SENT:
            return None
        return encode(Packet(ST_RESET, self.send_id, 0, 0, 0, self.seq_nr, self.ack_nr))

    def pause_reading(self) -> None:
        """Hold received data (and shrink the advertised window) until resume_reading."""
        self._read_paused = True

    def resume_reading(self, max_bytes: int | None = None) -> list[Event]:
        """Deliver held data: all of it, or the first ``max_bytes`` (the rest stays held and
        later data queues behind it, so a reader that pauses again mid-way, such as a rate
        limiter, takes the backlog in bites it can account for)."""
        self._read_paused = False
        events: list[Event] = []
        if self._held:
            data = b"".join(self._held)
            self._held.clear()
            if max_bytes is not None and len(data) > max_bytes:
                self._held.append(data[max_bytes:])
                data = data[:max_bytes]
            self._held_bytes -= len(data)
            events.append(Data(data))
            self._need_ack = True  # tell the sender the window opened
        if self._held:
            return events
        if self._eof_seq is not None and self.ack_nr == self._eof_seq and not self.peer_closed:
            self.peer_closed = True
            events.append(Closed())
        return events

    @property
    def held(self) -> int:
        """Received bytes waiting for the application to resume reading."""
        return self._held_bytes

    @property
    def send_buffered(self) -> int:
        """Bytes queued but not yet sent (the write buffer of the transport)."""
        return len(self._sendbuf)

    @property
    def unacked(self) -> int:
        """Bytes sent (or waiting to be resent) but not yet acknowledged."""
        return sum(len(p.payload) for p in self._inflight.values())

    @property
    def finished(self) -> bool:
        """Nothing left to do: the shell may forget this connection."""
        return self.state in (State.CLOSED, State.RESET)

    @property
    def window(self) -> int:
        """Receive window we advertise: room for bytes the application has not taken.

        Out-of-order bytes are not subtracted (they are bounded on their own): a window that
        shrinks with the reorder buffer leaves a sender no room to resend the very hole that
        holds the buffer up, and libtorrent then times the connection out instead.
        """
        return max(0, self.recv_window - self._held_bytes)

    # -- network side ------------------------------------------------------------------
    def receive(self, datagram: bytes, now: float) -> list[Event]:
        """Feed one datagram addressed to this connection; raises only :class:`UTPError`."""
        return self.receive_packet(decode(datagram), now)

    def receive_packet(self, pkt: Packet, now: float) -> list[Event]:
        if self.state == State.RESET:
            return []
        self.packets_received += 1
        self._last_recv = now
        self._probes = 0
        if pkt.type == ST_RESET:
            self._die()
            return [Reset("connection reset by peer")]
        events: list[Event] = []
        if self.state == State.SYN_SENT:
            if pkt.type != ST_STATE or pkt.ack_nr != _dist(self.seq_nr, 1):
                return []  # only the answer to our SYN moves us on (see SYN_RECV)
            self.state = State.CLOSING if self._fin_queued else State.CONNECTED
            self.ack_nr = (pkt.seq_nr - 1) & _SEQ
            events.append(Connected())
        elif self.state == State.SYN_RECV and pkt.type != ST_SYN:
            # the initiator got our SYN-ACK: only now may DATA follow it, so the initiator
            # never has to guess our first seq_nr from a DATA that overtook a lost SYN-ACK
            self.state = State.CLOSING if self._fin_queued else State.CONNECTED
            self._rto_deadline = None
        if pkt.type == ST_SYN:
            # our SYN-ACK was lost and the initiator asks again
            if pkt.seq_nr == self._peer_syn:
                self._need_ack = True
            return events
        self._reply_micro = (timestamp_us(now) - pkt.timestamp) & _TS if pkt.timestamp else 0
        self.peer_window = pkt.wnd_size
        self._process_ack(pkt, now)
        if pkt.type in (ST_DATA, ST_FIN):
            self._ack_repeat_at = now + ACK_REPEAT_DELAY
            events += self._process_data(pkt)
        return events

    def timer(self, now: float) -> list[Event]:
        """Run timeouts; call at (or after) :meth:`deadline`."""
        if self.finished:
            return []
        if self._ack_repeat_at is not None and now >= self._ack_repeat_at:
            self._ack_repeat_at = None
            if self.state != State.SYN_SENT:
                self._need_ack = True
        if self._ooo and now >= self._next_probe_at():
            if self._probes >= HOLE_PROBES:
                self._die()
                return [Reset("connection timed out: the peer stopped resending a lost packet")]
            self._probes += 1
            self._need_probe = True
        if self._rto_deadline is None or now < self._rto_deadline:
            return []
        if self.state == State.SYN_RECV:
            self._die()
            return [Reset("connection timed out")]
        if not self._inflight:
            self._rto_deadline = None
            return []
        self._timeouts += 1
        limit = SYN_ATTEMPTS if self.state == State.SYN_SENT else MAX_TIMEOUTS
        if self._timeouts >= limit:
            self._die()
            return [Reset("connection timed out")]
        self.rto = min(MAX_RTO, self.rto * 2)
        self._ssthresh = max(self.cwnd // 2, 2 * self._mss)
        self.cwnd = self._mss
        self._slow_start = True
        self._last_loss = now
        for out in self._inflight.values():
            if not out.need_resend:
                out.need_resend = True
                self._in_flight_bytes -= out.size
        self._rto_deadline = now + self.rto
        return []

    def deadline(self) -> float | None:
        """When :meth:`timer` has work: a retransmission, an ACK repeat, or a dead sender."""
        if self.finished:
            return None
        times = [t for t in (self._rto_deadline, self._ack_repeat_at) if t is not None]
        if self._ooo:
            times.append(self._next_probe_at())
        return min(times, default=None)

    def _next_probe_at(self) -> float:
        """When the next hole probe is due (or, with all probes sent, the hole timeout)."""
        return self._last_recv + HOLE_PROBE_AFTER + self._probes * HOLE_PROBE_INTERVAL

    def poll(self, now: float) -> list[bytes]:
        """Datagrams to send now: retransmissions, new data the windows allow, and an ACK."""
        if self.state == State.RESET:
            self._out.clear()
            return []
        limit = min(self.cwnd, max(self.peer_window, 0))
        for out in self._inflight.values():
            if not out.need_resend:
                continue
            if self._in_flight_bytes and self._in_flight_bytes + out.size > limit:
                break
            self._transmit(out, now)
        if self.state in (State.CONNECTED, State.CLOSING):
            self._send_new(now, limit)
        if self._need_probe:
            self._need_probe = False
            if self.state != State.SYN_SENT:
                self._out.append(self._encode(ST_DATA, self._acked_seq, b"", now))
        if self._need_ack and self.state != State.SYN_SENT:
            self._out.append(self._encode(ST_STATE, self.seq_nr, b"", now))
        self._need_ack = False
        sent, self._out = self._out, []
        return sent

    # -- internals: sending ------------------------------------------------------------
    @property
    def _mss(self) -> int:
        return self.payload_size + HEADER_SIZE

    @property
    def _acked_seq(self) -> int:
        """The newest sequence number the peer has acknowledged (a hole probe repeats it: the
        peer sees an old packet and answers with an ACK; its payload is never looked at)."""
        first = next(iter(self._inflight), self.seq_nr)
        return (first - 1) & _SEQ

    def _send_new(self, now: float, limit: int) -> None:
        while self._sendbuf and len(self._inflight) < MAX_OUTSTANDING:
            size = min(len(self._sendbuf), self.payload_size)
            # nothing in flight: always allow one packet, so a zero window is probed
            if self._in_flight_bytes and self._in_flight_bytes + size + HEADER_SIZE > limit:
                return
            payload = bytes(self._sendbuf[:size])
            del self._sendbuf[:size]
            self._transmit(self._new_packet(ST_DATA, payload), now)
        if self._fin_queued and self._fin_seq is None and not self._sendbuf:
            fin = self._new_packet(ST_FIN, b"")
            self._fin_seq = fin.seq
            self._transmit(fin, now)

    def _new_packet(self, ptype: int, payload: bytes) -> _Out:
        out = _Out(self.seq_nr, ptype, payload)
        self._inflight[out.seq] = out
        self.seq_nr = (self.seq_nr + 1) & _SEQ
        return out

    def _transmit(self, out: _Out, now: float) -> None:
        if out.transmissions:
            self.retransmits += 1
        if out.transmissions == 0 or out.need_resend:
            self._in_flight_bytes += out.size
        out.need_resend = False
        out.transmissions += 1
        out.sent_at = now
        self._out.append(self._encode(out.type, out.seq, out.payload, now))
        if self._rto_deadline is None:
            self._rto_deadline = now + self.rto

    def _encode(self, ptype: int, seq: int, payload: bytes, now: float) -> bytes:
        self.packets_sent += 1
        conn_id = self.recv_id if ptype == ST_SYN else self.send_id
        sack = None
        if ptype != ST_SYN:
            sack = self._sack(STATE_SACK_BYTES if ptype == ST_STATE else SACK_BYTES)
        self._need_ack = False  # every packet carries our ack_nr
        return encode(
            Packet(
                ptype,
                conn_id,
                timestamp_us(now),
                self._reply_micro,
                self.window,
                seq,
                self.ack_nr if ptype != ST_SYN else 0,
                sack,
                payload,
            )
        )

    def _sack(self, limit: int) -> bytes | None:
        if not self._ooo:
            return None
        mask = bytearray(limit)
        for seq in self._ooo:
            bit = _dist(seq, self.ack_nr) - 2
            if 0 <= bit < limit * 8:
                mask[bit >> 3] |= 1 << (bit & 7)
        last = max((i for i, b in enumerate(mask) if b), default=-1)
        if last < 0:
            return None
        return bytes(mask[: (last // 4 + 1) * 4])

    # -- internals: acknowledgements ----------------------------------------------------
    def _process_ack(self, pkt: Packet, now: float) -> None:
        if not self._inflight:
            return
        base = (next(iter(self._inflight)) - 1) & _SEQ  # the last packet known acked
        span = _dist((self.seq_nr - 1) & _SEQ, base)  # newest packet we sent
        rel = _dist(pkt.ack_nr, base)
        if rel > span:
            return  # stale, or acknowledges packets we never sent
        acked_bytes = 0
        newest_sample: _Out | None = None
        if rel:
            for seq in list(self._inflight):
                if _dist(seq, base) > rel:
                    break
                out = self._inflight.pop(seq)
                acked_bytes += self._acked(out)
                newest_sample = out
        sacked: list[int] = []
        if pkt.sack:
            for i, byte in enumerate(pkt.sack):
                if not byte:
                    continue
                for bit in range(8):
                    if byte >> bit & 1:
                        off = 2 + i * 8 + bit
                        if rel + off > span:
                            break
                        sacked.append(off)
                        sacked_out = self._inflight.pop((pkt.ack_nr + off) & _SEQ, None)
                        if sacked_out is not None:
                            acked_bytes += self._acked(sacked_out)
                            newest_sample = sacked_out
        if newest_sample is not None and newest_sample.transmissions == 1:
            self._rtt_sample(now - newest_sample.sent_at)
        if acked_bytes:
            self._timeouts = 0
            self._dup_acks = 0
            self._rto_deadline = now + self.rto if self._inflight else None
            self._congestion(pkt.timestamp_diff, acked_bytes, now)
            if self._fin_seq is not None and not self._inflight:  # FIN and all before it
                self.state = State.CLOSED
        elif rel == 0 and pkt.type == ST_STATE and self._inflight:
            self._dup_acks += 1
            first = next(iter(self._inflight.values()))
            if self._dup_acks >= DUP_ACKS and not first.fast_resent:
                self._lost(first, now)
        if sacked and self._inflight:
            self._fast_resend(pkt.ack_nr, sacked, now)

    def _acked(self, out: _Out) -> int:
        if not out.need_resend:
            self._in_flight_bytes -= out.size
        return out.size

    def _fast_resend(self, ack_nr: int, sacked: list[int], now: float) -> None:
        """Resend packets that at least three later packets overtook (TCP's rule, with SACK)."""
        for seq, out in self._inflight.items():
            off = _dist(seq, ack_nr)
            if off >= sacked[-1]:
                break
            later = len(sacked) - bisect.bisect_right(sacked, off)
            if later >= DUP_ACKS and not out.fast_resent and not out.need_resend:
                self._lost(out, now)

    def _lost(self, out: _Out, now: float) -> None:
        out.fast_resent = True
        if not out.need_resend:
            out.need_resend = True
            self._in_flight_bytes -= out.size
        if now - self._last_loss > max(self.rtt, 0.01):
            self._last_loss = now
            self.cwnd = max(self.cwnd // 2, self._mss)
            self._ssthresh = self.cwnd
            self._slow_start = False

    def _rtt_sample(self, sample: float) -> None:
        if self.rtt == 0.0:
            self.rtt, self.rtt_var = sample, sample / 2
        else:
            self.rtt_var += (abs(self.rtt - sample) - self.rtt_var) / 4
            self.rtt += (sample - self.rtt) / 8
        self.rto = min(MAX_RTO, max(MIN_RTO, self.rtt + 4 * self.rtt_var))

    def _congestion(self, delay_us: int, acked: int, now: float) -> None:
        """LEDBAT: grow while queueing delay is under target, shrink above it."""
        our_delay = 0
        if delay_us:
            bucket = now - now % DELAY_BUCKET
            hist = self._delay_hist
            if hist and hist[-1][0] == bucket:
                if (delay_us - hist[-1][1]) & _TS > 0x7FFFFFFF:
                    hist[-1] = (bucket, delay_us)
            else:
                hist.append((bucket, delay_us))
                del hist[:-2]
            base = hist[0][1]
            for _, value in hist[1:]:
                if (value - base) & _TS > 0x7FFFFFFF:
                    base = value
            our_delay = (delay_us - base) & _TS
            if our_delay > 0x7FFFFFFF:
                our_delay = 0
        if self._slow_start:
            if our_delay > TARGET_DELAY_US // 2 or self.cwnd >= self._ssthresh:
                self._slow_start = False
            else:
                self.cwnd += acked
        if not self._slow_start:
            off_target = max(-1.0, (TARGET_DELAY_US - our_delay) / TARGET_DELAY_US)
            window_factor = min(acked, self.cwnd) / max(self.cwnd, acked)
            self.cwnd += int(MAX_CWND_INCREASE * off_target * window_factor + 0.5)
        self.cwnd = max(self._mss, min(MAX_CWND, self.cwnd))

    # -- internals: receiving ----------------------------------------------------------
    def _process_data(self, pkt: Packet) -> list[Event]:
        self._need_ack = True
        off = _dist(pkt.seq_nr, self.ack_nr)
        if off == 0 or off >= 0x8000:
            return []  # a duplicate: the ACK we send tells the peer again
        if off > MAX_REORDER:
            return []
        if self._eof_seq is not None and 0 < _dist(pkt.seq_nr, self._eof_seq) < 0x8000:
            return []  # beyond the peer's FIN
        if pkt.type == ST_FIN:
            self._eof_seq = pkt.seq_nr
        if off != 1:
            if pkt.seq_nr not in self._ooo:
                if self._ooo_bytes + len(pkt.payload) > self.recv_window:
                    return []  # no room: the sender will resend
                self._ooo[pkt.seq_nr] = (pkt.type, pkt.payload)
                self._ooo_bytes += len(pkt.payload)
            return []
        chunks = [pkt.payload] if pkt.payload else []
        self.ack_nr = pkt.seq_nr
        while self._ooo:
            nxt = (self.ack_nr + 1) & _SEQ
            item = self._ooo.pop(nxt, None)
            if item is None:
                break
            self._ooo_bytes -= len(item[1])
            if item[1]:
                chunks.append(item[1])
            self.ack_nr = nxt
        events: list[Event] = []
        if chunks:
            data = b"".join(chunks)
            if self._read_paused or self._held:
                self._held.append(data)
                self._held_bytes += len(data)
            else:
                events.append(Data(data))
        if self._eof_seq == self.ack_nr:
            self._ooo.clear()
            self._ooo_bytes = 0
            if not self._read_paused and not self._held and not self.peer_closed:
                self.peer_closed = True
                events.append(Closed())
        return events

    def _die(self) -> None:
        self.state = State.RESET
        self._inflight.clear()
        self._sendbuf.clear()
        self._rto_deadline = None
