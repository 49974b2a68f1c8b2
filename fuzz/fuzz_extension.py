"""Fuzz BEP 10 extension messages: the handshake dict, ut_metadata, ut_pex and lt_donthave.

The input is a sequence of messages from one peer, each ``[op][2-byte length][payload]``, driven
through the real :class:`ExtensionManager` with the real extensions, so state carried between
messages (metadata assembly, served-request budget, PEX bookkeeping) is fuzzed too, not just
the decoders. Two managers take the same messages: one fetching metadata for a magnet (with an
assembler), one serving a torrent's metadata. ProtocolError (and its per-extension subclasses)
is the only exception allowed.
"""

from __future__ import annotations

import sys
from dataclasses import dataclass, field
from typing import Any

from fuzz.support import Input, instrumented, main, only

with instrumented(__name__):
    from ccbt_engine.extensions import ExtensionManager
    from ccbt_engine.extensions.donthave import LtDontHave, decode_donthave
    from ccbt_engine.extensions.metadata import MetadataAssembler, UtMetadata, decode_message
    from ccbt_engine.extensions.pex import UtPex, decode_pex
    from ccbt_engine.protocol.extension import (
        ExtensionRegistry,
        decode_extension_handshake,
    )
    from ccbt_engine.protocol.wire import ProtocolError

#: a small real info dict served by the serving manager (two metadata pieces)
_RAW_INFO = (
    b"d6:lengthi40000e4:name8:file.bin12:piece lengthi16384e6:pieces60:"
    + bytes(range(60))
    + b"7:comment20000:"
    + b"c" * 20000
    + b"e"
)


@dataclass(eq=False)
class _Conn:
    """What the extensions use of a PeerConnection."""

    address: tuple[str, int] = ("127.0.0.1", 6881)
    outgoing: bool = True
    closed: bool = False
    sent: list[bytes] = field(default_factory=list)

    def send(self, data: bytes) -> None:
        self.sent.append(data)


@dataclass
class _Host:
    info_hash: bytes = b"\x01" * 20
    learned: list[tuple[str, int]] = field(default_factory=list)

    def add_peers(self, addresses: Any, source: str) -> None:
        self.learned.extend(addresses)


def _manager(fetch: bool, now: list[float]) -> ExtensionManager:
    mgr = ExtensionManager(_Host())
    if fetch:
        asm = MetadataAssembler(b"\x02" * 20, b"\x03" * 32)
        mgr.register(UtMetadata(None, assembler=asm, clock=lambda: now[0]))
    else:
        mgr.register(UtMetadata(_RAW_INFO, clock=lambda: now[0]))
    mgr.register(UtPex(own_address=lambda: ("127.0.0.1", 6881)))
    mgr.register(LtDontHave(lambda peer, piece: None))
    return mgr


def one_input(data: bytes) -> None:
    inp = Input(data)
    now = [1000.0]
    managers = [_manager(True, now), _manager(False, now)]
    conn = _Conn(outgoing=inp.flag())
    registry = ExtensionRegistry()
    while inp.remaining:
        op = inp.byte()
        payload = inp.sized(2)
        ext_id = op % 5
        if ext_id == 4:
            now[0] += op
            for mgr in managers:
                mgr.on_tick(now[0])
            continue
        # the decoders on their own (what a caller without a manager would use)
        with only(ProtocolError):
            if ext_id == 0:
                registry.update_remote(decode_extension_handshake(payload))
            elif ext_id == 1:
                decode_message(payload)
            elif ext_id == 2:
                decode_pex(payload)
            else:
                decode_donthave(payload)
        for mgr in managers:
            with only(ProtocolError):
                if ext_id == 0:
                    mgr.on_handshake(conn, decode_extension_handshake(payload))  # type: ignore[arg-type]
                else:
                    mgr.on_message(conn, ext_id, payload)  # type: ignore[arg-type]
    for mgr in managers:
        mgr.on_peer_closed(conn)  # type: ignore[arg-type]


if __name__ == "__main__":
    main(one_input)
    sys.exit(0)
