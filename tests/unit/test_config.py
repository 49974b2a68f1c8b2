"""Settings model, layered loading, file editing, secrets and live updates."""

from __future__ import annotations

import contextlib
import importlib.util
import os
import tomllib
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import keyring
import keyring.backend
import platformdirs
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from keyring.backends import fail

from ccbt_engine.cli.config_cmd import format_value
from ccbt_engine.config import (
    SECRET_KEYS,
    ConfigError,
    LiveSettings,
    Settings,
    delete_secret,
    get_secret,
    get_value,
    iter_fields,
    load_settings,
    load_settings_with_sources,
    local_config_path,
    parse_value,
    reset_value_in_file,
    set_secret,
    set_value_in_file,
    update_settings,
    user_config_path,
)

DOCS = Path(__file__).resolve().parents[2] / "docs" / "configuration.md"
_GEN = Path(__file__).resolve().parents[2] / "scripts" / "gen_config_docs.py"
_spec = importlib.util.spec_from_file_location("gen_config_docs", _GEN)
assert _spec is not None and _spec.loader is not None
gen_config_docs = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(gen_config_docs)


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


def write(path: Path, text: str) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text, encoding="utf-8")
    return path


def load(user: Path, local: Path, env: dict[str, str] | None = None, **kw: Any) -> Settings:
    return load_settings(user_path=user, local_path=local, env=env or {}, **kw)


# -- model and defaults ---------------------------------------------------------------------------


def test_defaults_match_the_documented_values() -> None:
    s = Settings()
    assert (s.network.listen_port, s.network.max_global_peers) == (6881, 200)
    assert (s.network.max_peers_per_torrent, s.network.max_half_open) == (50, 50)
    assert s.network.enable_dht and s.network.enable_lsd
    assert s.network.enable_utp  # uTP first, TCP as the fallback
    assert s.network.enable_pex and s.network.enable_ipv6
    assert s.disk.download_path == Path(platformdirs.user_downloads_dir())
    assert (s.disk.preallocate, s.disk.write_cache_mb) == ("sparse", 64)
    assert (s.disk.max_open_files, s.disk.hash_threads, s.disk.checkpoint_interval) == (256, 2, 30)
    assert (s.limits.global_down_kib, s.limits.global_up_kib) == (0, 0)
    assert s.security.encryption == "enabled"
    assert s.observability.log_level == "INFO"
    assert (s.observability.enable_metrics, s.observability.metrics_port) == (False, 9090)
    assert (s.ui.theme, s.ui.close_to_tray, s.ui.start_minimized) == ("system", True, False)
    assert (s.ui.confirm_on_remove, s.ui.snapshot_interval_ms) == (True, 1000)
    assert (s.remote.enabled, s.remote.host, s.remote.port) == (False, "127.0.0.1", 8080)


def test_settings_are_immutable() -> None:
    s = Settings()
    with pytest.raises(ValueError):
        s.network.listen_port = 1


def test_no_password_field_anywhere() -> None:
    keys = {spec.key for spec in iter_fields()}
    assert not keys & SECRET_KEYS
    assert not any("password" in key for key in keys)


def test_paths_are_under_the_test_dirs(isolated: Path) -> None:
    assert user_config_path() == isolated / "user" / "config.toml"
    assert local_config_path() == isolated / "work" / "ccbt.toml"


def test_local_path_env_override(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("CCBT_LOCAL_CONFIG", str(tmp_path / "x.toml"))
    assert local_config_path() == tmp_path / "x.toml"


def test_no_files_no_env_gives_defaults(user: Path, local: Path) -> None:
    assert load(user, local) == Settings()


# -- precedence -----------------------------------------------------------------------------------


@pytest.mark.parametrize("layers", [0, 1, 2, 3, 4])
def test_each_layer_beats_the_previous(user: Path, local: Path, layers: int) -> None:
    if layers >= 1:
        write(user, "[network]\nlisten_port = 1001\n")
    if layers >= 2:
        write(local, "[network]\nlisten_port = 1002\n")
    env = {"CCBT_NETWORK_LISTEN_PORT": "1003"} if layers >= 3 else {}
    overrides = {"network.listen_port": "1004"} if layers >= 4 else None
    settings = load(user, local, env, overrides=overrides)
    assert settings.network.listen_port == [6881, 1001, 1002, 1003, 1004][layers]


def test_layers_only_replace_the_keys_they_set(user: Path, local: Path) -> None:
    write(user, "[network]\nlisten_port = 1001\nmax_half_open = 7\n[ui]\ntheme = 'dark'\n")
    write(local, "[network]\nlisten_port = 1002\n")
    s, sources = load_settings_with_sources(
        user_path=user,
        local_path=local,
        env={"CCBT_UI_THEME": "light"},
        overrides={"disk.hash_threads": 4},
    )
    assert (s.network.listen_port, s.network.max_half_open) == (1002, 7)
    assert (s.ui.theme, s.disk.hash_threads) == ("light", 4)
    assert sources["network.listen_port"] == f"local config file {local}"
    assert sources["network.max_half_open"] == f"user config file {user}"
    assert sources["ui.theme"] == "environment variable CCBT_UI_THEME"
    assert sources["disk.hash_threads"] == "command-line flag disk.hash_threads"
    assert "disk.preallocate" not in sources


def test_bad_value_in_a_lower_layer_is_overridden(user: Path, local: Path) -> None:
    write(user, "[network]\nlisten_port = 0\n")
    assert load(user, local, {"CCBT_NETWORK_LISTEN_PORT": "7000"}).network.listen_port == 7000


def test_default_paths_come_from_the_environment(user: Path, local: Path) -> None:
    write(user, "[ui]\ntheme = 'dark'\n")
    write(local, "[ui]\nstart_minimized = true\n")
    s = load_settings()
    assert (s.ui.theme, s.ui.start_minimized) == ("dark", True)


# -- environment parsing --------------------------------------------------------------------------


def test_env_values_are_parsed_into_types(user: Path, local: Path) -> None:
    env = {
        "CCBT_NETWORK_LISTEN_PORT": "7000",
        "ccbt_network_enable_dht": "no",  # names are case-insensitive, as on Windows
        "CCBT_NETWORK_CONNECT_TIMEOUT": "2.5",
        "CCBT_LIMITS_ALT_DAYS": "sat, sun",
        "CCBT_NETWORK_LISTEN_INTERFACES": '["127.0.0.1", "::1"]',
        "CCBT_DISK_DOWNLOAD_PATH": "~/dl",
        "CCBT_SECURITY_IP_FILTER_PATH": "",
        "CCBT_CONFIG_DIR": "/ignored/not/a/section",
        "CCBT_SOMETHING_ELSE": "ignored",
        "CCBT_REMOTE_PASSWORD": "not a setting",
        "PATH": "/bin",
    }
    s = load(user, local, env)
    assert s.network.listen_port == 7000
    assert s.network.enable_dht is False
    assert s.network.connect_timeout == 2.5
    assert s.limits.alt_days == ("sat", "sun")
    assert s.network.listen_interfaces == ("127.0.0.1", "::1")
    assert s.disk.download_path == Path("~/dl").expanduser()
    assert s.security.ip_filter_path is None


@pytest.mark.parametrize("text", ["1", "true", "True", "yes", "on"])
def test_env_true_spellings(user: Path, local: Path, text: str) -> None:
    assert load(user, local, {"CCBT_UI_START_MINIMIZED": text}).ui.start_minimized is True


def test_env_unknown_key_in_known_section_names_variable_and_suggests(
    user: Path, local: Path
) -> None:
    with pytest.raises(ConfigError) as info:
        load(user, local, {"CCBT_NETWORK_LISTEN_PROT": "1"})
    message = str(info.value)
    assert "network.listen_prot" in message
    assert "CCBT_NETWORK_LISTEN_PROT" in message
    assert "network.listen_port" in message


def test_env_bad_json_list(user: Path, local: Path) -> None:
    with pytest.raises(ConfigError, match=r"network\.listen_interfaces.*JSON"):
        load(user, local, {"CCBT_NETWORK_LISTEN_INTERFACES": "[1, "})


# -- invalid values: one clear message naming key, value and what is allowed -----------------------

BAD_VALUES = [
    ("network.listen_port", "70000", "70000", "from 1 to 65535"),
    ("network.listen_port", "-1", "-1", "from 1 to 65535"),
    ("disk.preallocate", "maybe", "maybe", "'none', 'sparse', 'full'"),
    ("security.encryption", "always", "always", "'disabled', 'enabled', 'forced'"),
    ("observability.log_level", "LOUD", "LOUD", "'DEBUG', 'INFO', 'WARNING', 'ERROR'"),
    ("limits.global_down_kib", "-5", "-5", ">= 0"),
    ("limits.alt_schedule_from", "25:00", "25:00", "HH:MM"),
    ("ui.theme", "pink", "pink", "'light', 'dark', 'system'"),
    ("ui.close_to_tray", "perhaps", "perhaps", "true or false"),
    ("network.connect_timeout", "0", "0", "> 0"),
    ("limits.alt_days", "mon,funday", "funday", "'mon'"),
    ("network.listen_interfaces", "1.2.3.4,nohost", "nohost", "IP addresses"),
    ("disk.download_path", " ", '" "', "a folder path"),
]


def _check_message(exc: ConfigError, key: str, value: str, allowed: str) -> None:
    message = str(exc)
    assert key in message and value in message and allowed in message, message
    assert "pydantic" not in message and "Traceback" not in message
    assert exc.key == key


@pytest.mark.parametrize(("key", "text", "shown", "allowed"), BAD_VALUES)
def test_bad_value_from_env(
    user: Path, local: Path, key: str, text: str, shown: str, allowed: str
) -> None:
    var = "CCBT_" + key.replace(".", "_").upper()
    with pytest.raises(ConfigError) as info:
        load(user, local, {var: text})
    _check_message(info.value, key, shown, allowed)
    assert var in str(info.value)


@pytest.mark.parametrize(("key", "text", "shown", "allowed"), BAD_VALUES)
def test_bad_value_from_overrides(
    user: Path, local: Path, key: str, text: str, shown: str, allowed: str
) -> None:
    with pytest.raises(ConfigError) as info:
        load(user, local, overrides={key: text})
    _check_message(info.value, key, shown, allowed)
    assert "command-line flag" in str(info.value)


@pytest.mark.parametrize(("key", "text", "shown", "allowed"), BAD_VALUES)
def test_bad_value_from_set(user: Path, key: str, text: str, shown: str, allowed: str) -> None:
    with pytest.raises(ConfigError) as info:
        set_value_in_file(user, key, text)
    _check_message(info.value, key, shown, allowed)
    assert not user.exists()


@pytest.mark.parametrize(
    ("toml_line", "key", "shown", "allowed"),
    [
        ("[network]\nlisten_port = 70000", "network.listen_port", "70000", "1 to 65535"),
        ("[network]\nlisten_port = true", "network.listen_port", "true", "1 to 65535"),
        ("[network]\nlisten_port = 7000.5", "network.listen_port", "7000.5", "integer"),
        ("[disk]\npreallocate = 'maybe'", "disk.preallocate", "maybe", "'sparse'"),
        ("[ui]\nclose_to_tray = 2", "ui.close_to_tray", "2", "true or false"),
        ("[remote]\nusername = 5", "remote.username", "5", "text"),
    ],
)
def test_bad_value_from_file(
    user: Path, local: Path, toml_line: str, key: str, shown: str, allowed: str
) -> None:
    write(user, toml_line + "\n")
    with pytest.raises(ConfigError) as info:
        load(user, local)
    _check_message(info.value, key, shown, allowed)
    assert str(user) in str(info.value)


def test_several_bad_values_are_one_message(user: Path, local: Path) -> None:
    write(local, "[network]\nlisten_port = 0\n[ui]\ntheme = 'pink'\n")
    with pytest.raises(ConfigError) as info:
        load(user, local)
    message = str(info.value)
    assert "network.listen_port" in message and "ui.theme" in message
    assert message.count("\n") == 2


@pytest.mark.parametrize(
    ("text", "fragment"),
    [
        ("[netwrk]\nlisten_port = 1\n", "unknown section [netwrk]"),
        ("network = 5\n", "must be a table"),
        ("listen_port = 5\n", "unknown section [listen_port]"),
        ("[network]\nlisten_prot = 1\n", "did you mean 'network.listen_port'"),
        ("[network\n", "not valid TOML"),
        ("[remote]\npassword = 'x'\n", "OS keyring"),
    ],
)
def test_malformed_files(user: Path, local: Path, text: str, fragment: str) -> None:
    write(user, text)
    with pytest.raises(ConfigError, match=None) as info:
        load(user, local)
    assert fragment in str(info.value)
    assert str(user) in str(info.value)


def test_unreadable_bytes_are_a_config_error(user: Path, local: Path) -> None:
    user.parent.mkdir(parents=True)
    user.write_bytes(b"\xff\xfe[network]\n")
    with pytest.raises(ConfigError, match="cannot read"):
        load(user, local)


def test_overrides_reject_unknown_keys_and_secrets(user: Path, local: Path) -> None:
    with pytest.raises(ConfigError, match=r"unknown setting 'network\.port'"):
        load(user, local, overrides={"network.port": 1})
    with pytest.raises(ConfigError, match="OS keyring"):
        load(user, local, overrides={"remote.password": "x"})


def test_home_of_an_unknown_user_is_a_config_error(user: Path, local: Path) -> None:
    # "~0" is the home of a user named "0": none here, so Path.expanduser raises RuntimeError,
    # which must reach the user as this key's bad value (hypothesis found it in the loader)
    user.parent.mkdir(parents=True, exist_ok=True)
    user.write_text('[disk]\ndownload_path = "~0"\nstate_dir = "~ccbt-no-such-user/x"\n')
    with pytest.raises(ConfigError, match=r"disk\.download_path.*no home folder for '~0'"):
        load(user, local)


@pytest.mark.parametrize("name", ["CCBT_CONFIG_DIR", "CCBT_LOCAL_CONFIG"])
def test_env_folder_of_an_unknown_user_is_a_config_error(name: str) -> None:
    # was a RuntimeError traceback out of every ccbt command and the GUI's start-up
    env = {name: "~ccbt-no-such-user/x"}
    with pytest.raises(ConfigError, match=rf"{name}=.*no home folder") as info:
        user_config_path(env) if name == "CCBT_CONFIG_DIR" else local_config_path(env)
    assert info.value.key == name and info.value.source == "environment"
    home = Path("~").expanduser()
    assert user_config_path({"CCBT_CONFIG_DIR": "~/c"}) == home / "c" / "config.toml"
    assert local_config_path({"CCBT_LOCAL_CONFIG": "~/l.toml"}) == home / "l.toml"


@settings(
    max_examples=150, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(
    key=st.sampled_from([spec.key for spec in iter_fields()]),
    text=st.text(max_size=30),
)
def test_any_env_text_gives_settings_or_config_error(
    user: Path, local: Path, key: str, text: str
) -> None:
    var = "CCBT_" + key.replace(".", "_").upper()
    try:
        load(user, local, {var: text.replace("\x00", "")})
    except ConfigError as exc:
        assert key in str(exc)


@settings(
    max_examples=150, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(text=st.text(max_size=200))
def test_any_file_text_gives_settings_or_config_error(user: Path, local: Path, text: str) -> None:
    write(user, text)
    with contextlib.suppress(ConfigError):
        load(user, local)


# -- editing files: values typed, comments kept ---------------------------------------------------

COMMENTED = """\
# My ccbt settings -- hand written, please keep this comment
[network]  # peers
# the port my router forwards
listen_port = 6881  # do not change without the router
enable_dht = true

# quiet at night
[limits]
global_up_kib = 100
"""


def test_set_keeps_comments_and_changes_only_that_line(user: Path) -> None:
    write(user, COMMENTED)
    set_value_in_file(user, "network.listen_port", "7000")
    after = user.read_text()
    assert after == COMMENTED.replace("listen_port = 6881", "listen_port = 7000")


def test_set_new_key_and_section_keeps_comments(user: Path) -> None:
    write(user, COMMENTED)
    set_value_in_file(user, "network.enable_utp", "false")
    set_value_in_file(user, "ui.theme", "dark")
    after = user.read_text()
    for line in COMMENTED.splitlines():
        assert line in after
    data = tomllib.loads(after)
    assert data["network"]["enable_utp"] is False
    assert data["ui"] == {"theme": "dark"}


def test_set_creates_file_and_folders(tmp_path: Path) -> None:
    path = tmp_path / "a" / "b" / "config.toml"
    set_value_in_file(path, "disk.hash_threads", "4")
    assert tomllib.loads(path.read_text()) == {"disk": {"hash_threads": 4}}


@pytest.mark.parametrize(
    ("key", "text", "stored"),
    [
        ("network.enable_dht", "off", False),
        ("network.connect_timeout", "3", 3.0),
        ("limits.alt_days", "mon,tue", ["mon", "tue"]),
        ("network.listen_interfaces", '["::1"]', ["::1"]),
        ("disk.download_path", "~/dl", "~/dl"),  # paths keep what the user typed
        ("disk.state_dir", "", ""),
        ("limits.share_ratio_limit", "1.5", 1.5),
        ("remote.username", "alice", "alice"),
    ],
)
def test_set_stores_typed_values(user: Path, local: Path, key: str, text: str, stored: Any) -> None:
    set_value_in_file(user, key, text)
    section, name = key.split(".")
    assert tomllib.loads(user.read_text())[section][name] == stored
    assert get_value(load(user, local), key) == parse_value(key, text)


def test_failed_set_leaves_file_byte_identical(user: Path) -> None:
    write(user, COMMENTED)
    before = user.read_bytes()
    with pytest.raises(ConfigError):
        set_value_in_file(user, "network.listen_port", "abc")
    assert user.read_bytes() == before
    assert sorted(p.name for p in user.parent.iterdir()) == ["config.toml"]  # no temp files left


def test_set_refuses_when_the_rest_of_the_file_is_invalid(user: Path) -> None:
    write(user, "[ui]\ntheme = 'pink'\n")
    with pytest.raises(ConfigError, match=r"ui\.theme"):
        set_value_in_file(user, "network.listen_port", "7000")
    set_value_in_file(user, "ui.theme", "dark")  # fixing the broken key itself works


def test_set_refuses_secrets_and_unknown_keys(user: Path) -> None:
    with pytest.raises(ConfigError, match="never written to a config file"):
        set_value_in_file(user, "remote.password", "hunter2")
    with pytest.raises(ConfigError, match=r"did you mean 'ui\.theme'"):
        set_value_in_file(user, "ui.thme", "dark")
    assert not user.exists()


def test_set_keeps_file_permissions(user: Path) -> None:
    write(user, "[ui]\ntheme = 'dark'\n")
    user.chmod(0o640)
    set_value_in_file(user, "ui.theme", "light")
    assert user.stat().st_mode & 0o777 == 0o640


def test_reset_removes_key_keeps_comments(user: Path, local: Path) -> None:
    write(user, COMMENTED)
    reset_value_in_file(user, "network.listen_port")
    after = user.read_text()
    assert "listen_port" not in after
    assert "# the port my router forwards" in after and "# My ccbt settings" in after
    assert "enable_dht = true" in after
    assert load(user, local).network.listen_port == 6881


def test_set_then_reset_restores_the_file(user: Path) -> None:
    write(user, COMMENTED)
    set_value_in_file(user, "ui.theme", "dark")
    reset_value_in_file(user, "ui.theme")
    assert user.read_text() == COMMENTED


def test_reset_missing_file_or_key_is_a_no_op(user: Path) -> None:
    reset_value_in_file(user, "ui.theme")
    assert not user.exists()
    write(user, COMMENTED)
    reset_value_in_file(user, "ui.theme")
    assert user.read_text() == COMMENTED
    with pytest.raises(ConfigError, match="unknown setting"):
        reset_value_in_file(user, "ui.nope")


# -- API helpers ----------------------------------------------------------------------------------


def test_get_value() -> None:
    s = Settings()
    assert get_value(s, "network.listen_port") == 6881
    with pytest.raises(ConfigError, match=r"did you mean 'network\.listen_port'"):
        get_value(s, "network.listenport")
    with pytest.raises(ConfigError, match="get_secret"):
        get_value(s, "remote.password")


def test_diff_lists_changed_keys_with_old_and_new(user: Path, local: Path) -> None:
    old = Settings()
    assert old.diff(Settings()) == {}
    new = load(user, local, overrides={"limits.global_up_kib": 50, "ui.theme": "dark"})
    assert old.diff(new) == {"limits.global_up_kib": (0, 50), "ui.theme": ("system", "dark")}
    assert new.diff(old) == {"limits.global_up_kib": (50, 0), "ui.theme": ("dark", "system")}


def test_update_settings_validates() -> None:
    s = update_settings(Settings(), {"network.listen_port": "7000"})
    assert s.network.listen_port == 7000
    with pytest.raises(ConfigError, match=r"network\.listen_port"):
        update_settings(s, {"network.listen_port": 0})


def test_live_settings_notify_subscribers_of_their_part() -> None:
    live = LiveSettings(Settings())
    calls: dict[str, list[dict[str, Any]]] = {"all": [], "limits": [], "port": [], "bad": []}

    def recorder(name: str) -> Any:
        return lambda changes, _s: calls[name].append(dict(changes))

    def broken(_changes: Any, _s: Settings) -> None:
        calls["bad"].append({})
        raise RuntimeError("observer bug")

    live.subscribe(broken)
    live.subscribe(recorder("all"))
    unsubscribe = live.subscribe(recorder("limits"), "limits")
    live.subscribe(recorder("port"), "network.listen_port")
    new = update_settings(live.current, {"limits.global_up_kib": 10, "ui.theme": "dark"})
    assert live.apply(new) == {"limits.global_up_kib": (0, 10), "ui.theme": ("system", "dark")}
    assert live.current is new
    assert calls["all"] == [{"limits.global_up_kib": (0, 10), "ui.theme": ("system", "dark")}]
    assert calls["limits"] == [{"limits.global_up_kib": (0, 10)}]
    assert calls["port"] == [] and len(calls["bad"]) == 1
    unsubscribe()
    live.apply(update_settings(new, {"limits.global_up_kib": 20, "network.listen_port": 7000}))
    assert len(calls["limits"]) == 1
    assert calls["port"] == [{"network.listen_port": (6881, 7000)}]
    assert live.apply(live.current) == {}
    with pytest.raises(ConfigError, match="unknown setting"):
        live.subscribe(recorder("all"), "network.nope")


# -- secrets --------------------------------------------------------------------------------------


class MemoryKeyring(keyring.backend.KeyringBackend):
    """A keyring backend in a dict, so secret tests never touch the real OS keyring."""

    priority = 1

    def __init__(self) -> None:
        super().__init__()  # type: ignore[no-untyped-call]
        self.store: dict[tuple[str, str], str] = {}

    def get_password(self, service: str, username: str) -> str | None:
        return self.store.get((service, username))

    def set_password(self, service: str, username: str, password: str) -> None:
        self.store[(service, username)] = password

    def delete_password(self, service: str, username: str) -> None:
        if self.store.pop((service, username), None) is None:
            raise keyring.errors.PasswordDeleteError(username)


@pytest.fixture
def memory_keyring() -> Iterator[MemoryKeyring]:
    previous = keyring.get_keyring()
    backend = MemoryKeyring()
    keyring.set_keyring(backend)
    yield backend
    keyring.set_keyring(previous)


@pytest.fixture
def no_keyring() -> Iterator[None]:
    previous = keyring.get_keyring()
    keyring.set_keyring(fail.Keyring())  # type: ignore[no-untyped-call]
    yield
    keyring.set_keyring(previous)


def test_secrets_round_trip_through_the_keyring(memory_keyring: MemoryKeyring, user: Path) -> None:
    assert get_secret("remote.password", env={}) is None
    set_secret("remote.password", "hunter2")
    assert memory_keyring.store == {("ccbt", "remote.password"): "hunter2"}
    assert get_secret("remote.password", env={}) == "hunter2"
    assert get_secret("remote.password", env={"CCBT_REMOTE_PASSWORD": "from-env"}) == "from-env"
    assert delete_secret("remote.password") is True
    assert delete_secret("remote.password") is False
    assert get_secret("remote.password", env={}) is None
    assert not user.exists()


def test_without_keyring_backend_secrets_fail_clearly(no_keyring: None, user: Path) -> None:
    with pytest.raises(ConfigError) as info:
        set_secret("remote.password", "hunter2")
    assert "no OS keyring" in str(info.value) and "never written" in str(info.value)
    with pytest.raises(ConfigError, match="no OS keyring"):
        get_secret("remote.password", env={})
    assert get_secret("remote.password", env={"CCBT_REMOTE_PASSWORD": "pw"}) == "pw"
    assert not user.exists()


def test_secret_helpers_reject_other_keys(memory_keyring: MemoryKeyring) -> None:
    with pytest.raises(ConfigError, match="not a secret"):
        set_secret("remote.username", "x")
    with pytest.raises(ConfigError, match="cannot be empty"):
        set_secret("remote.password", "")


# -- docs stay in sync with the model -------------------------------------------------------------


def test_docs_table_lists_every_setting_with_its_default() -> None:
    text = DOCS.read_text(encoding="utf-8")
    rows = {
        line.split("|")[1].strip(" `"): line for line in text.splitlines() if line.startswith("| `")
    }
    for spec in iter_fields():
        assert spec.key in rows, f"{spec.key} missing from docs/configuration.md"
        if spec.key != "disk.download_path":  # platform dependent
            shown = format_value(spec.default) or '""'
            assert f"`{shown}`" in rows[spec.key], spec.key
    # the whole tables, descriptions and bounds included: scripts/gen_config_docs.py writes them
    assert gen_config_docs.render(text) == text, "run python scripts/gen_config_docs.py"
    for key in SECRET_KEYS:
        assert key in text
