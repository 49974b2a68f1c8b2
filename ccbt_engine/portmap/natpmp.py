"""NAT-PMP (RFC 6886) messages: build requests, parse the gateway's responses.

Sans-I/O: :mod:`ccbt_engine.portmap.service` sends the bytes to the gateway's UDP port 5351 and
retransmits. A response is untrusted (anything on the LAN can answer a UDP port): every parse
failure, and every result code other than success, raises :class:`PortMapError`.
"""

from __future__ import annotations

import ipaddress
import struct
from dataclasses import dataclass
from typing import Literal

from ccbt_engine.portmap.errors import PortMapError

__all__ = [
    "DEFAULT_LIFETIME",
    "NATPMP_PORT",
    "ExternalAddress",
    "Mapping",
    "build_external_address_request",
    "build_mapping_request",
    "parse_response",
    "retransmit_delays",
]

NATPMP_PORT = 5351
#: RFC 6886 3.3 recommends two hours; the mapping is renewed at half of what was granted
DEFAULT_LIFETIME = 7200

_OP_EXTERNAL = 0
_OP_UDP = 1
_OP_TCP = 2
_RESULTS = {
    1: "unsupported version",
    2: "not authorized or refused (NAT-PMP is probably turned off on the router)",
    3: "network failure (the router has no external address yet)",
    4: "out of resources (no more mappings)",
    5: "unsupported opcode",
}

Transport = Literal["TCP", "UDP"]


@dataclass(frozen=True, slots=True)
class ExternalAddress:
    epoch: int
    address: str


@dataclass(frozen=True, slots=True)
class Mapping:
    transport: Transport
    epoch: int
    internal_port: int
    external_port: int
    lifetime: int


def build_external_address_request() -> bytes:
    return struct.pack("!BB", 0, _OP_EXTERNAL)


def build_mapping_request(
    transport: Transport, internal_port: int, external_port: int, lifetime: int
) -> bytes:
    """A mapping request; ``lifetime`` 0 with ``external_port`` 0 deletes the mapping."""
    if not 0 < internal_port < 65536 or not 0 <= external_port < 65536:
        raise PortMapError(f"port out of range: {internal_port}->{external_port}")
    if not 0 <= lifetime <= 0xFFFFFFFF:
        raise PortMapError(f"lifetime out of range: {lifetime}")
    op = _OP_TCP if transport == "TCP" else _OP_UDP
    return struct.pack("!BBHHHI", 0, op, 0, internal_port, external_port, lifetime)


def parse_response(data: bytes) -> ExternalAddress | Mapping:
    """One response datagram, whichever request it answers."""
    if len(data) < 8:
        raise PortMapError(f"NAT-PMP response too short ({len(data)} bytes)")
    version, op, result, epoch = struct.unpack_from("!BBHI", data)
    if version != 0:
        raise PortMapError(f"NAT-PMP response has version {version}, expected 0")
    if op < 128:
        raise PortMapError(f"not a NAT-PMP response (opcode {op})")
    if result != 0:
        why = _RESULTS.get(result, f"result code {result}")
        raise PortMapError(f"router refused: {why}")
    if op == 128 + _OP_EXTERNAL:
        if len(data) != 12:
            raise PortMapError(f"external address response of {len(data)} bytes, expected 12")
        return ExternalAddress(epoch, str(ipaddress.IPv4Address(data[8:12])))
    if op in (128 + _OP_UDP, 128 + _OP_TCP):
        if len(data) != 16:
            raise PortMapError(f"mapping response of {len(data)} bytes, expected 16")
        internal, external, lifetime = struct.unpack_from("!HHI", data, 8)
        transport: Transport = "TCP" if op == 128 + _OP_TCP else "UDP"
        return Mapping(transport, epoch, internal, external, lifetime)
    raise PortMapError(f"unknown NAT-PMP response opcode {op}")


def retransmit_delays(tries: int = 4, first: float = 0.25) -> list[float]:
    """How long to wait for an answer after each send: 250 ms doubling (RFC 6886 3.1).

    The RFC allows nine tries (about 64 s); four (3.75 s in all) is enough on a LAN and keeps
    a session start with no NAT-PMP router from waiting a minute for nothing.
    """
    return [first * 2**i for i in range(tries)]
