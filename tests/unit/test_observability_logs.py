"""``observability.log_*``: levels, JSON lines, the rotating file, live reconfiguration."""

from __future__ import annotations

import io
import json
import logging
import logging.handlers
from collections.abc import Iterator
from pathlib import Path

import pytest

from ccbt_engine.config import LiveSettings, Settings
from ccbt_engine.config.model import ObservabilitySettings
from ccbt_engine.observability import logs
from ccbt_engine.observability.logs import (
    JsonFormatter,
    configure_cli_logging,
    configure_logging,
    follow_settings,
    reset_logging,
    resolve_log_file,
)


@pytest.fixture(autouse=True)
def clean_root() -> Iterator[None]:
    root = logging.getLogger()
    level = root.level
    yield
    reset_logging()
    root.setLevel(level)


def obs(**values: object) -> ObservabilitySettings:
    return ObservabilitySettings.model_validate(values)


def ours() -> list[logging.Handler]:
    return [h for h in logging.getLogger().handlers if isinstance(h, logging.handlers.QueueHandler)]


def emit(name: str, level: int, message: str, **extra: object) -> None:
    logging.getLogger(name).log(level, message, extra=extra or None)


def flush() -> None:
    """Records are written by the listener thread; re-configuring drains it."""
    reset_logging()


def test_console_level_and_text_format() -> None:
    stream = io.StringIO()
    configure_logging(obs(log_level="WARNING"), stream=stream)
    emit("ccbt.test", logging.INFO, "quiet")
    emit("ccbt.test", logging.WARNING, "loud")
    flush()
    lines = stream.getvalue().splitlines()
    assert len(lines) == 1
    assert lines[0].endswith("WARNING ccbt.test: loud")


def test_json_lines_carry_fields_extra_and_traceback(tmp_path: Path) -> None:
    stream = io.StringIO()
    configure_logging(obs(log_level="DEBUG", log_json=True), stream=stream)
    emit("ccbt.a", logging.DEBUG, "hello", torrent="abcd", port=6881)
    try:
        raise ValueError("boom")
    except ValueError:
        logging.getLogger("ccbt.b").exception("failed")
    flush()
    first, second = (json.loads(line) for line in stream.getvalue().splitlines())
    assert first["level"] == "DEBUG" and first["logger"] == "ccbt.a"
    assert first["message"] == "hello" and first["torrent"] == "abcd" and first["port"] == 6881
    assert first["ts"].endswith("Z") and "T" in first["ts"]
    assert second["message"] == "failed" and "ValueError: boom" in second["exc"]


def test_json_formatter_serialises_odd_extra_values() -> None:
    record = logging.LogRecord("x", logging.INFO, __file__, 1, "m", None, None)
    record.path = Path("/tmp/x")
    assert json.loads(JsonFormatter().format(record))["path"] == "/tmp/x"


def test_file_gets_log_level_while_console_is_quieter(tmp_path: Path) -> None:
    stream = io.StringIO()
    target = tmp_path / "sub" / "ccbt.log"
    setup = configure_logging(
        obs(log_level="DEBUG", log_file=str(target)), console_level=logging.ERROR, stream=stream
    )
    assert setup.log_file == target and setup.console_level == logging.ERROR
    emit("ccbt.t", logging.DEBUG, "detail")
    emit("ccbt.t", logging.ERROR, "bad")
    flush()
    assert "detail" in target.read_text() and "bad" in target.read_text()
    assert "detail" not in stream.getvalue() and "bad" in stream.getvalue()


def test_relative_log_file_goes_to_the_platform_log_folder(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(logs, "default_log_dir", lambda: tmp_path / "logdir")
    assert resolve_log_file(Path("ccbt.log")) == tmp_path / "logdir" / "ccbt.log"
    assert resolve_log_file(None) is None
    assert resolve_log_file(tmp_path / "abs.log") == tmp_path / "abs.log"
    configure_logging(obs(log_file="ccbt.log"), console=False)
    emit("ccbt.t", logging.WARNING, "in the log folder")
    flush()
    assert "in the log folder" in (tmp_path / "logdir" / "ccbt.log").read_text()


def test_file_rotates(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(logs, "MAX_BYTES", 2000)
    target = tmp_path / "r.log"
    configure_logging(obs(log_file=str(target)), console=False)
    for i in range(200):
        emit("ccbt.t", logging.WARNING, f"line {i:04d} " + "x" * 50)
    flush()
    assert (tmp_path / "r.log.1").exists()
    assert target.stat().st_size <= 2000
    assert len(list(tmp_path.glob("r.log.*"))) <= logs.BACKUP_COUNT


def test_unwritable_file_falls_back_to_console(tmp_path: Path) -> None:
    blocker = tmp_path / "file"
    blocker.write_text("")
    stream = io.StringIO()
    setup = configure_logging(obs(log_file=str(blocker / "x.log")), stream=stream)
    assert setup.log_file is None and setup.file_error is not None
    flush()
    assert "logging to the console only" in stream.getvalue()


def test_reconfiguring_replaces_only_our_handler() -> None:
    foreign = logging.NullHandler()
    logging.getLogger().addHandler(foreign)
    try:
        configure_logging(obs(), console=False)
        configure_logging(obs(log_level="ERROR"), console=False)
        assert len(ours()) == 1
        assert foreign in logging.getLogger().handlers
        assert logging.getLogger().level == logging.ERROR
        reset_logging()
        assert ours() == []
    finally:
        logging.getLogger().removeHandler(foreign)


def test_follow_settings_applies_live_changes(tmp_path: Path) -> None:
    stream = io.StringIO()
    live = LiveSettings(Settings())
    follow_settings(live, stream=stream)
    emit("ccbt.t", logging.DEBUG, "hidden")
    live.apply(Settings.model_validate({"observability": {"log_level": "DEBUG", "log_json": True}}))
    emit("ccbt.t", logging.DEBUG, "shown")
    flush()
    lines = stream.getvalue().splitlines()
    assert len(lines) == 1 and json.loads(lines[0])["message"] == "shown"


def test_cli_keeps_terminal_at_warning_unless_flags(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    (tmp_path / "config.toml").write_text(
        f'[observability]\nlog_level = "INFO"\nlog_file = "{tmp_path / "cli.log"}"\n'
    )
    monkeypatch.setenv("CCBT_CONFIG_DIR", str(tmp_path))
    monkeypatch.setenv("CCBT_LOCAL_CONFIG", str(tmp_path / "none.toml"))
    setup = configure_cli_logging(None)
    assert (setup.level, setup.console_level) == (logging.INFO, logging.WARNING)
    assert setup.log_file == tmp_path / "cli.log"
    setup = configure_cli_logging(logging.DEBUG)  # --debug: everything, file included
    assert (setup.level, setup.console_level) == (logging.DEBUG, logging.DEBUG)
    monkeypatch.setenv("CCBT_OBSERVABILITY_LOG_LEVEL", "LOUD")  # broken: defaults, no crash
    assert configure_cli_logging(logging.INFO).level == logging.INFO
