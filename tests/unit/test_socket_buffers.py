"""TCP peers fix their socket buffers only where the system grants the full size.

Setting SO_RCVBUF / SO_SNDBUF turns the kernel's autotuning of that buffer off; a stock Linux
caps the request at 208 KiB, far below what autotuning reaches on a long, fast path. So the
buffers are fixed only when ``rmem_max`` / ``wmem_max`` allow :data:`SOCKET_BUFFER`.
"""

from __future__ import annotations

import asyncio
import socket
from collections.abc import Iterator
from pathlib import Path

import pytest

from ccbt_engine.net import peer as peer_mod
from ccbt_engine.net.peer import SOCKET_BUFFER, PeerConnection, fixed_buffer_options

pytestmark = pytest.mark.timeout(30)


@pytest.fixture
def sysctls(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[dict[int, Path]]:
    """Stand-in rmem_max / wmem_max files; the decision is re-read for each test."""
    files = {socket.SO_RCVBUF: tmp_path / "rmem_max", socket.SO_SNDBUF: tmp_path / "wmem_max"}
    monkeypatch.setattr(peer_mod, "_BUFFER_MAX_SYSCTLS", {k: str(v) for k, v in files.items()})
    monkeypatch.setattr(peer_mod, "_fixed_options", None)
    yield files
    peer_mod._fixed_options = None


def test_buffers_are_fixed_only_where_the_full_size_is_granted(sysctls: dict[int, Path]) -> None:
    sysctls[socket.SO_RCVBUF].write_text(f"{SOCKET_BUFFER}\n")
    sysctls[socket.SO_SNDBUF].write_text("212992\n")  # a stock Linux
    assert fixed_buffer_options() == (socket.SO_RCVBUF,)


def test_unreadable_limits_leave_autotuning_alone(sysctls: dict[int, Path]) -> None:
    sysctls[socket.SO_RCVBUF].write_text("not a number")  # and wmem_max does not exist
    assert fixed_buffer_options() == ()


@pytest.mark.skipif(not Path("/proc/sys/net/core/rmem_max").exists(), reason="Linux sysctls")
async def test_a_peer_on_a_stock_system_keeps_the_kernels_buffers(
    sysctls: dict[int, Path],
) -> None:
    for path in sysctls.values():
        path.write_text("212992\n")
    with socket.socket() as probe:
        default = probe.getsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF)
    server = await asyncio.start_server(lambda r, w: None, "127.0.0.1", 0)
    port = server.sockets[0].getsockname()[1]
    loop = asyncio.get_running_loop()
    transport, _conn = await loop.create_connection(
        lambda: PeerConnection(peer_id=b"-CC0001-buffertest12", lookup=lambda ih: None),
        "127.0.0.1",
        port,
    )
    try:
        sock = transport.get_extra_info("socket")
        assert sock.getsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF) == default
        assert sock.getsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY)
    finally:
        transport.close()
        server.close()
        await server.wait_closed()
