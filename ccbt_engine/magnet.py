"""Magnet URIs (BEP 9, BEP 52 ``btmh``, BEP 53 ``so``): parse and build.

A magnet link arrives from a web page, the clipboard or the OS's URL handler, so it is untrusted:
its length is bounded, every value is checked, and only :class:`MagnetError` escapes
:func:`parse_magnet` (property-tested). Values that are hints only (``x.pe`` peer
addresses, ``tr`` and ``ws`` URLs with control characters) are skipped when malformed; values
that change *what* is downloaded (``xt``, ``so``, ``xl``) make the whole link an error, because
guessing there could fetch the wrong thing.

``+`` in a value reads as a space, as in HTML forms and libtorrent; :meth:`Magnet.to_uri`
percent-encodes everything but unreserved characters, so a round trip is exact.
"""

from __future__ import annotations

import base64
import binascii
import ipaddress
from dataclasses import dataclass, field
from typing import TYPE_CHECKING
from urllib.parse import quote, unquote_plus

if TYPE_CHECKING:
    from ccbt_engine.metainfo import Metainfo

__all__ = [
    "MAX_MAGNET_LENGTH",
    "Magnet",
    "MagnetError",
    "magnet_from_metainfo",
    "parse_magnet",
]

#: Longest URI accepted (a magnet with hundreds of trackers is still far below this).
MAX_MAGNET_LENGTH = 64 * 1024
#: Most file indices a ``so`` parameter may select once ranges are expanded (= MAX_FILES).
MAX_SELECTED = 1_000_000
_BTIH = "urn:btih:"
_BTMH = "urn:btmh:"
#: multihash prefix of a 32-byte SHA2-256 digest
_SHA256_MULTIHASH = "1220"


class MagnetError(ValueError):
    """A magnet URI that is malformed, unsupported or out of bounds."""


@dataclass(slots=True)
class Magnet:
    """What a magnet link says: which torrent, and hints for finding it."""

    #: SHA-1 infohash (20 bytes) from ``urn:btih``
    info_hash_v1: bytes | None = None
    #: SHA-256 infohash (32 bytes) from ``urn:btmh:1220…``
    info_hash_v2: bytes | None = None
    display_name: str | None = None
    #: ``tr`` URLs in the order given (duplicates dropped)
    trackers: list[str] = field(default_factory=list)
    #: ``ws`` web seeds (BEP 19)
    web_seeds: list[str] = field(default_factory=list)
    #: ``x.pe`` peers as (host, port); IPv6 hosts without brackets
    peers: list[tuple[str, int]] = field(default_factory=list)
    #: BEP 53 ``so``: sorted file indices to download (empty: all files)
    select_only: list[int] = field(default_factory=list)
    #: ``xl``: total size in bytes, if given
    exact_length: int | None = None

    @property
    def info_hash(self) -> bytes:
        """The 20-byte hash used on the wire: v1, else the v2 hash truncated (BEP 52)."""
        if self.info_hash_v1 is not None:
            return self.info_hash_v1
        if self.info_hash_v2 is not None:
            return self.info_hash_v2[:20]
        raise MagnetError("magnet has no infohash")

    def to_uri(self) -> str:
        """Build the URI: ``xt`` first, then ``dn``, ``xl``, ``tr``, ``ws``, ``x.pe``, ``so``."""
        if self.info_hash_v1 is None and self.info_hash_v2 is None:
            raise MagnetError("magnet has no infohash")
        params: list[str] = []
        if self.info_hash_v1 is not None:
            params.append(f"xt={_BTIH}{self.info_hash_v1.hex()}")
        if self.info_hash_v2 is not None:
            params.append(f"xt={_BTMH}{_SHA256_MULTIHASH}{self.info_hash_v2.hex()}")
        if self.display_name is not None:
            params.append(f"dn={_q(self.display_name)}")
        if self.exact_length is not None:
            params.append(f"xl={self.exact_length}")
        params.extend(f"tr={_q(t)}" for t in self.trackers)
        params.extend(f"ws={_q(w)}" for w in self.web_seeds)
        params.extend(f"x.pe={quote(_format_peer(h, p), safe='[]:')}" for h, p in self.peers)
        if self.select_only:
            params.append(f"so={_format_ranges(self.select_only)}")
        return "magnet:?" + "&".join(params)


def _q(s: str) -> str:
    return quote(s, safe="", errors="replace")


def parse_magnet(uri: str) -> Magnet:
    """Parse a magnet URI; raises :class:`MagnetError` for anything malformed."""
    if not isinstance(uri, str):
        raise MagnetError(f"magnet link must be a string, not {type(uri).__name__}")
    if len(uri) > MAX_MAGNET_LENGTH:
        raise MagnetError(f"magnet link longer than {MAX_MAGNET_LENGTH} characters")
    uri = uri.strip()
    if uri[:8].lower() != "magnet:?":
        raise MagnetError("not a magnet link (must start with 'magnet:?')")
    m = Magnet()
    for item in uri[8:].split("&"):
        if not item:
            continue
        key, sep, raw = item.partition("=")
        if not sep:
            continue
        # BEP 9 allows numbered keys (tr.1, xt.2); x.pe is a name of its own
        key = key.lower()
        if key != "x.pe":
            key = key.split(".", 1)[0]
        # invalid UTF-8 escapes and lone surrogates become replacement characters, so every
        # parsed value can be encoded again by to_uri()
        value = unquote_plus(raw, errors="replace").encode("utf-8", "replace").decode("utf-8")
        _apply(m, key, value)
    if m.info_hash_v1 is None and m.info_hash_v2 is None:
        raise MagnetError("magnet link has no BitTorrent infohash (xt=urn:btih:… or urn:btmh:…)")
    return m


def _apply(m: Magnet, key: str, value: str) -> None:
    if key == "xt":
        _apply_xt(m, value)
    elif key == "dn":
        if m.display_name is None:
            m.display_name = value
    elif key == "tr":
        if _is_url(value) and value not in m.trackers:
            m.trackers.append(value)
    elif key == "ws":
        if _is_url(value) and value not in m.web_seeds:
            m.web_seeds.append(value)
    elif key == "x.pe":
        peer = _parse_peer(value)
        if peer is not None and peer not in m.peers:
            m.peers.append(peer)
    elif key == "so":
        m.select_only = _parse_ranges(value)
    elif key == "xl":
        if not value.isascii() or not value.isdigit() or len(value) > 20:
            raise MagnetError(f"invalid exact length xl={value[:40]!r}")
        m.exact_length = int(value)


def _is_url(value: str) -> bool:
    """Worth keeping as a tracker or web seed: not empty, no control characters.

    A ``%0d%0a`` in a tracker URL would otherwise let a link inject HTTP headers.
    """
    return bool(value) and not any(ord(c) < 0x20 or ord(c) == 0x7F for c in value)


def _apply_xt(m: Magnet, value: str) -> None:
    low = value.lower()
    if low.startswith(_BTIH):
        digest = _parse_btih(value[len(_BTIH) :])
        if m.info_hash_v1 is not None and m.info_hash_v1 != digest:
            raise MagnetError("magnet link has two different btih infohashes")
        m.info_hash_v1 = digest
    elif low.startswith(_BTMH):
        digest = _parse_btmh(value[len(_BTMH) :])
        if m.info_hash_v2 is not None and m.info_hash_v2 != digest:
            raise MagnetError("magnet link has two different btmh infohashes")
        m.info_hash_v2 = digest
    # other URNs (ed2k, sha1 of a single file …) are not ours: ignore them


def _hex(s: str, size: int, what: str) -> bytes:
    if len(s) != 2 * size or not s.isascii():
        raise MagnetError(f"{what} must be {2 * size} hex digits")
    try:
        return bytes.fromhex(s)
    except ValueError as exc:
        raise MagnetError(f"{what} is not hexadecimal") from exc


def _parse_btih(s: str) -> bytes:
    """A v1 infohash: 40 hex digits, or 32 base32 characters (older links)."""
    if len(s) == 32 and s.isascii():
        try:
            return base64.b32decode(s.upper())
        except (binascii.Error, ValueError) as exc:
            raise MagnetError("btih infohash is not valid base32") from exc
    return _hex(s, 20, "btih infohash")


def _parse_btmh(s: str) -> bytes:
    """A v2 infohash as a multihash: ``1220`` (SHA2-256, 32 bytes) then 64 hex digits."""
    if not s.lower().startswith(_SHA256_MULTIHASH):
        raise MagnetError("btmh infohash is not a SHA2-256 multihash (1220…)")
    return _hex(s[len(_SHA256_MULTIHASH) :], 32, "btmh infohash")


def _parse_port(s: str) -> int | None:
    if not s.isascii() or not s.isdigit() or len(s) > 5:
        return None
    port = int(s)
    return port if 0 < port < 65536 else None


def _parse_peer(value: str) -> tuple[str, int] | None:
    """``host:port`` or ``[v6]:port``; None (skipped) when malformed."""
    if value.startswith("["):
        host, sep, rest = value[1:].partition("]")
        if not sep or not rest.startswith(":"):
            return None
        try:
            ipaddress.IPv6Address(host)
        except ValueError:
            return None
        port = _parse_port(rest[1:])
        return (host, port) if port is not None else None
    host, sep, port_s = value.rpartition(":")
    if not sep or not host or ":" in host or len(host) > 253:
        return None
    if any(not (c.isascii() and (c.isalnum() or c in "-._")) for c in host):
        return None
    port = _parse_port(port_s)
    return (host, port) if port is not None else None


def _format_peer(host: str, port: int) -> str:
    return f"[{host}]:{port}" if ":" in host else f"{host}:{port}"


def _parse_ranges(value: str) -> list[int]:
    """BEP 53 ``so=0,2,4-6`` → ``[0, 2, 4, 5, 6]`` (sorted, without duplicates)."""
    selected: set[int] = set()
    for part in value.split(","):
        part = part.strip()
        if not part:
            continue
        lo_s, dash, hi_s = part.partition("-")
        lo = _index(lo_s)
        hi = _index(hi_s) if dash else lo
        if hi < lo:
            raise MagnetError(f"so range {part!r} runs backwards")
        if hi - lo + 1 + len(selected) > MAX_SELECTED:
            raise MagnetError(f"so selects more than {MAX_SELECTED} files")
        selected.update(range(lo, hi + 1))
    return sorted(selected)


def _index(s: str) -> int:
    s = s.strip()
    if not s.isascii() or not s.isdigit() or len(s) > 7:
        raise MagnetError(f"invalid file index {s[:20]!r} in so")
    return int(s)


def _format_ranges(indices: list[int]) -> str:
    """Inverse of :func:`_parse_ranges`: runs of consecutive indices become ``a-b``."""
    parts: list[str] = []
    ordered = sorted(set(indices))
    i = 0
    while i < len(ordered):
        j = i
        while j + 1 < len(ordered) and ordered[j + 1] == ordered[j] + 1:
            j += 1
        parts.append(str(ordered[i]) if i == j else f"{ordered[i]}-{ordered[j]}")
        i = j + 1
    return ",".join(parts)


def magnet_from_metainfo(m: Metainfo) -> Magnet:
    """The magnet link that finds this torrent: both hashes, name, size, trackers, web seeds."""
    info = m.info
    return Magnet(
        info_hash_v1=info.info_hash_v1,
        info_hash_v2=info.info_hash_v2,
        display_name=info.name,
        trackers=list(dict.fromkeys(url for tier in m.trackers for url in tier)),
        web_seeds=list(m.web_seeds),
        exact_length=sum(f.length for f in info.files if not f.is_pad),
    )
