"""Fixtures for tests against reference clients (see ``refpeers.py`` for the classes).

Payloads are session-scoped and deterministic: generating 64 MiB costs ~0.5 s, so every test
that needs one shares it, and a failure reproduces with the same bytes. Every test in this
folder ends with :func:`refpeers.stop_all`, so a test that forgets to stop a peer (or fails
halfway) still leaves no process behind.
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.interop import refpeers


@pytest.fixture(autouse=True)
def ref_cleanup() -> Iterator[None]:
    """Stop reference processes a test left running, and check they are really gone."""
    yield
    pids = refpeers.live_pids()
    refpeers.stop_all()
    for pid in pids:
        try:
            os.kill(pid, 0)
        except ProcessLookupError:
            continue
        # A zombie is gone for every purpose but the process table; anything else is a leak.
        state = Path(f"/proc/{pid}/stat").read_text().split(") ", 1)[-1][:1]
        assert state == "Z", f"reference process {pid} survived stop_all (state {state})"


@pytest.fixture(scope="session")
def payload_16m(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """16 MiB in 12 files of varying size (some in sub-folders); read-only by convention."""
    return refpeers.make_payload(tmp_path_factory.mktemp("payload16"), 16 << 20, 12, seed=16)


@pytest.fixture(scope="session")
def payload_64m(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """64 MiB in 20 files of varying size; read-only by convention."""
    return refpeers.make_payload(tmp_path_factory.mktemp("payload64"), 64 << 20, 20, seed=64)


@pytest.fixture
def mini_tracker() -> Iterator[refpeers.MiniTracker]:
    """A running in-process HTTP tracker; ``.announce_url`` goes into the torrent."""
    with refpeers.MiniTracker() as tracker:
        yield tracker


@pytest.fixture
def open_tracker() -> Iterator[refpeers.OpenTracker]:
    """Debian's opentracker on 127.0.0.1 (HTTP + UDP); call ``.allow(info_hash)`` per torrent."""
    try:
        tracker = refpeers.OpenTracker()
        tracker.start()
    except refpeers.RefPeerError as exc:
        pytest.skip(f"opentracker unavailable: {exc}")
    try:
        yield tracker
    finally:
        tracker.stop()


@pytest.fixture(scope="session")
def aria2c() -> str:
    """Path of aria2c, installed with apt-get when missing; skips when that is impossible."""
    try:
        return refpeers.ensure_apt_binary("aria2c", "aria2")
    except refpeers.RefPeerError as exc:
        pytest.skip(str(exc))
