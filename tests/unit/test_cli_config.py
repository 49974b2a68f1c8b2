"""``ccbt config``: through click's test runner and through the real console script."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import tomllib
from collections.abc import Iterator
from pathlib import Path

import keyring
import pytest
from click.testing import CliRunner, Result
from keyring.backends import fail

from ccbt_engine.cli.config_cmd import format_value, parse_override_args
from ccbt_engine.cli.main import cli
from ccbt_engine.config import ConfigError, Settings, iter_fields
from tests.unit.test_config import MemoryKeyring


@pytest.fixture(autouse=True)
def isolated(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """Never read or write the real home config: point every location into tmp_path."""
    for name in list(os.environ):
        if name.upper().startswith("CCBT_"):
            monkeypatch.delenv(name)
    monkeypatch.setenv("CCBT_CONFIG_DIR", str(tmp_path / "user"))
    work = tmp_path / "work"
    work.mkdir()
    monkeypatch.chdir(work)
    return tmp_path


@pytest.fixture
def user(isolated: Path) -> Path:
    return isolated / "user" / "config.toml"


@pytest.fixture
def local(isolated: Path) -> Path:
    return isolated / "work" / "ccbt.toml"


@pytest.fixture
def memory_keyring() -> Iterator[MemoryKeyring]:
    previous = keyring.get_keyring()
    backend = MemoryKeyring()
    keyring.set_keyring(backend)
    yield backend
    keyring.set_keyring(previous)


def run(*args: str, env: dict[str, str] | None = None, input: str | None = None) -> Result:
    return CliRunner().invoke(cli, ["config", *args], env=env, input=input)


def assert_usage_error(result: Result, *fragments: str) -> None:
    assert result.exit_code == 2, result.output
    assert "Traceback" not in result.output and "Traceback" not in result.stderr
    assert result.stdout == ""
    assert result.stderr.startswith("Error: ")
    for fragment in fragments:
        assert fragment in result.stderr, result.stderr


# -- show / get -----------------------------------------------------------------------------------


def test_show_toml_is_the_effective_settings(user: Path) -> None:
    user.parent.mkdir()
    user.write_text("[network]\nlisten_port = 7000\n")
    result = run("show", env={"CCBT_UI_THEME": "dark"})
    assert result.exit_code == 0, result.output
    data = tomllib.loads(result.stdout)
    assert data["network"]["listen_port"] == 7000
    assert data["ui"]["theme"] == "dark"
    assert data["disk"]["state_dir"] == ""
    assert set(data) == {"network", "disk", "limits", "security", "observability", "ui", "remote"}


def test_show_json_round_trips_into_the_model() -> None:
    result = run("show", "--format", "json", "-O", "limits.global_up_kib=42")
    assert result.exit_code == 0, result.output
    data = json.loads(result.stdout)
    assert Settings.model_validate(data).limits.global_up_kib == 42


def test_show_table_names_sources(user: Path) -> None:
    user.parent.mkdir()
    user.write_text("[ui]\ntheme = 'light'\n")
    result = CliRunner().invoke(
        cli, ["config", "show", "--format", "table"], env={"COLUMNS": "250"}
    )
    assert result.exit_code == 0, result.output
    line = next(row for row in result.stdout.splitlines() if "ui.theme" in row)
    assert "light" in line and "user config file" in line
    port_row = next(row for row in result.stdout.splitlines() if "network.listen_port" in row)
    assert "default" in port_row


def test_get_prints_what_set_accepts(user: Path) -> None:
    assert run("get", "network.listen_port").stdout == "6881\n"
    assert run("get", "network.enable_dht").stdout == "true\n"
    assert run("get", "limits.alt_days", "-O", "limits.alt_days=sat,sun").stdout == (
        '["sat", "sun"]\n'
    )
    assert run("get", "disk.state_dir").stdout == "\n"
    for spec in iter_fields():  # every default survives get -> set unchanged
        text = format_value(spec.default)
        assert run("set", spec.key, text).exit_code == 0, spec.key
    assert tomllib.loads(user.read_text())["network"]["listen_port"] == 6881


def test_flags_beat_environment() -> None:
    result = run(
        "get", "network.listen_port", "-O", "network.listen_port=7001",
        env={"CCBT_NETWORK_LISTEN_PORT": "7000"},
    )  # fmt: skip
    assert result.stdout == "7001\n"


# -- set / reset ----------------------------------------------------------------------------------


def test_set_get_reset_round_trip(user: Path) -> None:
    user.parent.mkdir()
    user.write_text("# keep me\n[network]\nlisten_port = 6881  # router\n")
    result = run("set", "network.listen_port", "7000")
    assert result.exit_code == 0, result.output
    assert str(user) in result.stdout
    assert user.read_text() == "# keep me\n[network]\nlisten_port = 7000  # router\n"
    assert run("get", "network.listen_port").stdout == "7000\n"
    result = run("reset", "network.listen_port")
    assert result.exit_code == 0, result.output
    assert "effective value: 6881" in result.stdout
    assert "# keep me" in user.read_text()


def test_set_local_writes_project_file_that_beats_user_file(user: Path, local: Path) -> None:
    assert run("set", "ui.theme", "dark").exit_code == 0
    assert run("set", "ui.theme", "light", "--local").exit_code == 0
    assert tomllib.loads(local.read_text()) == {"ui": {"theme": "light"}}
    assert run("get", "ui.theme").stdout == "light\n"
    result = run("set", "ui.theme", "system")
    assert "local config file" in result.stderr and "--local" in result.stderr
    assert run("reset", "ui.theme", "--local").exit_code == 0
    assert run("get", "ui.theme").stdout == "system\n"


def test_set_warns_when_environment_still_wins() -> None:
    result = run("set", "network.listen_port", "7000", env={"CCBT_NETWORK_LISTEN_PORT": "7100"})
    assert result.exit_code == 0
    assert "CCBT_NETWORK_LISTEN_PORT" in result.stderr and "7100" in result.stderr


def test_set_warns_when_no_peer_transport_is_left(user: Path) -> None:
    assert run("set", "network.enable_utp", "false").stderr == ""
    result = run("set", "network.enable_tcp", "false")
    assert result.exit_code == 0  # each key is valid alone: written, with a warning
    assert "warning: no peer transport is enabled" in result.stderr
    assert run("get", "network.enable_tcp").stdout == "false\n"


# -- errors: exit 2, one clear line, no traceback -------------------------------------------------


def test_set_bad_value(user: Path) -> None:
    result = run("set", "network.listen_port", "99999")
    assert_usage_error(result, "network.listen_port", "99999", "1 to 65535")
    assert not user.exists()


def test_set_bad_enum() -> None:
    result = run("set", "disk.preallocate", "maybe")
    assert_usage_error(result, "disk.preallocate", "maybe", "'none', 'sparse', 'full'")


def test_unknown_key_suggests() -> None:
    assert_usage_error(run("get", "network.listen_prot"), "did you mean 'network.listen_port'")
    assert_usage_error(run("set", "nope", "1"), "unknown setting 'nope'")


def test_bad_environment_value_on_show() -> None:
    result = run("show", env={"CCBT_OBSERVABILITY_LOG_LEVEL": "LOUD"})
    assert_usage_error(result, "observability.log_level", "LOUD", "CCBT_OBSERVABILITY_LOG_LEVEL")


def test_bad_file_on_get(user: Path) -> None:
    user.parent.mkdir()
    user.write_text("[network\n")
    assert_usage_error(run("get", "ui.theme"), "not valid TOML", str(user))


def test_bad_override_flag() -> None:
    assert_usage_error(run("show", "-O", "network.listen_port"), "section.key=value")
    assert_usage_error(run("show", "-O", "ui.theme=pink"), "command-line flag", "pink")


def test_set_without_value() -> None:
    assert_usage_error(run("set", "ui.theme"), "missing VALUE")


def test_parse_override_args() -> None:
    assert parse_override_args(["a.b=1=2", " ui.theme =dark"]) == {"a.b": "1=2", "ui.theme": "dark"}
    with pytest.raises(ConfigError):
        parse_override_args(["=1"])


# -- secrets --------------------------------------------------------------------------------------


def test_secret_set_get_reset_use_the_keyring(memory_keyring: MemoryKeyring, user: Path) -> None:
    assert run("get", "remote.password").stdout == "<not set>\n"
    result = run("set", "remote.password", input="s3cret\ns3cret\n")
    assert result.exit_code == 0, result.output
    assert "s3cret" not in result.stdout
    assert memory_keyring.store == {("ccbt", "remote.password"): "s3cret"}
    assert run("get", "remote.password").stdout == "<set>\n"
    assert run("get", "remote.password", "--reveal").stdout == "s3cret\n"
    assert run("reset", "remote.password").exit_code == 0
    assert memory_keyring.store == {}
    assert not user.exists()
    assert_usage_error(run("set", "remote.password", "x", "--local"), "--local")


def test_secret_without_keyring_fails_and_writes_nothing(user: Path, local: Path) -> None:
    previous = keyring.get_keyring()
    keyring.set_keyring(fail.Keyring())  # type: ignore[no-untyped-call]
    try:
        result = run("set", "remote.password", "hunter2")
    finally:
        keyring.set_keyring(previous)
    assert_usage_error(result, "no OS keyring", "remote.password")
    assert not user.exists() and not local.exists()


# -- the real console script ----------------------------------------------------------------------


def test_real_ccbt_script_in_a_subprocess(tmp_path: Path) -> None:
    script = Path(sys.executable).parent / "ccbt"
    assert script.exists(), f"console script missing: {script} (pip install -e .)"
    config_dir = tmp_path / "cfg"
    env = {k: v for k, v in os.environ.items() if not k.upper().startswith("CCBT_")}
    env |= {
        "CCBT_CONFIG_DIR": str(config_dir),
        "PYTHON_KEYRING_BACKEND": "keyring.backends.fail.Keyring",
    }

    def ccbt(*args: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            [str(script), "config", *args],
            cwd=tmp_path,
            env=env,
            capture_output=True,
            text=True,
            timeout=60,
        )

    done = ccbt("set", "limits.global_up_kib", "250")
    assert done.returncode == 0, done.stderr
    assert tomllib.loads((config_dir / "config.toml").read_text()) == {
        "limits": {"global_up_kib": 250}
    }
    assert ccbt("get", "limits.global_up_kib").stdout == "250\n"

    bad = ccbt("set", "network.listen_port", "0")
    assert bad.returncode == 2
    assert "network.listen_port" in bad.stderr and "1 to 65535" in bad.stderr
    assert "Traceback" not in bad.stderr

    secret = ccbt("set", "remote.password", "hunter2")
    assert secret.returncode == 2 and "no OS keyring" in secret.stderr
    assert "hunter2" not in (config_dir / "config.toml").read_text()
