"""Application entry point: QApplication + one asyncio loop (qasync) hosting the engine.

Start-up order matters: hand our arguments to an already running instance first (and exit), so a
browser's ``ccbt-gui "magnet:?..."`` never opens a second window or a second engine on the same
port; only then load settings, theme, start the engine and show the window. Quitting stops the
engine (``await session.stop()``, which flushes data) before the loop ends.

A config file with mistakes never silently turns into all-default settings (that would switch
DHT or UPnP back on for a user who turned them off in the same file): the settings are loaded
key by key, an invalid key is ignored and named in a warning, and a file that cannot be read at
all stops the start unless the user chooses to run with defaults
(:mod:`ccbt_gui.settings_problems`).
"""

from __future__ import annotations

import argparse
import asyncio
import logging
import signal
import sys
from pathlib import Path

from PySide6.QtCore import QTimer, QUrl
from PySide6.QtWidgets import QApplication, QMessageBox

from ccbt_engine import CLIENT_NAME, __version__
from ccbt_engine.api import expand_home
from ccbt_engine.config import (
    ConfigError,
    SettingProblem,
    Settings,
    TolerantSettings,
    load_settings_tolerant,
    local_config_path,
    user_config_path,
)
from ccbt_engine.observability.logs import follow_settings
from ccbt_engine.remote.service import RemoteService
from ccbt_gui.controller import EngineController
from ccbt_gui.main_window import MainWindow
from ccbt_gui.single_instance import InstanceServer, send_to_running

__all__ = ["MainWindow", "main"]

log = logging.getLogger(__name__)


def _parse_args(argv: list[str]) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="ccbt-gui", description=f"{CLIENT_NAME} desktop app")
    parser.add_argument("items", nargs="*", help="magnet links or .torrent files to add")
    parser.add_argument(
        "--quit-after",
        type=int,
        metavar="MS",
        help="quit after MS milliseconds (smoke tests and screenshots)",
    )
    parser.add_argument(
        "--new-instance",
        action="store_true",
        help="do not hand the items to a running instance; always start a new one",
    )
    parser.add_argument(
        "--register-handler",
        action="store_true",
        help="make ccbt-gui this user's handler for magnet links and .torrent files, then exit",
    )
    parser.add_argument(
        "--unregister-handler",
        action="store_true",
        help="undo --register-handler, then exit",
    )
    return parser.parse_args(argv)


def main(argv: list[str] | None = None) -> int:
    """Start the GUI; returns the process exit code."""
    import qasync

    args = _parse_args(sys.argv[1:] if argv is None else argv)
    if args.register_handler or args.unregister_handler:
        from ccbt_gui import platform

        print(platform.register() if args.register_handler else platform.unregister())
        return 0
    app = QApplication.instance() or QApplication(sys.argv[:1])
    assert isinstance(app, QApplication)
    app.setApplicationName(CLIENT_NAME)
    app.setApplicationVersion(__version__)
    app.setDesktopFileName("ccbittorrent")
    app.setQuitOnLastWindowClosed(False)  # the tray keeps running; quitting is explicit

    args.items = normalise_items(args.items)
    server: InstanceServer | None = None
    if not args.new_instance:
        if send_to_running(args.items):
            print("handed over to the running instance", flush=True)
            return 0
        server = InstanceServer()
        if not server.listen():
            log.warning("single-instance server %s not available", server.name)

    from ccbt_gui.settings_problems import (
        confirm_unreadable,
        report_ignored,
        report_unusable_folder,
    )

    try:  # where config.toml, ccbt.toml and gui-state.ini are: nothing works without them
        user_config_path()
        local_config_path()
    except ConfigError as exc:
        print(f"not started: {exc}", file=sys.stderr, flush=True)
        report_unusable_folder(exc)
        if server is not None:
            server.close()
        return 1
    loaded = _load_settings()
    settings = loaded.settings
    from ccbt_gui.theme import apply_theme, chart_colors

    if loaded.unreadable and not confirm_unreadable(loaded.unreadable):
        print("not started: a settings file could not be read", flush=True)
        if server is not None:
            server.close()
        return 1

    mode = apply_theme(app, settings.ui.theme)
    loop = qasync.QEventLoop(app)
    asyncio.set_event_loop(loop)
    controller = EngineController(settings)
    follow_settings(controller.live)  # observability.log_*: now and on every change
    window = MainWindow(controller)
    window.details.speed.set_colors(*chart_colors(mode))
    _follow_system_theme(app, window)
    if server is not None:
        server.received.connect(window.handle_items)
    if settings.ui.start_minimized and window.tray.available():
        print("main window hidden in the tray", flush=True)
    else:
        window.show()
        print("main window shown", flush=True)
    if loaded.ignored:
        window.show_message(report_ignored(loaded.ignored, window), 30000)
    try:
        with loop:
            loop.run_until_complete(_run(app, controller, window, args))
    finally:
        if server is not None:
            server.close()
    return 0


def normalise_items(items: list[str]) -> list[str]:
    """Magnets as given; files as absolute paths, because the running instance that receives
    them has a different working folder (``file://`` URLs from file managers become paths)."""
    out = []
    for item in items:
        if item.lower().startswith("magnet:"):
            out.append(item)
            continue
        if item.startswith("file://"):
            item = QUrl(item).toLocalFile()
        try:
            path = expand_home(item)
        except ValueError:  # "~nobody/x.torrent": the add dialog will say it cannot be read
            path = Path(item)
        out.append(str(path.absolute()))
    return out


def _load_settings() -> TolerantSettings:
    """Every valid setting; the ignored ones are printed here and shown by the caller."""
    try:
        loaded = load_settings_tolerant()
    except ConfigError as exc:  # only a bug can get here: bad input is reported, not raised
        loaded = TolerantSettings(Settings(), (SettingProblem(exc, exc.key, None),), {})
    for problem in loaded.problems:
        print(f"settings error: {problem.error}", file=sys.stderr, flush=True)
    return loaded


async def _run(
    app: QApplication, controller: EngineController, window: MainWindow, args: argparse.Namespace
) -> None:
    done = asyncio.Event()
    window.on_quit = done.set
    app.aboutToQuit.connect(done.set)
    _quit_on_signals(window)
    try:
        note = await controller.start()
    except Exception as exc:  # e.g. no address to listen on at all
        QMessageBox.critical(window, CLIENT_NAME, f"The engine could not start:\n{exc}")
        return
    session = controller.session
    assert session is not None
    window.set_port_note(f"Port {session.listen_port}")
    remote = RemoteService(session)
    remote.follow(controller.live)  # remote.enabled: serve this engine as `ccbt daemon` does
    if note:
        window.set_port_note(f"Port {session.listen_port} (random: configured port busy)")
        window.show_message(note, 30000)
        print(note, flush=True)
    if args.items:
        window.handle_items(list(args.items))
    if args.quit_after is not None:
        QTimer.singleShot(args.quit_after, window.request_quit)
    await done.wait()
    window.save_state()
    window.close()
    await remote.stop()
    await controller.stop()
    print("engine stopped", flush=True)


def _follow_system_theme(app: QApplication, window: MainWindow) -> None:
    """With theme = "system", switch light/dark when the desktop does (Qt >= 6.5)."""
    from ccbt_gui.theme import apply_theme, chart_colors

    def changed(*_args: object) -> None:
        if window.settings.ui.theme == "system":
            window.details.speed.set_colors(*chart_colors(apply_theme(app, "system")))

    hints = app.styleHints()
    if hasattr(hints, "colorSchemeChanged"):
        hints.colorSchemeChanged.connect(changed)


def _quit_on_signals(window: MainWindow) -> None:
    """SIGINT/SIGTERM quit cleanly (engine stopped, socket removed) instead of killing us.

    Python runs signal handlers only when the interpreter gets control; the engine's snapshot
    timer gives it control at least every tick, so the delay is bounded by that interval.
    """

    def handler(_signum: int, _frame: object) -> None:
        QTimer.singleShot(0, window.request_quit)

    for sig in (signal.SIGINT, signal.SIGTERM):
        signal.signal(sig, handler)


if __name__ == "__main__":
    sys.exit(main())
