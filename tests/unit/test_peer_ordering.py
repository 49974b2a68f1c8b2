"""BEP 40: candidates are dialled in canonical peer priority order once our address is known."""

from __future__ import annotations

import os
from pathlib import Path

from ccbt_engine.api import Session
from ccbt_engine.create import create_torrent
from ccbt_engine.protocol.peer_priority import peer_priority
from tests.engine_settings import loopback_settings


async def test_candidates_follow_bep40_priority(tmp_path: Path) -> None:
    (tmp_path / "f.bin").write_bytes(os.urandom(50_000))
    torrent = create_torrent(tmp_path / "f.bin", version="v1")
    async with Session(loopback_settings(), listen_port=0) as session:
        handle = await session.add_torrent(torrent, tmp_path / "dl", paused=True)
        core = session._core  # observing internals: the dial order is not in the facade
        t = core.torrents[bytes.fromhex(handle.info_hash)]
        hosts = [f"127.{a}.{b}.{c}" for a, b, c in [(0, 0, 2), (9, 1, 1), (0, 7, 3), (200, 0, 9)]]
        t.add_peers([(h, 6881) for h in hosts[:2]], "tracker")
        assert [c[0] for c in t.candidates] == hosts[:2]  # our address unknown: arrival order
        core.external_ip = "127.0.0.1"
        t.add_peers([(h, 6881) for h in hosts[2:]], "pex")
        me = ("127.0.0.1", session.listen_port)
        expected = sorted(hosts, key=lambda h: peer_priority(me, (h, 6881)), reverse=True)
        assert [c[0] for c in t.candidates] == expected
