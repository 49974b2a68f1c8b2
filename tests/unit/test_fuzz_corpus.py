"""The CI pass of the fuzz harnesses (the million-input runs are `make fuzz`, see docs/security.md).

For every harness in fuzz/: (a) each seed in tests/corpus/<target>/ goes through ``one_input``;
(b) a short atheris run in a subprocess when atheris is installed; (c) always, a hypothesis pass
over ``one_input`` with random bytes and mutated seeds, so CI without atheris still fuzzes.
Plus regression tests for the parser bugs the fuzzers found.
"""

from __future__ import annotations

import importlib
import os
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path
from types import ModuleType

import pytest
from hypothesis import HealthCheck, given, settings

from fuzz.support import ENGINE_ENV, mutated_inputs

ROOT = Path(__file__).resolve().parents[2]
CORPUS = ROOT / "tests" / "corpus"
TARGETS = sorted(p.stem.removeprefix("fuzz_") for p in (ROOT / "fuzz").glob("fuzz_*.py"))
#: atheris inputs per target in CI; all targets together stay well under a minute
ATHERIS_RUNS = 3000


def _atheris_available() -> bool:
    try:
        import atheris  # noqa: F401
    except ImportError:
        return False
    return True


#: hypothesis inputs per target: a sanity pass beside atheris' run, the whole short pass without
#: atheris (about a second per target either way)
HYPOTHESIS_EXAMPLES = 150 if _atheris_available() else 1500


def _harness(target: str) -> ModuleType:
    return importlib.import_module(f"fuzz.fuzz_{target}")


def _seeds(target: str) -> list[bytes]:
    return [p.read_bytes() for p in sorted((CORPUS / target).iterdir()) if p.is_file()]


def test_every_parser_named_in_the_brief_has_a_harness() -> None:
    expected = {
        "bencode", "metainfo", "magnet", "wire", "extension", "tracker_http", "tracker_udp",
        "krpc", "mse", "utp", "utp_conn", "ipfilter",
    }  # fmt: skip
    assert expected <= set(TARGETS)


def test_corpus_is_small() -> None:
    total = sum(p.stat().st_size for p in CORPUS.rglob("*") if p.is_file())
    assert total < 2 * 1024 * 1024


@pytest.mark.parametrize("target", TARGETS)
def test_corpus_through_one_input(target: str) -> None:
    seeds = _seeds(target)
    assert seeds, f"tests/corpus/{target} is empty: run python -m fuzz.make_corpus"
    one_input: Callable[[bytes], None] = _harness(target).one_input
    for data in seeds:
        one_input(data)


def test_corpus_matches_make_corpus() -> None:
    """The checked-in seeds are what fuzz/make_corpus.py writes (for the generators that need
    neither the clock nor libtorrent), so the script and its output cannot drift apart."""
    from fuzz import make_corpus as mc

    built = {
        "tracker_http": mc.tracker_http(),
        "tracker_udp": mc.tracker_udp(),
        "krpc": mc.krpc_messages(),
        "mse": mc.mse_exchange(),
        "utp": mc.utp_packets(),
        "utp_conn": mc.utp_scripts(),
        "ipfilter": mc.ipfilter_lists(),
        "extension": mc.extension_streams({}),
        "wire": mc.wire_streams({}),
    }
    for target, files in built.items():
        on_disk = {
            p.name: p.read_bytes()
            for p in (CORPUS / target).iterdir()
            if not p.name.startswith("libtorrent_")  # captured from a live libtorrent
        }
        assert on_disk == files, f"tests/corpus/{target} is stale: run python -m fuzz.make_corpus"


@pytest.mark.skipif(not _atheris_available(), reason="atheris not installed (hypothesis pass runs)")
@pytest.mark.parametrize("target", TARGETS)
def test_short_atheris_run(target: str, tmp_path: Path) -> None:
    # tmp_path first: libFuzzer writes new inputs into the first corpus directory only
    proc = subprocess.run(
        [
            sys.executable,
            "-m",
            f"fuzz.fuzz_{target}",
            f"-runs={ATHERIS_RUNS}",
            "-seed=1",
            "-timeout=20",
            "-max_total_time=20",
            f"-artifact_prefix={tmp_path}/",
            str(tmp_path),
            str(CORPUS / target),
        ],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert "Done" in proc.stderr, proc.stderr[-3000:]


@pytest.mark.parametrize("target", TARGETS)
def test_hypothesis_pass(target: str) -> None:
    one_input = _harness(target).one_input
    seeds = _seeds(target)

    @settings(
        max_examples=HYPOTHESIS_EXAMPLES,
        deadline=None,
        database=None,
        suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
    )
    @given(mutated_inputs(seeds))
    def run(data: bytes) -> None:
        one_input(data)

    run()


def test_hypothesis_engine_runs_a_harness_from_the_command_line(tmp_path: Path) -> None:
    """``make fuzz`` where atheris has no wheel: same command line, hypothesis underneath."""
    proc = subprocess.run(
        [
            sys.executable,
            "-m",
            "fuzz.fuzz_utp",
            "-runs=300",
            "-seed=1",
            "-timeout=20",
            f"-artifact_prefix={tmp_path}/",
            str(tmp_path),
            str(CORPUS / "utp"),
        ],
        cwd=ROOT,
        env={**os.environ, ENGINE_ENV: "hypothesis"},
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert "hypothesis engine" in proc.stderr
    assert "stat::number_of_executed_units: 300" in proc.stderr


def test_hypothesis_engine_fails_and_saves_the_crashing_input(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    from fuzz.support import _hypothesis_main

    seed_dir = tmp_path / "seeds"
    seed_dir.mkdir()
    (seed_dir / "a").write_bytes(b"d3:fooi1ee")

    def one_input(data: bytes) -> None:
        if b"o" in data:  # the seed contains one: mutated seeds reach it quickly
            raise IndexError("not a declared error")

    rc = _hypothesis_main(
        one_input, ["-runs=5000", f"-artifact_prefix={tmp_path}/x-", str(seed_dir)]
    )
    assert rc == 1
    (crash,) = tmp_path.glob("x-crash-*")
    assert b"o" in crash.read_bytes()
    assert "IndexError" in capsys.readouterr().err


# -- regressions found by the fuzzers ---------------------------------------------------------


def test_ipfilter_non_ascii_digit_is_a_malformed_line_not_a_crash() -> None:
    from ccbt_engine.security.ipfilter import parse_ipv4, parse_line

    assert parse_ipv4("1.2.3.\u00b2") is None  # "²".isdigit() is True but int() refuses it
    assert parse_line("x:1.2.3.4-1.2.3.\u00b2") is None


def test_ipfilter_huge_access_level_is_allowed_not_a_crash() -> None:
    from ccbt_engine.security.ipfilter import parse_line

    assert parse_line("1.2.3.4 - 1.2.3.5 , " + "1" * 5000 + " , d") is None  # level >= 128
    assert parse_line("1.2.3.4 - 1.2.3.5 , " + "0" * 5000 + "100 , d") is not None  # 100 blocks


def test_ipfilter_ipv4_mapped_cidr_blocks_the_ipv4_addresses() -> None:
    from ccbt_engine.security.ipfilter import IPFilter, parse_line

    rule = parse_line("::ffff:1.2.3.0/120")
    assert rule is not None and rule[0] == 4
    flt = IPFilter([rule])
    assert flt.is_blocked("1.2.3.77") and flt.is_blocked("::ffff:1.2.3.77")
    assert not flt.is_blocked("1.2.4.1")
    single = parse_line("::ffff:2.2.3.9")
    assert single is not None and IPFilter([single]).is_blocked("2.2.3.9")
