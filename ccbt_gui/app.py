"""Application entry point: QApplication + one asyncio loop (qasync) hosting the engine.

This is the first cut: it opens the main window on the qasync loop. The torrent list, details,
tray, settings and single-instance handoff are built out in the Desktop GUI issue.
"""

from __future__ import annotations

import argparse
import asyncio
import sys

from PySide6.QtCore import QTimer
from PySide6.QtWidgets import QApplication, QLabel, QMainWindow

from ccbt_engine import CLIENT_NAME, __version__


class MainWindow(QMainWindow):
    """Top-level window."""

    def __init__(self) -> None:
        super().__init__()
        self.setWindowTitle(CLIENT_NAME)
        self.resize(1000, 640)
        label = QLabel(f"{CLIENT_NAME} {__version__}")
        self.setCentralWidget(label)


def _parse_args(argv: list[str]) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="ccbt-gui", description=f"{CLIENT_NAME} desktop app")
    parser.add_argument("items", nargs="*", help="magnet links or .torrent files to add")
    parser.add_argument(
        "--quit-after",
        type=int,
        metavar="MS",
        help="quit after MS milliseconds (smoke tests and screenshots)",
    )
    return parser.parse_args(argv)


def main(argv: list[str] | None = None) -> int:
    """Start the GUI; returns the process exit code."""
    import qasync

    args = _parse_args(sys.argv[1:] if argv is None else argv)
    app = QApplication.instance() or QApplication(sys.argv[:1])
    app.setApplicationName(CLIENT_NAME)
    app.setApplicationVersion(__version__)
    loop = qasync.QEventLoop(app)
    asyncio.set_event_loop(loop)
    window = MainWindow()
    window.show()
    print("main window shown", flush=True)
    if args.quit_after is not None:
        QTimer.singleShot(args.quit_after, app.quit)
    with loop:
        loop.run_until_complete(_until_quit(app))
    return 0


async def _until_quit(app: QApplication) -> None:
    done = asyncio.Event()
    app.aboutToQuit.connect(done.set)
    await done.wait()


if __name__ == "__main__":
    sys.exit(main())
