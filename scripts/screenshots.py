"""Render the GUI's main views to docs/screenshots/*.png (offscreen, no display needed).

The torrents are synthetic statuses fed through the same model path the engine's snapshots take
(``MainWindow.apply_snapshot``), plus a small stand-in handle for what snapshots do not carry
(peers, files, pieces), so the pictures show a busy client without any network traffic.

Run: ``.venv/bin/python scripts/screenshots.py [--out docs/screenshots]``
"""

from __future__ import annotations

import argparse
import dataclasses
import os
import random
import sys
import tempfile
import time
from collections.abc import Sequence
from pathlib import Path

os.environ.setdefault("QT_QPA_PLATFORM", "offscreen")
# keep the demo's remembered column widths etc. out of the user's real config folder
_CONFIG_DIR = tempfile.TemporaryDirectory(prefix="ccbt-shots-")
os.environ["CCBT_CONFIG_DIR"] = _CONFIG_DIR.name

from PySide6.QtWidgets import QApplication, QWidget  # noqa: E402

from ccbt_engine.api import (  # noqa: E402
    FileStatus,
    MappingStatus,
    NetworkStatus,
    PeerStatus,
    TorrentStatus,
    TrackerStatus,
)
from ccbt_engine.config import Settings  # noqa: E402
from ccbt_gui.dialogs.settings import SettingsDialog  # noqa: E402
from ccbt_gui.main_window import MainWindow  # noqa: E402
from ccbt_gui.theme import apply_theme, chart_colors  # noqa: E402
from ccbt_gui.widgets.charts import RateHistory  # noqa: E402
from ccbt_gui.widgets.details import DetailsPane  # noqa: E402

MIB = 1024 * 1024
NOW = time.time()


def _status(
    i: int, name: str, size: int, state: str, progress: float, **kw: object
) -> TorrentStatus:
    done = int(size * progress)
    down = float(kw.pop("down", 0.0))  # type: ignore[arg-type]
    base: dict[str, object] = dict(
        info_hash=f"{i:02x}" * 20,
        info_hash_v2=(f"{i:02x}" * 32) if i % 2 else None,
        name=name,
        state=state,
        progress=progress,
        wanted_size=size,
        wanted_done=done,
        total_size=size,
        selected_size=size,
        download_rate=down,
        upload_rate=0.0,
        num_peers=0,
        num_seeds=0,
        downloaded=done,
        uploaded=0,
        ratio=0.0,
        eta=(size - done) / down if down > 0 else None,
        save_path="/home/user/Downloads",
        added_time=NOW - 86400 * (7 - i) - 3600 * i,
        time_active=3600.0 * (i + 1),
        error=None,
        num_pieces=max(1, size // (256 * 1024)),
        piece_length=256 * 1024,
        pieces_have=int(max(1, size // (256 * 1024)) * progress),
        hash_failures=0,
        wasted=0,
        checking_progress=0.0,
        sequential=False,
        download_limit=0,
        upload_limit=0,
    )
    base.update(kw)
    return TorrentStatus(**base)  # type: ignore[arg-type]


def demo_statuses() -> list[TorrentStatus]:
    return [
        _status(
            1,
            "debian-13.1.0-amd64-netinst.iso",
            754 * MIB,
            "downloading",
            0.62,
            down=4.2 * MIB,
            upload_rate=310_000.0,
            num_peers=38,
            num_seeds=21,
            uploaded=120 * MIB,
            ratio=0.26,
        ),
        _status(
            2,
            "Big Buck Bunny (1080p)",
            885 * MIB,
            "seeding",
            1.0,
            upload_rate=820_000.0,
            num_peers=12,
            uploaded=2100 * MIB,
            ratio=2.37,
            eta=0.0,
        ),
        _status(
            3,
            "ubuntu-24.04.3-desktop-amd64.iso",
            5900 * MIB,
            "downloading",
            0.18,
            down=9.6 * MIB,
            upload_rate=95_000.0,
            num_peers=64,
            num_seeds=57,
            ratio=0.01,
        ),
        _status(4, "Sintel.2010.4K.mkv", 4300 * MIB, "paused", 0.47, num_peers=0),
        _status(
            5,
            "archlinux-2025.11.01-x86_64.iso",
            1200 * MIB,
            "checking",
            0.30,
            checking_progress=0.74,
        ),
        _status(6, "Project Gutenberg top 100 (epub)", 310 * MIB, "paused", 1.0, ratio=1.02),
        _status(
            7,
            "broken-share",
            2 * MIB * 1024,
            "error",
            0.05,
            error="No space left on device: /mnt/usb/broken-share/part2.bin",
        ),
        _status(
            8,
            "Creative Commons music sampler",
            96 * MIB,
            "downloading",
            0.91,
            down=0.0,
            num_peers=3,
            num_seeds=0,
        ),
        _status(  # a magnet link still fetching its info dict from peers
            9,
            "Linux Mint 22.2 Cinnamon",
            0,
            "metadata",
            0.0,
            selected_size=0,
            num_pieces=0,
            piece_length=0,
            pieces_have=0,
            checking_progress=0.4,
            num_peers=2,
        ),
    ]


def demo_network() -> NetworkStatus:
    """One engine tick's network facts: reachable port mapped by UPnP, a populated DHT."""
    mapped = tuple(
        MappingStatus("upnp", transport, 6881, 6881, "mapped", "", "203.0.113.7", 0)
        for transport in ("TCP", "UDP")
    )
    return NetworkStatus(
        listen_port=6881,
        external_ip="203.0.113.7",
        dht_enabled=True,
        dht_nodes=312,
        incoming_seen=True,
        download_rate=13.8 * MIB,
        upload_rate=1.2 * MIB,
        downloaded=5730 * MIB,
        uploaded=1240 * MIB,
        alt_speed=False,
        mappings=mapped,
    )


class DemoHandle:
    """What the details pane asks a TorrentHandle for, made up deterministically."""

    def __init__(self, status: TorrentStatus) -> None:
        self.status = status
        self.info_hash = status.info_hash
        rng = random.Random(status.name)
        names = [
            "disc/track01.flac",
            "disc/track02.flac",
            "disc/cover.jpg",
            "extras/notes.txt",
            "extras/video/making-of.mkv",
            "README.txt",
        ]
        sizes = [rng.randint(2, 60) * MIB for _ in names]
        done = [min(s, int(s * status.progress * rng.uniform(0.6, 1.6))) for s in sizes]
        self._files = [
            FileStatus(i, f"{status.name}/{n}", s, 4 if i != 3 else 0, False, d)
            for i, (n, s, d) in enumerate(zip(names, sizes, done, strict=True))
        ]
        if status.state == "metadata":
            self._files = []  # no file list before the metadata arrives
        n = status.num_pieces
        have = [rng.random() < status.progress * (1.3 if k < n // 2 else 0.7) for k in range(n)]
        self._bits = bytes(
            sum(1 << (7 - b) for b in range(8) if k * 8 + b < n and have[k * 8 + b])
            for k in range((n + 7) // 8)
        )
        clients = [
            "qBittorrent 5.0.1",
            "Transmission 4.0.6",
            "libtorrent 2.0.10",
            "Deluge 2.1.1",
            "ccBitTorrent 0.1.0",
        ]
        self._peers = [
            PeerStatus(
                f"127.0.0.{10 + k}:{51000 + k * 7}",
                clients[k % len(clients)],
                ["D U", "D", "d I", "U", "D S"][k % 5].replace(" ", ""),
                rng.random(),
                rng.random() * 900_000,
                rng.random() * 120_000,
                rng.randint(1, 90) * MIB,
                rng.randint(0, 20) * MIB,
                ["tracker", "dht", "pex", "incoming"][k % 4],
                "TCP",
                k % 2 == 0,
                False,
                0,
            )
            for k in range(min(status.num_peers, 9))
        ]

    def peers(self) -> list[PeerStatus]:
        return self._peers

    def files(self) -> list[FileStatus]:
        return self._files

    def pieces(self) -> bytes:
        return self._bits

    def set_file_priorities(self, priorities: Sequence[int]) -> None:
        self._files = [
            dataclasses.replace(f, priority=p) for f, p in zip(self._files, priorities, strict=True)
        ]


def build_window(theme: str) -> MainWindow:
    app = QApplication.instance()
    assert isinstance(app, QApplication)
    mode = apply_theme(app, theme)
    window = MainWindow(settings=Settings())
    window.details.speed.set_colors(*chart_colors(mode))
    statuses = demo_statuses()
    handles = {s.info_hash: DemoHandle(s) for s in statuses}
    window.details._handles = handles.get
    window.details._trackers = lambda h: (
        [
            TrackerStatus(
                "udp://tracker.example.org:6969/announce",
                0,
                "working",
                "",
                NOW - 600,
                NOW + 1200,
                412,
                57,
                9180,
            ),
            TrackerStatus(
                "https://tracker.example.net/announce",
                1,
                "error",
                "connection timed out",
                NOW - 300,
                NOW + 900,
                None,
                None,
                None,
            ),
        ]
        if h == statuses[0].info_hash
        else []
    )
    window.resize(1280, 760)
    window.set_port_note("Port 6881")
    window.show()
    window.apply_snapshot(statuses)
    window.select_row(0)
    # two minutes of rate history for the Speed tab, ending now (selecting resets it)
    rng = random.Random(7)
    window.details._history = RateHistory()
    window.details.session_history = RateHistory()
    t0 = time.monotonic() - 120
    for k in range(121):
        d = 4.2 * MIB * (0.8 + 0.3 * rng.random())
        u = 310_000 * (0.6 + 0.4 * rng.random())
        window.details._history.add(d, u, 30 + rng.randint(0, 10), now=t0 + k)
        window.details.session_history.add(
            d + 9.6 * MIB * (0.8 + 0.3 * rng.random()), u * 3.5, 114 + rng.randint(0, 6), now=t0 + k
        )
    window.net_status.set_rates(13.8 * MIB, 1.2 * MIB)
    window.net_status.set_network(demo_network())  # status bar: connected, DHT, totals
    return window


def grab(widget: QWidget, path: Path) -> None:
    app = QApplication.instance()
    assert app is not None
    for _ in range(5):
        app.processEvents()
    if not widget.grab().save(str(path)):
        raise SystemExit(f"could not write {path}")
    print(f"wrote {path}")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--out", type=Path, default=Path("docs/screenshots"))
    args = parser.parse_args(argv)
    args.out.mkdir(parents=True, exist_ok=True)
    app = QApplication.instance() or QApplication(sys.argv[:1])
    for theme in ("light", "dark"):
        window = build_window(theme)
        window.details.setCurrentIndex(DetailsPane.GENERAL)
        grab(window, args.out / f"main_{theme}.png")
        if theme == "light":
            tabs = {
                DetailsPane.TRACKERS: "trackers",
                DetailsPane.PEERS: "peers",
                DetailsPane.FILES: "files",
                DetailsPane.PIECES: "pieces",
                DetailsPane.SPEED: "speed",
            }
            for tab, name in tabs.items():
                window.details.setCurrentIndex(tab)
                grab(window, args.out / f"details_{name}.png")
            dialog = SettingsDialog(
                Settings(), Path(os.environ["CCBT_CONFIG_DIR"]) / "config.toml", window
            )
            dialog.fields["network.listen_port"].set_text("70000")
            dialog.validate()
            dialog.show_page("Connection")
            dialog.resize(820, 600)
            dialog.show()
            grab(dialog, args.out / "settings.png")
            dialog.close()
        window.request_quit()
        window.close()
        window.deleteLater()
    app.processEvents()
    _CONFIG_DIR.cleanup()
    return 0


if __name__ == "__main__":
    sys.exit(main())
