"""``load_settings_tolerant``: one bad key must not undo the user's other choices.

The desktop app used to fall back to all defaults on any config error, which turned DHT and
UPnP back on for a user who had switched them off in the same file. The tolerant loader keeps
every valid key, ignores only the bad ones (each falls back to the next lower layer) and names
them; ``ccbt`` commands keep the strict loader and still fail with the error.
"""

from __future__ import annotations

import tempfile
from pathlib import Path
from typing import Any

import pytest
import tomlkit
from hypothesis import HealthCheck, example, given, settings
from hypothesis import strategies as st

from ccbt_engine.config import (
    ConfigError,
    Settings,
    load_settings,
    load_settings_tolerant,
    remove_entries,
)
from ccbt_engine.config.model import SECTION_NAMES, iter_fields


def _files(tmp_path: Path, user: str = "", local: str | None = None) -> dict[str, Any]:
    user_path, local_path = tmp_path / "config.toml", tmp_path / "ccbt.toml"
    user_path.write_text(user)
    if local is not None:
        local_path.write_text(local)
    return {"user_path": user_path, "local_path": local_path, "env": {}}


SCENARIO = """\
# my seedbox settings
[network]
listen_port = 0          # out of range
enable_dht = false
enable_upnp = false

[disk]
download_path = "/srv/torrents"
"""


def test_one_bad_key_keeps_every_other_choice(tmp_path: Path) -> None:
    where = _files(tmp_path, SCENARIO)
    with pytest.raises(ConfigError, match=r"network\.listen_port"):
        load_settings(**where)  # `ccbt` commands: still a clear error
    loaded = load_settings_tolerant(**where)
    s = loaded.settings
    assert s.network.enable_dht is False and s.network.enable_upnp is False
    assert str(s.disk.download_path) == "/srv/torrents"
    assert s.network.listen_port == Settings().network.listen_port  # the default
    (problem,) = loaded.problems
    assert problem.key == "network.listen_port" and problem.path == where["user_path"]
    assert not problem.whole_file and loaded.ignored == (problem,) and loaded.unreadable == ()
    message = str(problem.error)
    assert "0" in message and str(where["user_path"]) in message and "allowed" in message
    assert problem.error.allowed and problem.error.value == 0
    assert loaded.sources["network.enable_dht"].startswith("user config file")
    assert "network.listen_port" not in loaded.sources


def test_a_bad_key_falls_back_to_the_next_lower_layer(tmp_path: Path) -> None:
    where = _files(tmp_path, "[network]\nlisten_port = 7000\n", "[network]\nlisten_port = 0\n")
    loaded = load_settings_tolerant(**where)
    assert loaded.settings.network.listen_port == 7000  # the user file's, not the default
    (problem,) = loaded.problems
    assert problem.path == where["local_path"]
    # an environment variable that is bad falls back to the files
    where["env"] = {"CCBT_NETWORK_LISTEN_PORT": "lots", "CCBT_NETWORK_ENABLE_DHT": "false"}
    loaded = load_settings_tolerant(**where)
    assert loaded.settings.network.listen_port == 7000
    assert loaded.settings.network.enable_dht is False
    env_problem = next(p for p in loaded.problems if p.path is None)
    assert env_problem.key == "network.listen_port"
    assert "CCBT_NETWORK_LISTEN_PORT" in str(env_problem.error)


def test_every_kind_of_mistake_is_reported_and_skipped(tmp_path: Path) -> None:
    text = """\
network = 5
[limits]
global_down_kib = -3
max_active_seeds = 2
[disk]
preallocate = "sometimes"
hash_threads = 3
bogus_key = 1
[netwrok]
enable_dht = false
[remote]
password = "hunter2"
port = 9999
"""
    loaded = load_settings_tolerant(**_files(tmp_path, text))
    keys = {p.key for p in loaded.problems}
    assert keys == {
        "network",  # not a table
        "netwrok",  # unknown section
        "remote.password",  # a secret does not belong in a file
        "disk.bogus_key",  # unknown key
        "limits.global_down_kib",  # out of range
        "disk.preallocate",  # not one of the choices
    }
    s = loaded.settings
    assert (s.limits.max_active_seeds, s.disk.hash_threads, s.remote.port) == (2, 3, 9999)
    assert all(not p.whole_file for p in loaded.problems)
    assert all(p.error.key == p.key for p in loaded.problems)


@pytest.mark.parametrize("text", ["[network\nlisten_port = 1", "\xff\xfe not utf-8"])
def test_unreadable_file_is_skipped_as_a_whole(tmp_path: Path, text: str) -> None:
    where = _files(tmp_path, local="[network]\nenable_lsd = false\n")
    where["user_path"].write_bytes(text.encode("latin-1"))
    loaded = load_settings_tolerant(**where)
    (problem,) = loaded.problems
    assert problem.whole_file and problem.key is None and problem.path == where["user_path"]
    assert loaded.unreadable == (problem,) and loaded.ignored == ()
    assert str(where["user_path"]) in str(problem.error)
    assert loaded.settings.network.enable_lsd is False  # the other file still counts


def test_missing_files_and_good_files_are_no_problem(tmp_path: Path) -> None:
    where = _files(tmp_path, "[network]\nenable_dht = false\n")
    loaded = load_settings_tolerant(**where)
    assert loaded.problems == ()
    assert loaded.settings == load_settings(**where)
    (tmp_path / "config.toml").unlink()
    assert load_settings_tolerant(**where).settings == Settings()


def test_remove_entries_fixes_the_file_keeping_the_rest(tmp_path: Path) -> None:
    where = _files(tmp_path, SCENARIO + "[netwrok]\nx = 1\n")
    loaded = load_settings_tolerant(**where)
    path = where["user_path"]
    keys = [p.key for p in loaded.problems if p.key]
    assert sorted(remove_entries(path, [*keys, "disk.not_there", "nosection"])) == sorted(keys)
    text = path.read_text()
    assert "# my seedbox settings" in text and "enable_dht = false" in text
    assert "listen_port" not in text and "netwrok" not in text
    assert load_settings(**where) == loaded.settings  # strict loading works again
    assert remove_entries(tmp_path / "absent.toml", ["network.listen_port"]) == []
    path.write_text("[broken")
    with pytest.raises(ConfigError):
        remove_entries(path, ["network.listen_port"])


# -- property: whatever the file says, the tolerant result is the strict one of the file with
#    the reported entries removed (nothing valid is lost, nothing invalid slips in)
_FIELDS = [spec.key for spec in iter_fields()]
_values = st.one_of(
    st.integers(-10, 70_000),
    st.booleans(),
    st.text(max_size=8),
    st.lists(st.text(max_size=5), max_size=3),
    st.floats(allow_nan=False, allow_infinity=False, width=32),
)
_keys = st.one_of(
    st.sampled_from(_FIELDS),
    st.builds(lambda s, n: f"{s}.{n}", st.sampled_from(SECTION_NAMES), st.sampled_from(["x"])),
    st.just("remote.password"),
    st.just("nosuch.key"),
)


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.dictionaries(_keys, _values, max_size=12))
@example(entries={"disk.download_path": "~0"})  # a user with no home folder: once a RuntimeError
def test_tolerant_equals_strict_after_removing_the_reported(entries: dict[str, Any]) -> None:
    doc: dict[str, dict[str, Any]] = {}
    for key, value in entries.items():
        section, _, name = key.partition(".")
        doc.setdefault(section, {})[name] = value
    with tempfile.TemporaryDirectory() as folder:
        where = _files(Path(folder), tomlkit.dumps(doc))
        loaded = load_settings_tolerant(**where)
        assert all(p.key and not p.whole_file for p in loaded.problems)
        remove_entries(where["user_path"], [p.key for p in loaded.problems if p.key])
        assert load_settings(**where) == loaded.settings
