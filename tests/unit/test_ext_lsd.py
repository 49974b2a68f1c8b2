"""BEP 14 local service discovery on loopback (multicast TTL 0: nothing leaves the machine)."""

from __future__ import annotations

import asyncio
import contextlib
import random
import time
from collections.abc import Callable
from pathlib import Path

import pytest
from hypothesis import given
from hypothesis import strategies as st

from ccbt_engine.api import Session
from ccbt_engine.create import create_torrent
from ccbt_engine.magnet import Magnet
from ccbt_engine.magnet_fetch import MagnetHandle
from ccbt_engine.metainfo import parse_torrent
from ccbt_engine.net.lsd import LsdError, LsdService, encode_announce, parse_announce
from tests.engine_settings import loopback_settings

pytestmark = pytest.mark.timeout(60)


async def _until(pred: Callable[[], bool], timeout: float, what: str) -> None:
    deadline = time.monotonic() + timeout
    while not pred():
        if time.monotonic() > deadline:
            pytest.fail(f"timed out waiting for {what}")
        await asyncio.sleep(0.05)


def test_codec_round_trip() -> None:
    hashes = [bytes([i]) * 20 for i in range(3)]
    raw = encode_announce(6881, hashes, cookie="abc")
    assert raw.startswith(b"BT-SEARCH * HTTP/1.1\r\nHost: 239.192.152.143:6771\r\nPort: 6881\r\n")
    msg = parse_announce(raw)
    assert msg.port == 6881 and list(msg.info_hashes) == hashes and msg.cookie == "abc"
    v6 = encode_announce(1, hashes[:1], group="ff15::efc0:988f")
    assert b"Host: [ff15::efc0:988f]:6771" in v6
    # header names are case-insensitive, the cookie optional
    assert parse_announce(raw.replace(b"Port:", b"PORT:")).port == 6881
    for bad in (
        b"GET / HTTP/1.1\r\n\r\n",
        raw.replace(b"6881", b"0"),
        raw.replace(b"Infohash: " + hashes[0].hex().encode(), b"Infohash: zz"),
        b"BT-SEARCH * HTTP/1.1\r\nPort: 1\r\n\r\n",
        b"BT-SEARCH * HTTP/1.1\r\nPort 1\r\n\r\n",
    ):
        with pytest.raises(LsdError):
            parse_announce(bad)


@given(st.binary(max_size=600))
def test_parser_raises_only_its_error(data: bytes) -> None:
    with contextlib.suppress(LsdError):
        parse_announce(b"BT-SEARCH * HTTP/1.1\r\n" + data)
    with contextlib.suppress(LsdError):
        parse_announce(data)


async def test_two_services_hear_each_other_but_not_themselves() -> None:
    port = random.randrange(20000, 60000)
    heard_a: list[tuple[bytes, str, int]] = []
    heard_b: list[tuple[bytes, str, int]] = []
    a = LsdService(lambda *x: heard_a.append(x), interface="127.0.0.1", mcast_port=port, ttl=0)
    b = LsdService(lambda *x: heard_b.append(x), interface="127.0.0.1", mcast_port=port, ttl=0)
    await a.start()
    await b.start()
    try:
        ih = b"\x42" * 20
        assert a.announce(7000, [ih], now=0.0) == 1
        assert a.announce(7000, [ih], now=30.0) == 0  # at most once a minute per torrent
        await _until(lambda: bool(heard_b), 5, "B hearing A")
        assert heard_b == [(ih, "127.0.0.1", 7000)]
        await asyncio.sleep(0.2)
        assert heard_a == []  # our own datagram comes back and is recognised by its cookie
        assert a.announce(7000, [ih], now=61.0) == 1
    finally:
        a.close()
        b.close()


def _payload(tmp: Path) -> tuple[Path, bytes]:
    folder = tmp / "payload"
    folder.mkdir()
    (folder / "a.bin").write_bytes(random.Random(3).randbytes(300_000))
    return folder, create_torrent(folder, piece_length=16 * 1024, version="v1", workers=1)


async def test_sessions_find_each_other_by_lsd(tmp_path: Path) -> None:
    """A seeds a torrent, B has a magnet link without peers: LSD brings them together."""
    folder, raw = _payload(tmp_path)
    settings = loopback_settings(network={"enable_lsd": True})
    async with Session(settings, listen_port=0) as a, Session(settings, listen_port=0) as b:
        assert a._core.lsd is not None
        await a.add_torrent(raw, tmp_path)
        info = parse_torrent(raw).info
        uri = Magnet(info_hash_v1=info.info_hash_v1, display_name="payload").to_uri()
        handle = await b.add_magnet(uri, tmp_path / "dl")
        await handle.wait_finished(timeout=20)
        assert (tmp_path / "dl/payload/a.bin").read_bytes() == (folder / "a.bin").read_bytes()
        # the only way B could learn of A (both seeds now, so no longer connected)
        assert isinstance(handle, MagnetHandle)
        assert list(handle._magnet.sources.values()) == ["lsd"]
