"""Logging setup shared by the GUI, the CLI and the daemon (``observability.log_*`` settings).

One call, :func:`configure_logging`, turns the settings into handlers on the root logger and can
be called again whenever the settings change (it replaces only what it installed itself, so
pytest's capture handlers or an embedding application's handlers survive).

Writing to a file or a terminal is blocking I/O, and the engine's loop must never block, so the
root logger only gets a :class:`~logging.handlers.QueueHandler`; a
:class:`~logging.handlers.QueueListener` thread does the actual writing. The file rotates
(:data:`MAX_BYTES` x :data:`BACKUP_COUNT`) so a seedbox that runs for months cannot fill its disk
with logs. A relative ``log_file`` is placed in the platform's log folder (``platformdirs``).
"""

from __future__ import annotations

import atexit
import copy
import datetime
import json
import logging
import logging.handlers
import queue
import sys
import threading
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any, ClassVar, TextIO

import platformdirs

from ccbt_engine.config.model import ObservabilitySettings
from ccbt_engine.pathsafe import expand_home

if TYPE_CHECKING:
    from ccbt_engine.config import Changes, LiveSettings, Settings

__all__ = [
    "BACKUP_COUNT",
    "MAX_BYTES",
    "JsonFormatter",
    "LoggingSetup",
    "configure_cli_logging",
    "configure_logging",
    "default_log_dir",
    "follow_settings",
    "reset_logging",
    "resolve_log_file",
]

#: Rotate the log file at this size ...
MAX_BYTES = 10 * 1024 * 1024
#: ... and keep this many old ones (ccbt.log.1 … ccbt.log.5).
BACKUP_COUNT = 5
TEXT_FORMAT = "%(asctime)s %(levelname)s %(name)s: %(message)s"

#: Attributes every LogRecord has; anything else was passed with ``extra=`` and goes to JSON.
_STANDARD_ATTRS = frozenset(
    logging.LogRecord("", 0, "", 0, "", None, None).__dict__.keys()
    | {"message", "asctime", "taskName"}
)


class JsonFormatter(logging.Formatter):
    """One JSON object per line: ``ts`` (UTC, ISO 8601), ``level``, ``logger``, ``message``,
    ``exc`` when there is a traceback, and any ``extra=`` fields — what log shippers
    (journald, Loki, Elasticsearch) ingest without a parsing rule."""

    def format(self, record: logging.LogRecord) -> str:
        stamp = datetime.datetime.fromtimestamp(record.created, tz=datetime.UTC)
        body: dict[str, Any] = {
            "ts": stamp.isoformat(timespec="milliseconds").replace("+00:00", "Z"),
            "level": record.levelname,
            "logger": record.name,
            "message": record.getMessage(),
        }
        if record.exc_info:
            body["exc"] = self.formatException(record.exc_info)
        elif record.exc_text:
            body["exc"] = record.exc_text
        if record.stack_info:
            body["stack"] = self.formatStack(record.stack_info)
        for key, value in record.__dict__.items():
            if key not in _STANDARD_ATTRS and key not in body:
                body[key] = value
        return json.dumps(body, default=str, ensure_ascii=False)


def default_log_dir() -> Path:
    """The platform's log folder for ccbt (e.g. ``~/.local/state/ccbt/log`` on Linux)."""
    return platformdirs.user_log_path("ccbt")


def resolve_log_file(path: Path | None) -> Path | None:
    """``None`` stays None (console only); a relative path goes under :func:`default_log_dir`."""
    if path is None:
        return None
    path = expand_home(path)
    return path if path.is_absolute() else default_log_dir() / path


@dataclass(frozen=True, slots=True)
class LoggingSetup:
    """What :func:`configure_logging` installed (for messages and tests)."""

    level: int
    console_level: int | None
    log_file: Path | None
    json: bool
    #: why the file could not be opened (logging then continues on the console only)
    file_error: str | None = None


class _Handoff(logging.handlers.QueueHandler):
    """Hands a record to the writer thread with its message merged and its traceback as text
    (the stock one folds the traceback into the message, which would hide it from JSON's
    ``exc`` field)."""

    def prepare(self, record: logging.LogRecord) -> logging.LogRecord:
        record = copy.copy(record)
        record.message = record.getMessage()
        record.msg, record.args = record.message, None
        if record.exc_info:
            record.exc_text = _PLAIN.formatException(record.exc_info)
            record.exc_info = None
        return record


_PLAIN = logging.Formatter()


class _Installed:
    """The process's current setup: our queue handler on the root logger and its listener."""

    lock: ClassVar[threading.Lock] = threading.Lock()
    handler: ClassVar[logging.handlers.QueueHandler | None] = None
    listener: ClassVar[logging.handlers.QueueListener | None] = None
    sinks: ClassVar[list[logging.Handler]] = []


def configure_logging(
    settings: ObservabilitySettings,
    *,
    console_level: int | None = None,
    console: bool = True,
    stream: TextIO | None = None,
) -> LoggingSetup:
    """Install (or replace) ccbt's logging per ``settings``; safe to call on every change.

    ``console_level``: the terminal's threshold when it should differ from ``log_level`` (the
    CLI keeps its terminal quiet unless ``-v``/``--debug``; the file still gets ``log_level``).
    ``console=False``: no terminal output (a GUI started from a desktop has no terminal).
    ``stream``: the terminal stream, default ``sys.stderr``.
    """
    level = logging.getLevelName(settings.log_level)
    assert isinstance(level, int)
    formatter: logging.Formatter = (
        JsonFormatter() if settings.log_json else logging.Formatter(TEXT_FORMAT)
    )
    sinks: list[logging.Handler] = []
    shown_console: int | None = None
    if console:
        shown_console = level if console_level is None else console_level
        term = logging.StreamHandler(stream if stream is not None else sys.stderr)
        term.setLevel(shown_console)
        sinks.append(term)
    log_file = resolve_log_file(settings.log_file)
    file_error = None
    if log_file is not None:
        try:
            log_file.parent.mkdir(parents=True, exist_ok=True)
            rotating = logging.handlers.RotatingFileHandler(
                log_file, maxBytes=MAX_BYTES, backupCount=BACKUP_COUNT, encoding="utf-8"
            )
        except OSError as exc:
            file_error = f"cannot write the log file {log_file}: {exc.strerror or exc}"
        else:
            rotating.setLevel(level)
            sinks.append(rotating)
    for sink in sinks:
        sink.setFormatter(formatter)
    lowest = min([s.level for s in sinks], default=level)
    _install(sinks, lowest)
    if file_error is not None:
        logging.getLogger(__name__).error("%s; logging to the console only", file_error)
    return LoggingSetup(
        level=level,
        console_level=shown_console,
        log_file=log_file if file_error is None else None,
        json=settings.log_json,
        file_error=file_error,
    )


def _install(sinks: list[logging.Handler], level: int) -> None:
    root = logging.getLogger()
    records: queue.SimpleQueue[logging.LogRecord] = queue.SimpleQueue()
    handler = _Handoff(records)
    listener = logging.handlers.QueueListener(records, *sinks, respect_handler_level=True)
    with _Installed.lock:
        _uninstall_locked()
        root.addHandler(handler)
        root.setLevel(level)
        listener.start()
        _Installed.handler, _Installed.listener, _Installed.sinks = handler, listener, sinks


def _uninstall_locked() -> None:
    if _Installed.handler is not None:
        logging.getLogger().removeHandler(_Installed.handler)
    if _Installed.listener is not None:
        _Installed.listener.stop()  # writes what is still queued, then joins the thread
    for sink in _Installed.sinks:
        sink.close()
    _Installed.handler, _Installed.listener, _Installed.sinks = None, None, []


def reset_logging() -> None:
    """Remove what :func:`configure_logging` installed, flushing queued records first."""
    with _Installed.lock:
        _uninstall_locked()


atexit.register(reset_logging)


def configure_cli_logging(flag_level: int | None) -> LoggingSetup:
    """The ``ccbt`` command's logging: ``observability.*`` from the config files and environment,
    with the terminal kept at WARNING (progress displays stay readable) unless ``-v``/``--debug``
    (``flag_level``) asks for more. ``--debug`` lowers the file's level too: it is the flag a
    bug report asks for. A broken config file falls back to defaults here; the subcommand
    reports the error itself (``ccbt config`` must still run to fix it).
    """
    from ccbt_engine.config import ConfigError, load_settings

    try:
        settings = load_settings().observability
    except ConfigError:
        settings = ObservabilitySettings()
    if flag_level is not None and flag_level <= logging.DEBUG:
        settings = settings.model_copy(update={"log_level": "DEBUG"})
    level = logging.getLevelName(settings.log_level)
    assert isinstance(level, int)
    console = flag_level if flag_level is not None else max(logging.WARNING, level)
    return configure_logging(settings, console_level=console)


def follow_settings(live: LiveSettings, **options: Any) -> Callable[[], None]:
    """Configure logging from ``live`` now and again whenever an ``observability`` key changes
    (the GUI's settings dialog); ``options`` go to :func:`configure_logging`. Returns the
    unsubscribe function."""

    def changed(_changes: Changes, settings: Settings) -> None:
        configure_logging(settings.observability, **options)

    configure_logging(live.current.observability, **options)
    return live.subscribe(changed, "observability")
