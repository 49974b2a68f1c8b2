"""Fuzz KRPC (BEP 5 DHT) datagrams: only KRPCError, and its code is a BEP 5 error code."""

from __future__ import annotations

import sys

from fuzz.support import instrumented, main

with instrumented(__name__):
    from ccbt_engine.protocol.krpc import (
        ERROR_GENERIC,
        ERROR_METHOD_UNKNOWN,
        KRPCError,
        Query,
        Response,
        decode,
        decode_nodes,
    )


def one_input(data: bytes) -> None:
    try:
        msg = decode(data)
    except KRPCError as exc:
        str(exc)
        assert ERROR_GENERIC <= exc.code <= ERROR_METHOD_UNKNOWN, "not a BEP 5 error code"
        assert exc.tid is None or isinstance(exc.tid, bytes)
    else:
        if isinstance(msg, Query):
            assert len(msg.sender) == 20 and msg.tid
        elif isinstance(msg, Response):
            assert all(len(n.node_id) == 20 and n.port > 0 for n in msg.nodes + msg.nodes6)
    for ipv6 in (False, True):
        try:
            decode_nodes(data, ipv6)
        except KRPCError as exc:
            str(exc)


if __name__ == "__main__":
    main(one_input)
    sys.exit(0)
