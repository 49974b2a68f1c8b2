"""Fuzz UDP tracker replies (BEP 15 connect, announce, scrape, error): only TrackerError.

The first input byte picks whether the expected transaction id is the one in the datagram (so
mutations get past the id check) and how many info hashes a scrape asked about; the rest is the
datagram.
"""

from __future__ import annotations

import sys

from fuzz.support import Input, instrumented, main, only

with instrumented(__name__):
    from ccbt_engine.tracker.protocol import TrackerError
    from ccbt_engine.tracker.udp_protocol import (
        parse_announce,
        parse_connect,
        parse_scrape,
        reply_transaction_id,
    )


def one_input(data: bytes) -> None:
    inp = Input(data)
    head = inp.byte()
    datagram = inp.rest()
    tid = reply_transaction_id(datagram)
    if tid is None or head & 1:
        tid = 0x1234_5678
    hashes = [bytes([i]) * 20 for i in range(head >> 1 & 0x3F)]
    with only(TrackerError):
        parse_connect(datagram, tid, 100.0)
    for ipv6 in (False, True):
        with only(TrackerError):
            reply = parse_announce(datagram, tid, ipv6=ipv6)
            assert all(0 < port <= 0xFFFF for _, port in reply.peers)
    with only(TrackerError):
        assert len(parse_scrape(datagram, tid, hashes)) == len(set(hashes))


if __name__ == "__main__":
    main(one_input)
    sys.exit(0)
