"""A running session applies changed settings live (what the settings dialog's OK does)."""

from __future__ import annotations

import asyncio
import os
from pathlib import Path

from ccbt_engine.api import Session
from ccbt_engine.create import create_torrent
from tests.engine_settings import loopback_settings
from tests.interop.refpeers import free_port


async def test_limits_filter_and_port_apply_live(tmp_path: Path) -> None:
    old = loopback_settings(network={"listen_port": free_port()})
    async with Session(old) as session:  # no port override: the settings' port is live
        first_port = session.listen_port
        blocklist = tmp_path / "block.txt"
        blocklist.write_text("127.0.0.9\n")
        new_port = free_port()
        new = loopback_settings(
            limits={"global_down_kib": 512, "global_up_kib": 256},
            security={"ip_filter_path": str(blocklist)},
            network={"listen_port": new_port},
        )
        changes = await session.apply_settings(new)
        assert {"limits.global_down_kib", "security.ip_filter_path", "network.listen_port"} <= set(
            changes
        )
        core = session._core  # internals only to observe the effect
        assert core.down_bucket.rate == 512 * 1024
        assert core.up_bucket.rate == 256 * 1024
        assert core.is_blocked("127.0.0.9") and not core.is_blocked("127.0.0.1")
        assert session.listen_port == new_port != first_port
        _, writer = await asyncio.open_connection("127.0.0.1", new_port)
        writer.close()
        assert session.settings.limits.global_down_kib == 512


async def test_file_progress_and_selected_size(tmp_path: Path) -> None:
    data = tmp_path / "d"
    (data / "x").mkdir(parents=True)
    (data / "x" / "a.bin").write_bytes(os.urandom(100_000))
    (data / "x" / "b.bin").write_bytes(os.urandom(50_000))
    torrent = create_torrent(data / "x", version="hybrid", piece_length=16384)
    async with Session(loopback_settings(), listen_port=0) as session:
        handle = await session.add_torrent(torrent, data)
        files = [f for f in handle.files() if not f.is_pad]
        assert [(f.path, f.done) for f in files] == [("x/a.bin", 100_000), ("x/b.bin", 50_000)]
        status = handle.status()
        assert status.selected_size == 150_000 == status.total_size
        handle.set_file_priorities([0 if f.path.endswith("b.bin") else 4 for f in handle.files()])
        assert handle.status().selected_size == 100_000
