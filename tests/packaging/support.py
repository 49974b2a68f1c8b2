"""Helpers shared by the packaging tests: building the bundle and .deb, running frozen apps."""

from __future__ import annotations

import os
import shutil
import socket
import subprocess
import sys
import time
from pathlib import Path
from typing import IO

ROOT = Path(__file__).resolve().parents[2]
SPEC = ROOT / "build_app.spec"
PACKAGE_SH = ROOT / "installers" / "linux" / "package.sh"
DESKTOP_FILE = "ccbittorrent.desktop"
MAGNET_1 = (
    "magnet:?xt=urn:btih:0123456789abcdef0123456789abcdef01234567"
    "&dn=First%20Album&tr=udp%3A%2F%2F127.0.0.1%3A6969"
)
MAGNET_2 = "magnet:?xt=urn:btih:89abcdef0123456789abcdef0123456789abcdef&dn=Second"
EXE_SUFFIX = ".exe" if sys.platform == "win32" else ""


def build_bundle(dist: Path, work: Path) -> tuple[Path, float]:
    """Run PyInstaller on build_app.spec; returns the bundle folder and the wall time taken."""
    start = time.monotonic()
    proc = subprocess.run(
        [
            sys.executable,
            "-m",
            "PyInstaller",
            "--noconfirm",
            "--log-level",
            "WARN",
            "--distpath",
            str(dist),
            "--workpath",
            str(work),
            str(SPEC),
        ],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=1200,
    )
    elapsed = time.monotonic() - start
    assert proc.returncode == 0, proc.stderr[-4000:]
    return dist / "ccBitTorrent", elapsed


def package_linux(bundle: Path, out: Path) -> list[Path]:
    """installers/linux/package.sh; returns the files it reports (tarball, .deb).

    Light compression instead of the release's xz / gzip -9: the same packages, and the whole
    step takes a fraction of the time (it compresses ~300 MB twice).
    """
    cmd = ["bash", str(PACKAGE_SH), "--bundle", str(bundle), "--out", str(out)]
    env = dict(os.environ, DEB_COMPRESSION="none", TARBALL_GZIP_LEVEL="1")
    proc = subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=600)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    return [Path(line) for line in proc.stdout.split()]


def app_env(tmp: Path, server_name: str) -> dict[str, str]:
    """A private config, download folder, loopback-only engine and single-instance socket."""
    (tmp / "cfg").mkdir(parents=True, exist_ok=True)
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    return dict(
        os.environ,
        QT_QPA_PLATFORM="offscreen",
        CCBT_GUI_SERVER_NAME=server_name,
        CCBT_CONFIG_DIR=str(tmp / "cfg"),
        CCBT_NETWORK_LISTEN_INTERFACES="127.0.0.1",
        CCBT_NETWORK_LISTEN_PORT=str(port),
        CCBT_DISK_DOWNLOAD_PATH=str(tmp / "downloads"),
        HOME=str(tmp),
        XDG_CONFIG_HOME=str(tmp / "config-home"),
        XDG_DATA_HOME=str(tmp / "data-home"),
    )


def wait_for(stream: IO[str], needle: str, timeout: float, seen: list[str]) -> None:
    """Read lines until one contains ``needle``; the process must keep printing or exit."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        line = stream.readline()
        if not line:
            break
        seen.append(line)
        if needle in line:
            return
    raise AssertionError(f"{needle!r} not seen; output so far: {''.join(seen)!r}")


def clean_xdg_env(home: Path) -> dict[str, str]:
    """Environment of a user with no MIME preferences of their own and no desktop session, so
    ``xdg-mime`` uses its generic backend and falls through to the system-wide defaults."""
    env = {
        k: v
        for k, v in os.environ.items()
        if not k.startswith(("XDG_", "KDE_", "GNOME_")) and k != "DESKTOP_SESSION"
    }
    env["HOME"] = str(home)
    return env


def xdg_default(mime: str, env: dict[str, str]) -> str:
    xdg_mime = shutil.which("xdg-mime")
    assert xdg_mime, "xdg-mime missing: apt-get install xdg-utils"
    proc = subprocess.run(
        [xdg_mime, "query", "default", mime], env=env, capture_output=True, text=True, timeout=30
    )
    return proc.stdout.strip()


PACKAGE = "ccbittorrent"


def dpkg_status(package: str = PACKAGE) -> str | None:
    """The package's dpkg status line, or None if dpkg does not know it."""
    proc = subprocess.run(
        ["dpkg-query", "-W", "-f=${Status}", package], capture_output=True, text=True, timeout=30
    )
    return proc.stdout.strip() if proc.returncode == 0 and proc.stdout.strip() else None


def can_install_debs() -> str | None:
    """Why a real ``dpkg -i`` cannot be done here (None if it can)."""
    if sys.platform != "linux" or not shutil.which("dpkg"):
        return "needs a Debian-family Linux with dpkg"
    if os.geteuid() != 0:
        return "needs root to run dpkg -i (CI and this machine run as root)"
    status = dpkg_status()
    if status and "not-installed" not in status and "config-files" not in status:
        return f"a {PACKAGE} package is already installed here ({status}); not replacing it"
    return None


def dpkg(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(["dpkg", *args], capture_output=True, text=True, timeout=300)
