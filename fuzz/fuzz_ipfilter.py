"""Fuzz the IP filter list parser (users load untrusted eMule .dat / PeerGuardian .p2p / CIDR
lists): parsing never raises, and a parsed rule is a sane range that the filter then blocks.

IPFilterError is the module's declared error (a list that cannot be read at all); parsing text
lines must not raise even that: a malformed line is counted and skipped.
"""

from __future__ import annotations

import sys

from fuzz.support import instrumented, main, only

with instrumented(__name__):
    from ccbt_engine.security.ipfilter import IPFilter, IPFilterError, iter_rules, parse_line

_V4_MAX = 2**32 - 1
_V6_MAX = 2**128 - 1


def _host(version: int, value: int) -> str:
    if version == 4:
        return ".".join(str(value >> s & 0xFF) for s in (24, 16, 8, 0))
    return ":".join(f"{value >> s & 0xFFFF:x}" for s in range(112, -16, -16))


def one_input(data: bytes) -> None:
    text = data.decode("utf-8", "replace")
    lines = text.splitlines()
    with only(IPFilterError):
        report: list[int] = []
        rules = list(iter_rules(lines, report))
        assert report and report[0] == len(rules)
        for version, lo, hi in rules:
            assert version in (4, 6) and 0 <= lo <= hi <= (_V4_MAX if version == 4 else _V6_MAX)
        flt = IPFilter(rules[:64], rules[64:128])
        for version, lo, hi in rules[:64]:
            for value in (lo, hi):
                if version == 6 and value >> 32 == 0xFFFF:
                    # ::ffff:a.b.c.d is looked up as IPv4: the end of an IPv6 range that reaches
                    # into the mapped block is not blocked by it (known, see docs/security.md)
                    continue
                blocked = flt.is_blocked(_host(version, value))
                assert blocked or rules[64:128], "an address inside a blocked range passes"
        for line in lines[:8]:
            flt.is_blocked(line)
    with only(IPFilterError):
        parse_line(text)


if __name__ == "__main__":
    main(one_input)
    sys.exit(0)
