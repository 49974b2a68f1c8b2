"""Fuzz the uTP connection state machine with hostile packets, timers and application calls.

The input is a script of operations on one connection (made by ``connect`` or by ``accept`` of
a SYN): raw datagrams, packets built around the connection's own sequence numbers (random
numbers would almost never be in window, so the fuzzer gives offsets instead), sends, polls,
timer runs, clock jumps, close, pause/resume. Only UTPError may escape; everything the
connection emits must decode as uTP; byte counters never go negative.
"""

from __future__ import annotations

import sys

from fuzz.support import Input, instrumented, main, only

with instrumented(__name__):
    from ccbt_engine.protocol.utp import (
        ST_SYN,
        Packet,
        UTPConnection,
        UTPError,
        decode,
        encode,
        timestamp_us,
    )

_MAX_OPS = 64


def _connection(inp: Input, now: float) -> UTPConnection:
    if inp.flag():
        return UTPConnection.connect(inp.uint(2), now, seq_nr=inp.uint(2), payload_size=600)
    syn = Packet(ST_SYN, inp.uint(2), timestamp_us(now) - 1000, 0, inp.uint(4), inp.uint(2), 0)
    return UTPConnection.accept(syn, now, seq_nr=inp.uint(2), payload_size=600)


def _built_packet(inp: Input, conn: UTPConnection, now: float) -> Packet:
    """A packet aimed at the connection: right id, seq/ack within a few of the expected ones."""
    kind = inp.byte()
    seq = (conn.ack_nr + 1 + inp.byte() - 8) & 0xFFFF
    ack = (conn.seq_nr - 1 - inp.byte() + 4) & 0xFFFF
    sack = inp.take(inp.byte() % 9) if kind & 0x80 else None
    return Packet(
        type=kind % 5,
        connection_id=conn.recv_id if kind & 0x40 == 0 else inp.uint(2),
        timestamp=timestamp_us(now) - inp.uint(2) * 10 if kind & 0x20 == 0 else 0,
        timestamp_diff=inp.uint(4),
        wnd_size=inp.uint(3) << 4,
        seq_nr=seq,
        ack_nr=ack,
        sack=sack or None,
        payload=inp.take(inp.byte() * 8),
    )


def one_input(data: bytes) -> None:
    inp = Input(data)
    now = 1000.0
    conn = _connection(inp, now)
    for _ in range(_MAX_OPS):
        if not inp.remaining:
            break
        op = inp.byte() % 10
        if op == 4:
            for datagram in conn.poll(now):
                decode(datagram)  # what we send must be uTP: outside only() so UTPError escapes
            continue
        with only(UTPError):
            if op == 0:
                conn.receive(inp.sized(2), now)
            elif op in (1, 2):
                conn.receive_packet(_built_packet(inp, conn, now), now)
            elif op == 3:
                conn.send(inp.take(inp.uint(2)))
            elif op == 5:
                deadline = conn.deadline()
                conn.timer(deadline if deadline is not None and inp.flag() else now)
            elif op == 6:
                now += inp.uint(2) / 100
            elif op == 7:
                conn.close()
            elif op == 8:
                if inp.flag():
                    conn.pause_reading()
                else:
                    conn.resume_reading(inp.uint(2) or None)
            else:
                reset = conn.reset()
                if reset is not None:
                    assert decode(reset).connection_id == conn.send_id
        assert conn.held >= 0 and conn.unacked >= 0 and conn.send_buffered >= 0
    for datagram in conn.poll(now):
        assert encode(decode(datagram)) == datagram, "we sent a packet that does not round-trip"


if __name__ == "__main__":
    main(one_input)
    sys.exit(0)
