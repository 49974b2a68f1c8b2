"""IP filter: formats, merging, whitelist, bounds, and agreement with a naive check."""

from __future__ import annotations

import gzip
import ipaddress
import random
import time
from pathlib import Path

from hypothesis import given, settings
from hypothesis import strategies as st

from ccbt_engine.security.ipfilter import IPFilter, load_filter, parse_ipv4, parse_line


def v4(text: str) -> int:
    return int(ipaddress.IPv4Address(text))


def test_formats() -> None:
    assert parse_line("001.002.003.000 - 001.002.003.255 , 100 , Org") == (
        4,
        v4("1.2.3.0"),
        v4("1.2.3.255"),
    )
    assert parse_line("Some: org:1.2.3.0-1.2.3.255") == (4, v4("1.2.3.0"), v4("1.2.3.255"))
    assert parse_line("10.0.0.0/8") == (4, v4("10.0.0.0"), v4("10.255.255.255"))
    assert parse_line("1.2.3.4") == (4, v4("1.2.3.4"), v4("1.2.3.4"))
    assert parse_line("5.5.5.9 - 5.5.5.1") == (4, v4("5.5.5.1"), v4("5.5.5.9"))
    first, last = (
        ipaddress.ip_network("2001:db8::/32")[0],
        ipaddress.ip_network("2001:db8::/32")[-1],
    )
    assert parse_line("2001:db8::/32") == (6, int(first), int(last))


def test_leading_zeros_are_decimal_not_octal() -> None:
    assert parse_ipv4("010.000.000.009") == v4("10.0.0.9")
    assert parse_ipv4("256.0.0.1") is None
    assert parse_ipv4("1.2.3") is None


def test_dat_allowed_levels_and_junk_are_skipped() -> None:
    for line in ["1.1.1.1 - 1.1.1.2 , 200 , allowed", "# comment", "// comment", "", "junk"]:
        assert parse_line(line) is None


def test_blocking_merging_and_whitelist(tmp_path: Path) -> None:
    block = tmp_path / "list.p2p"
    block.write_text(
        "a:1.0.0.0-1.0.0.10\nb:1.0.0.5-1.0.0.20\nc:1.0.0.21-1.0.0.30\n"
        "10.0.0.0/8\nnot a rule\n2001:db8::/32\n"
    )
    allow = tmp_path / "allow.txt"
    allow.write_text("10.1.2.3\n")
    flt, report = load_filter(block, allow)
    assert report.rules == 5 and report.malformed == 1
    assert report.ranges == 3  # 1.0.0.0-1.0.0.30 merged, 10/8, the IPv6 net
    for host in ["1.0.0.0", "1.0.0.30", "10.200.0.1", "2001:db8::5", "[2001:db8::7]"]:
        assert flt.is_blocked(host), host
    for host in ["1.0.0.31", "9.255.255.255", "10.1.2.3", "2001:db9::1", "example.org"]:
        assert not flt.is_blocked(host), host
    assert flt.is_blocked("::ffff:10.9.9.9")  # IPv4-mapped IPv6 is the IPv4 address


def test_gzip_lists(tmp_path: Path) -> None:
    path = tmp_path / "list.dat.gz"
    with gzip.open(path, "wt") as fh:
        fh.write("000.000.000.000 - 000.255.255.255 , 000 , Bogon\n")
    flt, _ = load_filter(path)
    assert flt.is_blocked("0.1.2.3")


ranges = st.lists(
    st.tuples(st.integers(0, 2**32 - 1), st.integers(0, 2**16)).map(
        lambda t: (t[0], min(t[0] + t[1], 2**32 - 1))
    ),
    max_size=50,
)


@settings(max_examples=300)
@given(ranges, ranges, st.lists(st.integers(0, 2**32 - 1), max_size=50))
def test_agrees_with_linear_scan(
    blocked: list[tuple[int, int]], allowed: list[tuple[int, int]], probes: list[int]
) -> None:
    flt = IPFilter([(4, a, b) for a, b in blocked], [(4, a, b) for a, b in allowed])
    edges = [x for a, b in blocked + allowed for x in (a - 1, a, b, b + 1) if 0 <= x < 2**32]
    for value in probes + edges:
        expect = any(a <= value <= b for a, b in blocked) and not any(
            a <= value <= b for a, b in allowed
        )
        assert flt.is_blocked(str(ipaddress.IPv4Address(value))) == expect


@given(st.text(max_size=80))
def test_any_line_parses_or_is_skipped(line: str) -> None:
    rule = parse_line(line)
    assert rule is None or (rule[0] in (4, 6) and rule[1] <= rule[2])


def test_a_million_ranges_load_in_seconds(tmp_path: Path) -> None:
    """Functional check with a loose bound (the figure itself is printed, not tuned for)."""
    rng = random.Random(7)
    path = tmp_path / "big.p2p"
    with path.open("w") as fh:
        for i in range(1_000_000):
            start = rng.randrange(2**32 - 300)
            a, b = ipaddress.IPv4Address(start), ipaddress.IPv4Address(start + rng.randrange(256))
            fh.write(f"range {i}:{a}-{b}\n")
    t0 = time.perf_counter()
    flt, report = load_filter(path)
    elapsed = time.perf_counter() - t0
    print(f"loaded {report.rules} rules into {report.ranges} ranges in {elapsed:.2f} s")
    assert report.rules == 1_000_000 and report.malformed == 0
    assert elapsed < 60
    assert flt.is_blocked(str(ipaddress.IPv4Address(start)))
