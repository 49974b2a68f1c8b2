"""Fuzz uTP (BEP 29) packet decoding: only UTPError, and decode(encode(p)) == p.

The state machine that consumes packets has its own harness, fuzz_utp_conn.
"""

from __future__ import annotations

import sys

from fuzz.support import instrumented, main, only

with instrumented(__name__):
    from ccbt_engine.protocol.utp import UTPError, decode, encode


def one_input(data: bytes) -> None:
    with only(UTPError):
        packet = decode(data)
        assert decode(encode(packet)) == packet, "packet does not survive encode/decode"


if __name__ == "__main__":
    main(one_input)
    sys.exit(0)
