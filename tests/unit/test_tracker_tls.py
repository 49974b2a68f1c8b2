"""``security.verify_tls``: an HTTPS tracker on 127.0.0.1 with a self-signed certificate is
refused while verifying, reached with verification off (live, through the session's HTTP
client) and reached while verifying when its certificate is trusted."""

from __future__ import annotations

import asyncio
import datetime
import ipaddress
import random
import ssl
import time
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass
from pathlib import Path

import aiohttp
import pytest
from aiohttp import web
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID

from ccbt_engine.api import Session
from ccbt_engine.bencode import encode
from ccbt_engine.config import Settings
from ccbt_engine.create import create_torrent
from ccbt_engine.tracker.http import HttpTracker, fetch_bounded
from ccbt_engine.tracker.http_tls import set_tls_policy, tls_option
from ccbt_engine.tracker.protocol import AnnounceRequest, TrackerError
from tests.engine_settings import loopback_settings

pytestmark = pytest.mark.timeout(60)


@dataclass
class HttpsTracker:
    url: str
    cert_pem: Path
    announces: list[str]


def self_signed(folder: Path) -> tuple[Path, Path]:
    """A certificate for 127.0.0.1 signed by its own key (PEM files: cert, key)."""
    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "ccbt test tracker")])
    now = datetime.datetime.now(datetime.UTC)
    cert = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - datetime.timedelta(minutes=5))
        .not_valid_after(now + datetime.timedelta(days=1))
        .add_extension(
            x509.SubjectAlternativeName([x509.IPAddress(ipaddress.ip_address("127.0.0.1"))]),
            critical=False,
        )
        .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
        .sign(key, hashes.SHA256())
    )
    cert_path, key_path = folder / "cert.pem", folder / "key.pem"
    cert_path.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    key_path.write_bytes(
        key.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        )
    )
    return cert_path, key_path


@pytest.fixture
async def tracker(tmp_path: Path) -> AsyncIterator[HttpsTracker]:
    cert, key = self_signed(tmp_path)
    context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    context.load_cert_chain(cert, key)
    announces: list[str] = []

    async def announce(request: web.Request) -> web.Response:
        announces.append(request.query_string)
        body = encode({b"interval": 1800, b"peers": b"\x7f\x00\x00\x01\x1a\xe1"})
        return web.Response(body=body, content_type="text/plain")

    app = web.Application()
    app.router.add_get("/announce", announce)
    runner = web.AppRunner(app, access_log=None)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0, ssl_context=context)
    await site.start()
    port = runner.addresses[0][1]
    yield HttpsTracker(f"https://127.0.0.1:{port}/announce", cert, announces)
    await runner.cleanup()


def request() -> AnnounceRequest:
    return AnnounceRequest(
        info_hash=b"\x01" * 20, peer_id=b"-CC0010-abcdefghijkl", port=6881,
        uploaded=0, downloaded=0, left=100,
    )  # fmt: skip


def with_verify(settings: Settings, verify: bool) -> Settings:
    security = settings.security.model_copy(update={"verify_tls": verify})
    return settings.model_copy(update={"security": security})


async def test_verify_on_refuses_a_self_signed_tracker(tracker: HttpsTracker) -> None:
    async with aiohttp.ClientSession() as http:
        with pytest.raises(TrackerError, match=r"untrusted TLS certificate.*verify_tls"):
            await fetch_bounded(http, tracker.url + "?x=1")
    assert tracker.announces == []


async def test_verify_off_accepts_it(tracker: HttpsTracker) -> None:
    async with aiohttp.ClientSession() as http:
        body = await fetch_bounded(http, tracker.url + "?x=1", ssl=False)
    assert body.startswith(b"d8:interval")
    assert tracker.announces == ["x=1"]


async def test_a_trusted_certificate_verifies(tracker: HttpsTracker) -> None:
    trusted = ssl.create_default_context(cafile=str(tracker.cert_pem))
    async with aiohttp.ClientSession() as http:
        set_tls_policy(http, lambda: trusted)
        reply = await HttpTracker(tracker.url, session=http).announce(request())
    assert reply.peers == [("127.0.0.1", 6881)]


async def test_policy_defaults_to_verify() -> None:
    async with aiohttp.ClientSession() as http:
        assert tls_option(http) is True


async def test_session_setting_applies_live_to_its_trackers(tracker: HttpsTracker) -> None:
    """The announcer borrows the session's HTTP client: the setting is read per request."""
    settings = loopback_settings()
    assert settings.security.verify_tls is True
    async with Session(settings, listen_port=0) as session:
        http = session._core.http
        assert http is not None
        client = HttpTracker(tracker.url, session=http)
        with pytest.raises(TrackerError, match="untrusted TLS certificate"):
            await client.announce(request())
        await session.apply_settings(with_verify(settings, False))
        reply = await client.announce(request())
        assert reply.interval == 1800
        await session.apply_settings(with_verify(settings, True))
        with pytest.raises(TrackerError, match="untrusted TLS certificate"):
            await client.announce(request())
    assert len(tracker.announces) == 1


async def wait_for(pred: Callable[[], bool], timeout: float = 20.0) -> bool:
    deadline = time.monotonic() + timeout
    while not pred():
        if time.monotonic() > deadline:
            return False
        await asyncio.sleep(0.05)
    return True


@pytest.mark.parametrize("verify", [True, False])
async def test_torrent_announces_per_setting(
    tracker: HttpsTracker, tmp_path: Path, verify: bool
) -> None:
    data = tmp_path / "f.bin"
    data.write_bytes(random.Random(3).randbytes(64 * 1024))
    torrent = create_torrent(data, trackers=[tracker.url], piece_length=16384, workers=1)
    async with Session(with_verify(loopback_settings(), verify), listen_port=0) as session:
        handle = await session.add_torrent(torrent, tmp_path)

        def settled() -> bool:
            return handle.trackers()[0].status in ("working", "error")

        assert await wait_for(settled), handle.trackers()
        status = handle.trackers()[0]
    if verify:
        assert status.status == "error" and "certificate" in status.message
        assert tracker.announces == []
    else:
        assert status.status == "working", status
        assert "info_hash=" in tracker.announces[0]
