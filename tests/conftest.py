"""Shared test configuration.

Tests never send traffic beyond 127.0.0.0/8: DHT bootstrap (which would resolve the public
routers), local service discovery (LAN multicast), UPnP and NAT-PMP are switched off through the
environment for everything the suite starts, in-process or as a subprocess. Tests that exercise
those features turn them on explicitly with loopback-only endpoints.
"""

from __future__ import annotations

import atexit
import os
import shutil
import tempfile
from collections.abc import AsyncIterator, Iterator

import pytest

from ccbt_engine.portmap import service as portmap_service
from tests.portmap_fakes import FakeIgd, FakeNatPmp

os.environ.setdefault("QT_QPA_PLATFORM", "offscreen")
for _key in ("ENABLE_DHT", "ENABLE_LSD", "ENABLE_UPNP", "ENABLE_NATPMP"):
    os.environ[f"CCBT_NETWORK_{_key}"] = "false"

# Resume data, session state and the DHT table go to a throwaway folder, never the user's own
# (the CLI and GUI persist by default; subprocesses inherit this).
_STATE_DIR = tempfile.mkdtemp(prefix="ccbt-test-state-")
os.environ["CCBT_STATE_DIR"] = _STATE_DIR
atexit.register(shutil.rmtree, _STATE_DIR, ignore_errors=True)


# -- port-mapping fakes (tests/portmap_fakes.py), for the tests that ask for them ------------
@pytest.fixture
def no_real_gateway(monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    """The real default-gateway lookup fails: a port-mapping test that forgot to point the
    service at a fake cannot reach a real router either."""

    def refuse() -> str | None:
        raise AssertionError("a test asked for the real default gateway")

    monkeypatch.setattr(portmap_service, "default_gateway", refuse)
    yield


@pytest.fixture
async def nat() -> AsyncIterator[FakeNatPmp]:
    """A NAT-PMP gateway on 127.0.0.1."""
    fake = await FakeNatPmp().start()
    yield fake
    fake.close()


@pytest.fixture
async def igd() -> AsyncIterator[FakeIgd]:
    """A UPnP internet gateway device on 127.0.0.1."""
    fake = await FakeIgd().start()
    yield fake
    await fake.close()
