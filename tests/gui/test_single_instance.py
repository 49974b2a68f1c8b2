"""Single instance: a second launch hands its magnet link to the first process and exits 0."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path
from typing import IO, Any

import pytest
from PySide6.QtCore import QDir

from ccbt_gui.single_instance import InstanceServer, send_to_running, server_name

MAGNET = (
    "magnet:?xt=urn:btih:0123456789abcdef0123456789abcdef01234567"
    "&dn=Test%20Album&tr=udp%3A%2F%2F127.0.0.1%3A6969"
)


def _env(tmp_path: Path, name: str) -> dict[str, str]:
    cfg = tmp_path / "cfg"
    cfg.mkdir(exist_ok=True)
    return dict(
        os.environ,
        QT_QPA_PLATFORM="offscreen",
        CCBT_GUI_SERVER_NAME=name,
        CCBT_CONFIG_DIR=str(cfg),
        CCBT_NETWORK_LISTEN_INTERFACES="127.0.0.1",
        CCBT_DISK_DOWNLOAD_PATH=str(tmp_path / "downloads"),
        PYTHONUNBUFFERED="1",
    )


def _wait_for(stream: IO[str], needle: str, timeout: float, seen: list[str]) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        line = stream.readline()
        if not line:
            break
        seen.append(line)
        if needle in line:
            return
    raise AssertionError(f"{needle!r} not seen; output so far: {''.join(seen)!r}")


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def test_second_launch_hands_magnet_to_first(tmp_path: Path) -> None:
    name = f"ccbt-test-si-{os.getpid()}-{tmp_path.name}"
    env = _env(tmp_path, name)
    env["CCBT_NETWORK_LISTEN_PORT"] = str(_free_port())
    cmd = [sys.executable, "-m", "ccbt_gui.app"]
    first = subprocess.Popen(
        [*cmd, "--quit-after", "50000"],
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    out: list[str] = []
    try:
        assert first.stdout is not None
        _wait_for(first.stdout, "main window shown", 30, out)
        second = subprocess.run([*cmd, MAGNET], env=env, capture_output=True, text=True, timeout=30)
        assert second.returncode == 0, second.stderr
        assert "handed over to the running instance" in second.stdout
        assert "main window shown" not in second.stdout  # it never opened a window
        _wait_for(first.stdout, f"magnet received: {MAGNET}", 15, out)
        # ...and really added it (the engine fetches metadata; the tracker is loopback)
        _wait_for(
            first.stdout,
            "magnet added: 0123456789abcdef0123456789abcdef01234567 (Test Album)",
            15,
            out,
        )
        first.send_signal(signal.SIGTERM)
        rest, err = first.communicate(timeout=30)
        assert first.returncode == 0, err
        assert "engine stopped" in rest  # quit went through session.stop()
    finally:
        if first.poll() is None:
            first.kill()
            first.wait(10)
    # the server's socket is gone: a new instance would not find a stale one
    assert not Path(QDir.tempPath(), name).exists()


def test_no_running_instance_means_no_handoff(qapp: Any, tmp_path: Path) -> None:
    assert send_to_running(["x"], name=f"ccbt-test-none-{tmp_path.name}") is False


@pytest.mark.skipif(sys.platform == "win32", reason="Unix socket files only")
def test_stale_socket_file_is_replaced(qapp: Any, tmp_path: Path) -> None:
    name = f"ccbt-test-stale-{os.getpid()}"
    path = Path(QDir.tempPath(), name)
    stale = socket.socket(socket.AF_UNIX)
    stale.bind(str(path))  # bound, never listening: what a crashed instance leaves behind
    stale.close()
    server = InstanceServer(name)
    try:
        assert server.listen()
    finally:
        server.close()
    assert not path.exists()


def test_server_name_is_per_user_and_overridable(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("CCBT_GUI_SERVER_NAME", raising=False)
    default = server_name()
    assert default.startswith("ccbt-gui-") and "/" not in default
    monkeypatch.setenv("CCBT_GUI_SERVER_NAME", "custom")
    assert server_name() == "custom"


def test_items_are_normalised_before_handoff(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from ccbt_gui.app import normalise_items

    monkeypatch.chdir(tmp_path)
    assert normalise_items([MAGNET, "a.torrent", "file:///srv/x%20y.torrent"]) == [
        MAGNET,
        str(tmp_path / "a.torrent"),
        "/srv/x y.torrent",
    ]
    # a ~user without a home stays as typed: the add dialog then says it cannot read it
    assert normalise_items(["~ccbt-no-such-user/a.torrent"]) == [
        str(tmp_path / "~ccbt-no-such-user" / "a.torrent")
    ]
