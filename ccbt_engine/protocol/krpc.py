"""KRPC (BEP 5) messages: sans-I/O decode, validation and encode for the DHT.

Every datagram a DHT node receives is hostile until proven otherwise, so :func:`decode` turns
bytes into one of three frozen message types (:class:`Query`, :class:`Response`,
:class:`ErrorReply`) or raises :class:`KRPCError` -- never anything else (property-tested). The
error carries the KRPC error ``code`` to answer with and, when it could be read, the transaction
id, so the node can reply to a malformed *query* without guessing.

Covered: BEP 5 (ping, find_node, get_peers, announce_peer), BEP 32 (``nodes6`` and ``want``),
BEP 42 (the ``ip`` field telling us our external address), BEP 43 (``ro`` read-only flag) and
BEP 51 (sample_infohashes). Responses are decoded without knowing which query they answer: every
known key is validated if present, unknown keys are ignored (forward compatibility).
"""

from __future__ import annotations

import ipaddress
import socket
import struct
from dataclasses import dataclass, field
from typing import Any

from ccbt_engine import bencode
from ccbt_engine.bencode import BencodeError

__all__ = [
    "ERROR_GENERIC",
    "ERROR_METHOD_UNKNOWN",
    "ERROR_PROTOCOL",
    "ERROR_SERVER",
    "MAX_PACKET",
    "METHODS",
    "ErrorReply",
    "KRPCError",
    "Message",
    "NodeInfo",
    "Query",
    "Response",
    "decode",
    "decode_nodes",
    "decode_peer",
    "encode_error",
    "encode_nodes",
    "encode_peer",
    "encode_query",
    "encode_response",
]

ERROR_GENERIC = 201
ERROR_SERVER = 202
ERROR_PROTOCOL = 203
ERROR_METHOD_UNKNOWN = 204

#: Largest datagram we decode. Real KRPC messages stay well under 1500 bytes; anything bigger
#: is garbage or an attack, and refusing it early bounds the decoder's work.
MAX_PACKET = 4096

METHODS = frozenset({"ping", "find_node", "get_peers", "announce_peer", "sample_infohashes"})

#: Bencoded messages nest at most 3 levels (dict -> args dict -> list of values).
_MAX_DEPTH = 6
_ID_LEN = 20
_MAX_TID = 32
_MAX_TOKEN = 64
_MAX_SAMPLES = 1000


class KRPCError(ValueError):
    """A malformed or unacceptable KRPC message.

    ``code`` is the BEP 5 error code a reply should carry; ``tid`` is the transaction id when it
    could be read and the message was a query (``None`` means: do not answer).
    """

    def __init__(self, message: str, *, code: int = ERROR_PROTOCOL, tid: bytes | None = None):
        super().__init__(message)
        self.code = code
        self.tid = tid


@dataclass(frozen=True, slots=True)
class NodeInfo:
    """A contact: a 20-byte node id and its UDP address (IPv4 or IPv6)."""

    node_id: bytes
    host: str
    port: int

    @property
    def addr(self) -> tuple[str, int]:
        return (self.host, self.port)


@dataclass(frozen=True, slots=True)
class Query:
    """An incoming query. ``target`` is find_node/sample_infohashes' target or the info_hash."""

    tid: bytes
    method: str
    sender: bytes
    target: bytes | None = None
    port: int | None = None
    token: bytes | None = None
    implied_port: bool = False
    want: frozenset[str] = frozenset()
    read_only: bool = False
    version: bytes | None = None


@dataclass(frozen=True, slots=True)
class Response:
    """A reply; fields a given method does not use are empty."""

    tid: bytes
    sender: bytes
    nodes: tuple[NodeInfo, ...] = ()
    nodes6: tuple[NodeInfo, ...] = ()
    values: tuple[tuple[str, int], ...] = ()
    token: bytes | None = None
    samples: tuple[bytes, ...] = ()
    num: int | None = None
    interval: int | None = None
    ip: tuple[str, int] | None = None
    version: bytes | None = None


@dataclass(frozen=True, slots=True)
class ErrorReply:
    tid: bytes
    code: int
    message: str = field(default="")


Message = Query | Response | ErrorReply


# -- compact forms ----------------------------------------------------------------------------
def encode_peer(host: str, port: int) -> bytes:
    """Compact peer info: 4 or 16 address bytes then the port, big-endian."""
    return ipaddress.ip_address(host).packed + struct.pack(">H", port)


def decode_peer(data: bytes) -> tuple[str, int]:
    if len(data) == 6:
        return socket.inet_ntop(socket.AF_INET, data[:4]), struct.unpack(">H", data[4:])[0]
    if len(data) == 18:
        return socket.inet_ntop(socket.AF_INET6, data[:16]), struct.unpack(">H", data[16:])[0]
    raise KRPCError(f"compact peer of {len(data)} bytes")


def encode_nodes(nodes: list[NodeInfo] | tuple[NodeInfo, ...]) -> bytes:
    """Compact node info (26 bytes per IPv4 node, 38 per IPv6 node)."""
    return b"".join(n.node_id + encode_peer(n.host, n.port) for n in nodes)


def decode_nodes(data: bytes, ipv6: bool = False) -> tuple[NodeInfo, ...]:
    """Split a compact ``nodes``/``nodes6`` string; port-0 entries are dropped (unreachable)."""
    size = 38 if ipv6 else 26
    if len(data) % size:
        raise KRPCError(f"compact node list of {len(data)} bytes is not a multiple of {size}")
    out: list[NodeInfo] = []
    for i in range(0, len(data), size):
        host, port = decode_peer(data[i + 20 : i + size])
        if port:
            out.append(NodeInfo(data[i : i + 20], host, port))
    return tuple(out)


# -- decoding ---------------------------------------------------------------------------------
def decode(data: bytes) -> Message:
    """Parse one datagram into a message, or raise :class:`KRPCError`."""
    if len(data) > MAX_PACKET:
        raise KRPCError(f"datagram of {len(data)} bytes is too large")
    try:
        # Non-strict key order: several clients send unsorted dictionaries.
        msg = bencode.decode(data, strict=False, max_depth=_MAX_DEPTH)
    except BencodeError as exc:
        raise KRPCError(f"not bencoded: {exc}") from None
    except TypeError as exc:
        raise KRPCError(str(exc)) from None
    if not isinstance(msg, dict):
        raise KRPCError("message is not a dictionary")
    tid = msg.get(b"t")
    if not isinstance(tid, bytes) or not 0 < len(tid) <= _MAX_TID:
        raise KRPCError("missing or invalid transaction id")
    kind = msg.get(b"y")
    version = msg.get(b"v")
    if not isinstance(version, bytes):
        version = None
    if kind == b"q":
        return _decode_query(msg, tid, version)
    if kind == b"r":
        return _decode_response(msg, tid, version)
    if kind == b"e":
        return _decode_error(msg, tid)
    raise KRPCError("unknown message type")


def _decode_query(msg: dict[bytes, Any], tid: bytes, version: bytes | None) -> Query:
    method_raw = msg.get(b"q")
    args = msg.get(b"a")
    if not isinstance(method_raw, bytes):
        raise KRPCError("query without method name", tid=tid)
    if not isinstance(args, dict):
        raise KRPCError("query without arguments", tid=tid)
    method = method_raw.decode("ascii", "replace")
    if method not in METHODS:
        raise KRPCError(f"method unknown: {method[:32]}", code=ERROR_METHOD_UNKNOWN, tid=tid)
    sender = _id(args, b"id", tid)
    want: frozenset[str] = frozenset()
    raw_want = args.get(b"want")
    if isinstance(raw_want, list):
        want = frozenset(w.decode("ascii", "replace") for w in raw_want[:4] if isinstance(w, bytes))
    ro = msg.get(b"ro") == 1
    target: bytes | None = None
    port: int | None = None
    token: bytes | None = None
    implied = False
    if method in ("find_node", "sample_infohashes"):
        target = _id(args, b"target", tid)
    elif method in ("get_peers", "announce_peer"):
        target = _id(args, b"info_hash", tid)
    if method == "announce_peer":
        implied = args.get(b"implied_port") == 1
        raw_port = args.get(b"port")
        if isinstance(raw_port, int) and 0 < raw_port < 65536:
            port = raw_port
        elif not implied:
            raise KRPCError("announce_peer without a valid port", tid=tid)
        raw_token = args.get(b"token")
        if not isinstance(raw_token, bytes) or not 0 < len(raw_token) <= _MAX_TOKEN:
            raise KRPCError("announce_peer without a valid token", tid=tid)
        token = raw_token
    return Query(tid, method, sender, target, port, token, implied, want, ro, version)


def _decode_response(msg: dict[bytes, Any], tid: bytes, version: bytes | None) -> Response:
    r = msg.get(b"r")
    if not isinstance(r, dict):
        raise KRPCError("response without body")
    sender = _id(r, b"id", None)
    nodes = _nodes(r, b"nodes", False)
    nodes6 = _nodes(r, b"nodes6", True)
    values: list[tuple[str, int]] = []
    raw_values = r.get(b"values")
    if raw_values is not None:
        if not isinstance(raw_values, list):
            raise KRPCError("values is not a list")
        for v in raw_values:
            # Tolerate odd entries: one bad peer must not cost the whole reply.
            if isinstance(v, bytes) and len(v) in (6, 18):
                host, port = decode_peer(v)
                if port:
                    values.append((host, port))
    token = r.get(b"token")
    if token is not None and (not isinstance(token, bytes) or len(token) > _MAX_TOKEN):
        raise KRPCError("invalid token")
    samples: tuple[bytes, ...] = ()
    raw_samples = r.get(b"samples")
    if raw_samples is not None:
        if not isinstance(raw_samples, bytes) or len(raw_samples) % 20:
            raise KRPCError("samples is not a multiple of 20 bytes")
        if len(raw_samples) > 20 * _MAX_SAMPLES:
            raise KRPCError("too many samples")
        samples = tuple(raw_samples[i : i + 20] for i in range(0, len(raw_samples), 20))
    num = _opt_nonneg(r, b"num")
    interval = _opt_nonneg(r, b"interval")
    ip: tuple[str, int] | None = None
    raw_ip = msg.get(b"ip")
    if isinstance(raw_ip, bytes) and len(raw_ip) in (6, 18):
        ip = decode_peer(raw_ip)
    return Response(
        tid, sender, nodes, nodes6, tuple(values), token, samples, num, interval, ip, version
    )


def _decode_error(msg: dict[bytes, Any], tid: bytes) -> ErrorReply:
    e = msg.get(b"e")
    if not isinstance(e, list) or not e or not isinstance(e[0], int):
        raise KRPCError("error without code")
    text = e[1] if len(e) > 1 and isinstance(e[1], bytes) else b""
    return ErrorReply(tid, e[0], text[:200].decode("utf-8", "replace"))


def _id(d: dict[bytes, Any], key: bytes, tid: bytes | None) -> bytes:
    value = d.get(key)
    if not isinstance(value, bytes) or len(value) != _ID_LEN:
        raise KRPCError(f"missing or invalid {key.decode()}", tid=tid)
    return value


def _nodes(d: dict[bytes, Any], key: bytes, ipv6: bool) -> tuple[NodeInfo, ...]:
    value = d.get(key)
    if value is None:
        return ()
    if not isinstance(value, bytes):
        raise KRPCError(f"{key.decode()} is not a string")
    return decode_nodes(value, ipv6)


def _opt_nonneg(d: dict[bytes, Any], key: bytes) -> int | None:
    value = d.get(key)
    if value is None:
        return None
    if not isinstance(value, int) or value < 0 or value > 2**32:
        raise KRPCError(f"invalid {key.decode()}")
    return value


# -- encoding ---------------------------------------------------------------------------------
def encode_query(
    tid: bytes,
    method: str,
    args: dict[bytes, Any],
    *,
    read_only: bool = False,
    version: bytes | None = None,
) -> bytes:
    """A query; ``args`` must already contain our ``id``."""
    msg: dict[bytes, Any] = {b"t": tid, b"y": b"q", b"q": method.encode(), b"a": args}
    if read_only:
        msg[b"ro"] = 1
    if version is not None:
        msg[b"v"] = version
    return bencode.encode(msg)


def encode_response(
    tid: bytes,
    values: dict[bytes, Any],
    *,
    ip: tuple[str, int] | None = None,
    version: bytes | None = None,
) -> bytes:
    """A reply; ``ip`` is the requester's address as we see it (BEP 42)."""
    msg: dict[bytes, Any] = {b"t": tid, b"y": b"r", b"r": values}
    if ip is not None:
        msg[b"ip"] = encode_peer(*ip)
    if version is not None:
        msg[b"v"] = version
    return bencode.encode(msg)


def encode_error(tid: bytes, code: int, message: str) -> bytes:
    return bencode.encode({b"t": tid, b"y": b"e", b"e": [code, message.encode()]})
