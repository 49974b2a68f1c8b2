"""Path sanitisation: nothing a torrent names may escape the save folder or break on any OS."""

from __future__ import annotations

import os
import posixpath
import unicodedata
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from ccbt_engine.pathsafe import (
    MAX_COMPONENT_BYTES,
    expand_home,
    is_reserved_windows_name,
    make_unique,
    path_key,
    sanitize_component,
    sanitize_path,
)


@pytest.mark.parametrize(
    ("raw", "clean"),
    [
        ("file.txt", "file.txt"),
        ("", ""),
        (".", ""),
        ("..", ""),
        ("...", ""),
        (" . ", ""),
        ("a/b", "a_b"),
        ("a\\b", "a_b"),
        ("..\\..\\windows", ".._.._windows"),
        ("/etc/passwd", "_etc_passwd"),
        ("C:", "C_"),
        ("C:\\boot.ini", "C__boot.ini"),
        ("file:stream", "file_stream"),
        ('a<b>c"d|e?f*g', "a_b_c_d_e_f_g"),
        ("tab\there", "tab_here"),
        ("nul\x00byte", "nul_byte"),
        ("esc\x1b[31m", "esc_[31m"),
        ("del\x7f", "del_"),
        ("trailing.", "trailing"),
        ("trailing ", "trailing"),
        ("trailing. . ", "trailing"),
        (" leading", " leading"),
        (".hidden", ".hidden"),
        ("CON", "CON_"),
        ("con", "con_"),
        ("Con.txt", "Con_.txt"),
        ("NUL.tar.gz", "NUL_.tar.gz"),
        ("aux", "aux_"),
        ("PRN.", "PRN_"),
        ("COM1", "COM1_"),
        ("lpt9.log", "lpt9_.log"),
        ("COM\u00b9", "COM\u00b9_"),
        ("CON .txt", "CON_.txt"),
        ("COM10", "COM10"),
        ("CONSOLE", "CONSOLE"),
        ("xCON", "xCON"),
        ("名前.txt", "名前.txt"),
    ],
)
def test_sanitize_component(raw: str, clean: str) -> None:
    assert sanitize_component(raw) == clean


@pytest.mark.parametrize(
    "name", ["CON", "prn", "Aux.c", "nul.tar.gz", "COM3", "lpt1.txt", "CON .x"]
)
def test_reserved_names(name: str) -> None:
    assert is_reserved_windows_name(name)
    assert not is_reserved_windows_name(sanitize_component(name))


def test_long_name_truncated_keeping_extension() -> None:
    name = "a" * 300 + ".mkv"
    clean = sanitize_component(name)
    assert len(clean.encode()) == MAX_COMPONENT_BYTES
    assert clean.endswith(".mkv")


def test_long_multibyte_name_not_split_mid_character() -> None:
    name = "日" * 200 + ".txt"  # 600 bytes of UTF-8
    clean = sanitize_component(name)
    assert len(clean.encode()) <= MAX_COMPONENT_BYTES
    assert clean.endswith(".txt")
    assert set(clean[:-4]) == {"日"}


def test_long_extension_is_not_kept_whole() -> None:
    clean = sanitize_component("x." + "e" * 400)
    assert len(clean.encode()) <= MAX_COMPONENT_BYTES
    assert clean.startswith("x.")


def test_sanitize_path_drops_traversal() -> None:
    assert sanitize_path(["..", "..", "etc", "passwd"]) == ("etc", "passwd")
    assert sanitize_path(["a", ".", "", "b"]) == ("a", "b")
    assert sanitize_path(["..", "."]) == ()
    assert sanitize_path(["/", "abs"]) == ("_", "abs")


def test_make_unique_case_insensitive_and_deterministic() -> None:
    paths = [("t", "Readme.txt"), ("t", "README.TXT"), ("t", "readme.txt"), ("t", "other")]
    out = make_unique(paths)
    assert out == [
        ("t", "Readme.txt"),
        ("t", "README_1.TXT"),
        ("t", "readme_2.txt"),
        ("t", "other"),
    ]
    assert make_unique(paths) == out
    assert len({path_key(p) for p in out}) == len(out)


def test_make_unique_unicode_normalisation() -> None:
    nfc = unicodedata.normalize("NFC", "é")
    nfd = unicodedata.normalize("NFD", "é")
    out = make_unique([("t", nfc), ("t", nfd)])
    assert out[0] == ("t", nfc)
    assert out[1] != ("t", nfd)


def test_make_unique_file_versus_folder() -> None:
    out = make_unique([("t", "a"), ("t", "a", "b"), ("t", "a", "c"), ("t", "A")])
    assert out[0] == ("t", "a")
    # the folder clashing with the earlier file is renamed, consistently for both files
    assert out[1] == ("t", "a_1", "b")
    assert out[2] == ("t", "a_1", "c")
    assert out[3] == ("t", "A_2")


def test_make_unique_file_after_folder_of_same_name() -> None:
    out = make_unique([("t", "d", "x"), ("t", "D")])
    assert out == [("t", "d", "x"), ("t", "D_1")]


def test_make_unique_long_names_stay_within_cap() -> None:
    long = "n" * 251 + ".bin"
    out = make_unique([("t", long), ("t", long)])
    assert out[0] != out[1]
    assert all(len(p[-1].encode()) <= MAX_COMPONENT_BYTES for p in out)
    assert out[1][-1].endswith("_1.bin")


@settings(max_examples=300, deadline=None)
@given(st.lists(st.text(max_size=300), max_size=8))
def test_sanitised_path_never_escapes(parts: list[str]) -> None:
    clean = sanitize_path(parts)
    base = "/save/folder"
    joined = posixpath.normpath(posixpath.join(base, *clean))
    assert joined == base or joined.startswith(base + "/")
    for comp in clean:
        assert comp not in ("", ".", "..")
        assert "/" not in comp and "\\" not in comp and ":" not in comp
        assert not comp.endswith((".", " "))
        assert not is_reserved_windows_name(comp)
        assert len(comp.encode("utf-8")) <= MAX_COMPONENT_BYTES
        assert all(unicodedata.category(c) not in ("Cc", "Cs") for c in comp)
        assert sanitize_component(comp) == comp  # idempotent
        assert not os.path.isabs(comp)


@settings(max_examples=200, deadline=None)
@given(
    st.lists(
        st.lists(
            st.sampled_from(["a", "A", "b", "a.txt", "A.TXT", "a_1.txt"]), min_size=1, max_size=3
        ),
        max_size=12,
    )
)
def test_make_unique_gives_unique_keys(paths: list[list[str]]) -> None:
    out = make_unique([tuple(p) for p in paths])
    keys = [path_key(p) for p in out]
    assert len(set(keys)) == len(keys)
    # no file is another file's folder
    for k in keys:
        for i in range(1, len(k)):
            assert k[:i] not in keys


def test_make_unique_many_duplicates_is_linear() -> None:
    """A torrent of nothing but one name repeated must not cost quadratic time (was 246 s)."""
    paths = [("t", "a")] + [("t", f"a_{i}") for i in range(1, 5000)]
    paths += [("t", "A")] * 20_000 + [("t", "a", "x")] * 20_000
    out = make_unique(paths)
    assert len({path_key(p) for p in out}) == len(out)
    assert out[5000] == ("t", "A_5000")
    # every file of the clashing folder lands in the same renamed folder
    assert {p[:2] for p in out[-20_000:]} == {("t", "a_25000")}


def test_expand_home_names_a_user_without_a_home_instead_of_raising_runtime_error() -> None:
    assert expand_home("~/x") == Path("~/x").expanduser()
    assert expand_home("/abs/~x") == Path("/abs/~x")
    with pytest.raises(ValueError, match="no home folder for '~ccbt-no-such-user'"):
        expand_home("~ccbt-no-such-user/downloads")
