"""BEP 10 extension protocol: the extension handshake and the name ↔ message-id registry.

Each side announces, in a bencoded dictionary sent as extended message 0, which extensions it
speaks and under which message id it wants to *receive* them (``m``). So an incoming extended
message carries one of *our* ids (look it up with :meth:`ExtensionRegistry.local_name`), and an
outgoing one must carry the *peer's* id for that extension (:meth:`ExtensionRegistry.remote_id`).

The handshake comes from an untrusted peer: :func:`decode_extension_handshake` bounds its size
and depth, tolerates keys it does not know (they are kept in ``extra``), and raises
:class:`~ccbt_engine.protocol.wire.ProtocolError` when a key it knows has the wrong type or an
impossible value.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any, Final

from ccbt_engine.bencode import BencodeError, decode, encode
from ccbt_engine.protocol.wire import ProtocolError

__all__ = [
    "DEFAULT_LOCAL_EXTENSIONS",
    "HANDSHAKE_EXT_ID",
    "MAX_HANDSHAKE_LEN",
    "ExtensionHandshake",
    "ExtensionRegistry",
    "decode_extension_handshake",
    "encode_extension_handshake",
]

#: Extended message id of the extension handshake itself.
HANDSHAKE_EXT_ID: Final = 0
#: Largest extension handshake accepted. Real ones are a few hundred bytes.
MAX_HANDSHAKE_LEN: Final = 64 * 1024
#: The ids under which we ask peers to send us each extension.
DEFAULT_LOCAL_EXTENSIONS: Final[Mapping[str, int]] = {
    "ut_metadata": 1,
    "ut_pex": 2,
    "lt_donthave": 3,
}
_MAX_DEPTH: Final = 8

_KNOWN_KEYS: Final = frozenset(
    {
        b"m",
        b"v",
        b"p",
        b"yourip",
        b"reqq",
        b"metadata_size",
        b"ipv4",
        b"ipv6",
        b"upload_only",
    }
)


@dataclass
class ExtensionHandshake:
    """The contents of a BEP 10 handshake (ours to send, or the peer's as received).

    ``m`` maps extension names to message ids; id 0 means "disabled". ``extra`` holds keys this
    module does not interpret (raw bencode values), so plugins and newer extensions can read them.
    """

    m: dict[str, int] = field(default_factory=dict)
    #: ``v``: client name and version, for display only
    client: str | None = None
    #: ``p``: the port the sender listens on
    listen_port: int | None = None
    #: ``yourip``: the address the sender sees us at (4 or 16 bytes)
    yourip: bytes | None = None
    #: ``reqq``: how many outstanding requests the sender queues
    reqq: int | None = None
    #: ``metadata_size`` (BEP 9): the info dictionary's size, when the sender has it
    metadata_size: int | None = None
    #: ``ipv4`` / ``ipv6``: the sender's own addresses
    ipv4: bytes | None = None
    ipv6: bytes | None = None
    #: ``upload_only`` (BEP 21): the sender is a seed or a partial seed
    upload_only: bool = False
    extra: dict[bytes, Any] = field(default_factory=dict)


def encode_extension_handshake(hs: ExtensionHandshake) -> bytes:
    """The bencoded payload of extended message 0 for ``hs``."""
    clash = _KNOWN_KEYS.intersection(hs.extra)
    if clash:
        raise ValueError(f"extra repeats keys set by fields: {sorted(clash)!r}")
    out: dict[bytes, Any] = dict(hs.extra)
    out[b"m"] = {name.encode("utf-8"): ext_id for name, ext_id in hs.m.items()}
    if hs.client is not None:
        out[b"v"] = hs.client.encode("utf-8")
    if hs.listen_port is not None:
        out[b"p"] = hs.listen_port
    if hs.yourip is not None:
        out[b"yourip"] = hs.yourip
    if hs.reqq is not None:
        out[b"reqq"] = hs.reqq
    if hs.metadata_size is not None:
        out[b"metadata_size"] = hs.metadata_size
    if hs.ipv4 is not None:
        out[b"ipv4"] = hs.ipv4
    if hs.ipv6 is not None:
        out[b"ipv6"] = hs.ipv6
    if hs.upload_only:
        out[b"upload_only"] = 1
    return encode(out)


def _int(d: dict[bytes, Any], key: bytes, lo: int, hi: int) -> int | None:
    value = d.get(key)
    if value is None:
        return None
    if not isinstance(value, int) or not lo <= value <= hi:
        raise ProtocolError(f"extension handshake: {key.decode()} must be an integer in {lo}..{hi}")
    return value


def _bytes(d: dict[bytes, Any], key: bytes, sizes: tuple[int, ...]) -> bytes | None:
    value = d.get(key)
    if value is None:
        return None
    if not isinstance(value, bytes) or len(value) not in sizes:
        raise ProtocolError(f"extension handshake: {key.decode()} must be {sizes} bytes")
    return value


def decode_extension_handshake(payload: bytes) -> ExtensionHandshake:
    """Parse the payload of a peer's extended message 0.

    Raises :class:`ProtocolError` for anything malformed; no other exception escapes.
    """
    if len(payload) > MAX_HANDSHAKE_LEN:
        raise ProtocolError(f"extension handshake of {len(payload)} bytes is too large")
    try:
        # Unsorted keys are common in the wild (e.g. some clients put "m" first); accept them.
        d = decode(payload, strict=False, max_depth=_MAX_DEPTH)
    except BencodeError as exc:
        raise ProtocolError(f"extension handshake is not valid bencode: {exc}") from exc
    if not isinstance(d, dict):
        raise ProtocolError("extension handshake is not a dictionary")

    m: dict[str, int] = {}
    raw_m = d.get(b"m", {})
    if not isinstance(raw_m, dict):
        raise ProtocolError("extension handshake: m must be a dictionary")
    for raw_name, ext_id in raw_m.items():
        if not isinstance(ext_id, int) or not 0 <= ext_id <= 255:
            raise ProtocolError(f"extension handshake: bad id for {raw_name[:40]!r}")
        try:
            name = raw_name.decode("utf-8")
        except UnicodeDecodeError:
            continue  # cannot be an extension we know; ignore it like any unknown one
        m[name] = ext_id

    client: str | None = None
    raw_v = d.get(b"v")
    if raw_v is not None:
        if not isinstance(raw_v, bytes):
            raise ProtocolError("extension handshake: v must be a string")
        client = raw_v[:256].decode("utf-8", errors="replace")

    metadata_size = _int(d, b"metadata_size", 0, 2**63 - 1)
    return ExtensionHandshake(
        m=m,
        client=client,
        # p=0 ("not listening") carries no address to connect back to; read it as absent.
        listen_port=_int(d, b"p", 0, 65535) or None,
        yourip=_bytes(d, b"yourip", (4, 16)),
        reqq=_int(d, b"reqq", 0, 2**31 - 1),
        # 0 says nothing useful (libtorrent never sends it; some clients do before they have
        # the metadata), so it reads as "unknown" rather than failing the connection.
        metadata_size=metadata_size or None,
        ipv4=_bytes(d, b"ipv4", (4,)),
        ipv6=_bytes(d, b"ipv6", (16,)),
        upload_only=bool(_int(d, b"upload_only", -(2**63), 2**63 - 1)),
        extra={k: v for k, v in d.items() if k not in _KNOWN_KEYS},
    )


class ExtensionRegistry:
    """Which extended message ids mean what, in each direction, on one connection.

    ``local``: our name → id map, announced in our handshake (defaults to
    :data:`DEFAULT_LOCAL_EXTENSIONS`). The peer's ids are learned from its handshakes; per BEP 10
    a later handshake only lists changes, and id 0 disables an extension.
    """

    def __init__(self, local: Mapping[str, int] | None = None) -> None:
        local = dict(DEFAULT_LOCAL_EXTENSIONS if local is None else local)
        ids = list(local.values())
        if any(not 1 <= i <= 255 for i in ids) or len(set(ids)) != len(ids):
            raise ValueError("local extension ids must be unique and in 1..255")
        self._local: dict[str, int] = local
        self._by_id: dict[int, str] = {i: name for name, i in local.items()}
        self._remote: dict[str, int] = {}

    @property
    def local(self) -> dict[str, int]:
        return dict(self._local)

    @property
    def remote(self) -> dict[str, int]:
        """The peer's enabled extensions and their ids."""
        return dict(self._remote)

    def local_id(self, name: str) -> int | None:
        return self._local.get(name)

    def local_name(self, ext_id: int) -> str | None:
        """The extension an incoming extended message with ``ext_id`` belongs to."""
        return self._by_id.get(ext_id)

    def remote_id(self, name: str) -> int | None:
        """The id to send ``name`` messages with, or None if the peer does not (or no longer)
        support it."""
        return self._remote.get(name)

    def update_remote(self, hs: ExtensionHandshake) -> None:
        """Apply a peer handshake's ``m``: additive, and id 0 disables."""
        for name, ext_id in hs.m.items():
            if ext_id == 0:
                self._remote.pop(name, None)
            else:
                self._remote[name] = ext_id

    def handshake(self, **fields: Any) -> ExtensionHandshake:
        """Our handshake announcing :attr:`local`; ``fields`` fill the other handshake fields."""
        return ExtensionHandshake(m=dict(self._local), **fields)
