"""IP filter: block lists in eMule ``.dat``, PeerGuardian ``.p2p`` and CIDR formats.

Lists in the wild have a million or more ranges, so lookups are a binary search over sorted,
merged, non-overlapping ranges kept in compact arrays (IPv4 as unsigned 32-bit integers), and
parsing avoids :mod:`ipaddress` on the hot path (it costs microseconds per address). A whitelist
of the same formats overrides the block list.

Formats (one rule per line; ``#`` and ``//`` comments and blank lines are skipped):

* eMule / DAT: ``001.002.003.000 - 001.002.003.255 , 100 , description`` — ranges whose access
  level is 128 or more are *allowed* by eMule's convention and are skipped here;
* PeerGuardian / P2P: ``description:1.2.3.0-1.2.3.255``;
* CIDR or single address: ``1.2.3.0/24``, ``2001:db8::/32``, ``1.2.3.4``;
* plain range: ``1.2.3.0-1.2.3.255``.

A malformed line is counted and skipped, never fatal: a list with a few broken lines should
still protect the user. ``.gz`` files are read transparently.
"""

from __future__ import annotations

import asyncio
import bisect
import gzip
import ipaddress
import logging
import re
from array import array
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from pathlib import Path

log = logging.getLogger(__name__)

_V4_MAX = 2**32 - 1
_DAT = re.compile(r"^\s*([0-9.]+|[0-9a-fA-F:]+)\s*-\s*([0-9.]+|[0-9a-fA-F:]+)\s*,\s*([0-9]+)")
_RANGE = re.compile(r"^\s*([0-9a-fA-F.:]+)\s*-\s*([0-9a-fA-F.:]+)\s*$")


class IPFilterError(ValueError):
    """An IP filter file that cannot be read at all."""


def _allowed_level(digits: str) -> bool:
    """eMule access level >= 128 (allowed). The digits come from the list: an absurdly long
    level must not reach ``int()``, whose digit limit would raise a plain ValueError."""
    digits = digits.lstrip("0")
    return len(digits) > 3 or int(digits or "0") >= 128


def parse_ipv4(text: str) -> int | None:
    """Dotted quad → integer; leading zeros are decimal (``010`` is 10), as the lists mean."""
    parts = text.split(".")
    if len(parts) != 4:
        return None
    value = 0
    for part in parts:
        if not (part.isascii() and part.isdigit()) or len(part) > 3:
            return None
        octet = int(part)
        if octet > 255:
            return None
        value = value << 8 | octet
    return value


def _parse_ip(text: str) -> tuple[int, int] | None:
    """(version, integer) for an IPv4 or IPv6 address text, or None."""
    text = text.strip()
    if ":" not in text:
        v4 = parse_ipv4(text)
        return None if v4 is None else (4, v4)
    try:
        addr = ipaddress.IPv6Address(text)
    except ValueError:
        return None
    if addr.ipv4_mapped is not None:
        return 4, int(addr.ipv4_mapped)
    return 6, int(addr)


Rule = tuple[int, int, int]  # (version, first, last)


def parse_line(line: str) -> Rule | None:
    """One rule from one line in any supported format; None for blanks, comments and junk."""
    line = line.strip()
    if not line or line.startswith(("#", "//")):
        return None
    m = _DAT.match(line)
    if m:
        if _allowed_level(m.group(3)):  # eMule: access level >= 128 means allowed
            return None
        return _range(m.group(1), m.group(2))
    m = _RANGE.match(line)
    rule = _range(m.group(1), m.group(2)) if m else None
    if rule is not None:
        return rule
    # P2P: the description may contain colons itself; the IPv4 range follows the last one
    _, sep, tail = line.rpartition(":")
    if sep and "-" in tail:
        return _range(*tail.split("-", 1))
    try:
        net = ipaddress.ip_network(line.split()[0], strict=False)
    except ValueError:
        return None
    if isinstance(net, ipaddress.IPv6Network) and net.prefixlen >= 96:
        mapped = net.network_address.ipv4_mapped
        if mapped is not None:  # ::ffff:a.b.c.d[/n] names IPv4 addresses, as in _parse_ip
            return 4, int(mapped), int(mapped) + net.num_addresses - 1
    return net.version, int(net.network_address), int(net.broadcast_address)


def _range(first: str, last: str) -> Rule | None:
    a, b = _parse_ip(first), _parse_ip(last)
    if a is None or b is None or a[0] != b[0]:
        return None
    lo, hi = sorted((a[1], b[1]))
    return a[0], lo, hi


@dataclass(frozen=True, slots=True)
class LoadReport:
    """What loading a list did: rules kept, lines skipped as malformed, ranges after merging."""

    rules: int
    malformed: int
    ranges: int


class RangeSet:
    """Sorted, merged, non-overlapping inclusive ranges with O(log n) membership."""

    __slots__ = ("_ends", "_starts")

    def __init__(self, ranges: Iterable[tuple[int, int]], typecode: str | None) -> None:
        merged: list[tuple[int, int]] = []
        for lo, hi in sorted(ranges):
            if merged and lo <= merged[-1][1] + 1:
                if hi > merged[-1][1]:
                    merged[-1] = (merged[-1][0], hi)
            else:
                merged.append((lo, hi))
        # IPv4 fits compact unsigned arrays; IPv6 integers need Python ints
        self._starts: array[int] | list[int]
        self._ends: array[int] | list[int]
        if typecode is None:
            self._starts = [lo for lo, _ in merged]
            self._ends = [hi for _, hi in merged]
        else:
            self._starts = array(typecode, (lo for lo, _ in merged))
            self._ends = array(typecode, (hi for _, hi in merged))

    def __len__(self) -> int:
        return len(self._starts)

    def __contains__(self, value: int) -> bool:
        i = bisect.bisect_right(self._starts, value) - 1
        return i >= 0 and value <= self._ends[i]


class IPFilter:
    """Answers "is this address blocked?" from a block list and an optional whitelist."""

    def __init__(self, blocked: Iterable[Rule] = (), allowed: Iterable[Rule] = ()) -> None:
        self._blocked = _split(blocked)
        self._allowed = _split(allowed)

    @property
    def num_ranges(self) -> int:
        return len(self._blocked[0]) + len(self._blocked[1])

    def is_blocked(self, host: str) -> bool:
        """True when ``host`` is in a blocked range and not in a whitelisted one.

        Host names (not addresses) are never blocked here: they are filtered once resolved.
        """
        parsed = _parse_ip(host.strip("[]"))
        if parsed is None:
            return False
        version, value = parsed
        index = 0 if version == 4 else 1
        return value in self._blocked[index] and value not in self._allowed[index]


def _split(rules: Iterable[Rule]) -> tuple[RangeSet, RangeSet]:
    v4: list[tuple[int, int]] = []
    v6: list[tuple[int, int]] = []
    for version, lo, hi in rules:
        (v4 if version == 4 else v6).append((lo, hi))
    typecode = "L" if array("L").itemsize >= 4 else "Q"
    return RangeSet(v4, typecode), RangeSet(v6, None)


def iter_rules(lines: Iterable[str], report: list[int] | None = None) -> Iterator[Rule]:
    """Rules from lines; ``report`` (if given) gets ``[kept, malformed]`` counts."""
    kept = malformed = 0
    for line in lines:
        rule = parse_line(line)
        if rule is None:
            stripped = line.strip()
            if stripped and not stripped.startswith(("#", "//")) and not _is_allowed_dat(stripped):
                malformed += 1
            continue
        kept += 1
        yield rule
    if report is not None:
        report[:] = [kept, malformed]


def _is_allowed_dat(line: str) -> bool:
    m = _DAT.match(line)
    return bool(m and _allowed_level(m.group(3)))


def _open_lines(path: Path) -> Iterator[str]:
    opener = gzip.open if path.suffix == ".gz" else open
    try:
        with opener(path, "rt", encoding="utf-8", errors="replace") as fh:
            yield from fh
    except (OSError, EOFError, gzip.BadGzipFile) as exc:
        raise IPFilterError(f"cannot read IP filter {path}: {exc}") from exc


def load_rules(path: Path) -> tuple[list[Rule], LoadReport]:
    counts: list[int] = []
    rules = list(iter_rules(_open_lines(Path(path)), counts))
    kept, malformed = counts or [0, 0]
    return rules, LoadReport(rules=kept, malformed=malformed, ranges=0)


def load_filter(block_path: Path, allow_path: Path | None = None) -> tuple[IPFilter, LoadReport]:
    """Build a filter from files (blocking: call it in a thread, see :func:`load_filter_async`)."""
    blocked, report = load_rules(block_path)
    allowed = load_rules(allow_path)[0] if allow_path is not None else []
    flt = IPFilter(blocked, allowed)
    if report.malformed:
        log.warning("%s: skipped %d malformed lines", block_path, report.malformed)
    return flt, LoadReport(report.rules, report.malformed, flt.num_ranges)


async def load_filter_async(
    block_path: Path, allow_path: Path | None = None
) -> tuple[IPFilter, LoadReport]:
    """:func:`load_filter` on a worker thread, so a big list never stalls the event loop."""
    return await asyncio.to_thread(load_filter, block_path, allow_path)
