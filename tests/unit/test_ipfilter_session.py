"""The session applies the IP filter to peers it is given and to incoming connections."""

from __future__ import annotations

import asyncio
import os
import socket
from pathlib import Path

from ccbt_engine.api import Session
from ccbt_engine.create import create_torrent
from tests.engine_settings import loopback_settings


async def test_blocked_addresses_are_never_dialled_nor_accepted(tmp_path: Path) -> None:
    data = tmp_path / "data"
    data.mkdir()
    (data / "file.bin").write_bytes(os.urandom(300_000))
    torrent = create_torrent(data / "file.bin", version="v1")
    blocklist = tmp_path / "block.p2p"
    blocklist.write_text("test range:127.0.0.2-127.0.0.2\n")
    leech_settings = loopback_settings(security={"ip_filter_path": str(blocklist)})
    seed_settings = loopback_settings(network={"listen_interfaces": ["127.0.0.2"]})
    async with (
        Session(seed_settings, listen_port=0) as seeder,
        Session(leech_settings, listen_port=0) as leecher,
    ):
        await seeder.add_torrent(torrent, data)
        handle = await leecher.add_torrent(torrent, tmp_path / "dl")
        handle.connect_peer("127.0.0.2", seeder.listen_port)
        await asyncio.sleep(1.0)
        assert handle.peers() == []
        assert handle.status().wanted_done == 0

        # an incoming connection from the blocked address is closed without a handshake reply
        info_hash = bytes.fromhex(handle.info_hash)
        loop = asyncio.get_running_loop()
        sock = socket.socket()
        sock.bind(("127.0.0.2", 0))
        sock.setblocking(False)
        await loop.sock_connect(sock, ("127.0.0.1", leecher.listen_port))
        hello = b"\x13BitTorrent protocol" + bytes(8) + info_hash + b"-XX0001-abcdefghijkl"
        await loop.sock_sendall(sock, hello)
        try:
            reply = await asyncio.wait_for(loop.sock_recv(sock, 100), 5)
        except ConnectionResetError:  # closed with our handshake unread: a reset
            reply = b""
        finally:
            sock.close()
        assert reply == b""  # refused before a single byte was sent back
        assert handle.peers() == []
