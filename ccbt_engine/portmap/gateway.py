"""The default IPv4 gateway, where NAT-PMP requests go (RFC 6886 section 3).

Linux only, from ``/proc/net/route``: no ``netifaces`` dependency and no subprocess. On other
systems (or in a container without a default route) there is no answer and NAT-PMP is skipped
with a log line; UPnP finds its router by multicast and needs no gateway.
"""

from __future__ import annotations

import ipaddress
import struct
from pathlib import Path

__all__ = ["default_gateway", "parse_route_table"]

_RTF_UP = 0x1
_RTF_GATEWAY = 0x2


def parse_route_table(text: str) -> str | None:
    """The gateway of the first usable default route in ``/proc/net/route`` text, or None.

    Fields are hexadecimal in host byte order (little-endian on every Linux we run on).
    """
    for line in text.splitlines()[1:]:
        fields = line.split()
        if len(fields) < 8:
            continue
        try:
            dest, gateway, flags, mask = (int(fields[i], 16) for i in (1, 2, 3, 7))
        except ValueError:
            continue
        if dest != 0 or mask != 0 or not flags & _RTF_UP or not flags & _RTF_GATEWAY:
            continue
        if not 0 < gateway <= 0xFFFFFFFF:
            continue
        return str(ipaddress.IPv4Address(struct.pack("<I", gateway)))
    return None


def default_gateway(route_file: Path = Path("/proc/net/route")) -> str | None:
    """The default gateway, or None where it cannot be read (not Linux, no default route)."""
    try:
        text = route_file.read_text(encoding="ascii", errors="replace")
    except OSError:
        return None
    return parse_route_table(text)
