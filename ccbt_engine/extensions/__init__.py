"""BEP 10 extensions as small per-torrent plugins (ut_metadata, ut_pex, lt_donthave, …).

Why a registry: the torrent's wire logic should not grow a branch per extension. Each extension
is an :class:`Extension` object that names itself, contributes fields to our extension handshake
(``metadata_size``) and reacts to four things: a peer's handshake, a message for it, a periodic
tick and a peer leaving. :class:`ExtensionManager` owns the per-connection id bookkeeping (our
ids are fixed, the peer's ids come from its handshakes, BEP 10 updates are additive and id 0
disables), so extensions only ever say "send this payload as ut_pex to that peer".

The manager serves two hosts: a :class:`~ccbt_engine.torrent.Torrent` and the metadata phase of a
magnet link (:mod:`ccbt_engine.magnet_fetch`), which has peers but no info dictionary yet.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, ClassVar, Protocol

from ccbt_engine.protocol import wire
from ccbt_engine.protocol.extension import DEFAULT_LOCAL_EXTENSIONS, ExtensionHandshake

if TYPE_CHECKING:
    from ccbt_engine.net.peer import PeerConnection

__all__ = ["ExtPeer", "Extension", "ExtensionHost", "ExtensionManager"]


class ExtensionHost(Protocol):
    """What an extension may ask of the torrent (or magnet) it belongs to."""

    info_hash: bytes

    def add_peers(self, addresses: Sequence[tuple[str, int]], source: str) -> None: ...


@dataclass(eq=False)
class ExtPeer:
    """One connection as the extensions see it: its extension ids and what it told us."""

    conn: PeerConnection
    #: the peer's extension name -> the id it wants to receive that extension under
    remote: dict[str, int] = field(default_factory=dict)
    handshake: ExtensionHandshake | None = None
    #: per-extension scratch space (e.g. PEX remembers what it already told this peer)
    data: dict[str, Any] = field(default_factory=dict)

    def supports(self, name: str) -> bool:
        return name in self.remote

    @property
    def listen_address(self) -> tuple[str, int] | None:
        """Where this peer accepts connections: the address we dialled, or its announced port.

        An incoming peer's source port is ephemeral; only its handshake's ``p`` makes it
        reachable, and only reachable peers are worth telling others about (PEX).
        """
        host, port = self.conn.address
        if self.conn.outgoing:
            return (host, port)
        hs = self.handshake
        if hs is not None and hs.listen_port:
            return (host, hs.listen_port)
        return None

    @property
    def upload_only(self) -> bool:
        return self.handshake is not None and self.handshake.upload_only


class Extension:
    """Base class: override what the extension needs; every hook defaults to doing nothing.

    ``on_message`` may raise :class:`~ccbt_engine.protocol.wire.ProtocolError` for a malformed
    message: the connection then closes, like for any other wire violation.
    """

    #: the name announced in ``m`` (e.g. "ut_pex")
    name: ClassVar[str]
    manager: ExtensionManager

    def handshake_fields(self) -> dict[str, Any]:
        """Fields of our extension handshake this extension sets (e.g. ``metadata_size``)."""
        return {}

    def on_handshake(self, peer: ExtPeer) -> None:
        """The peer sent an extension handshake (the first, or an update)."""

    def on_message(self, peer: ExtPeer, payload: bytes) -> None:
        """The peer sent a message for this extension."""

    def on_tick(self, now: float) -> None:
        """Called about once a second with the monotonic clock."""

    def on_peer_closed(self, peer: ExtPeer) -> None:
        """The connection is gone; drop what is kept about the peer."""


class ExtensionManager:
    """The extensions of one torrent and the extension state of each of its connections."""

    def __init__(self, host: ExtensionHost) -> None:
        self.host = host
        self._by_name: dict[str, Extension] = {}
        self._local_ids: dict[str, int] = {}
        self._by_local_id: dict[int, Extension] = {}
        self._peers: dict[PeerConnection, ExtPeer] = {}
        #: called after every peer handshake, for host bookkeeping that is not an extension
        self.handshake_hooks: list[Callable[[ExtPeer], None]] = []

    # -- registry -------------------------------------------------------------------------
    def register(self, ext: Extension) -> None:
        """Add ``ext`` under its well-known id (DEFAULT_LOCAL_EXTENSIONS) or the next free one."""
        if ext.name in self._by_name:
            raise ValueError(f"extension {ext.name!r} registered twice")
        ext_id = DEFAULT_LOCAL_EXTENSIONS.get(ext.name)
        if ext_id is None or ext_id in self._by_local_id:
            used = set(self._by_local_id) | set(DEFAULT_LOCAL_EXTENSIONS.values())
            ext_id = next(i for i in range(1, 256) if i not in used)
        ext.manager = self
        self._by_name[ext.name] = ext
        self._local_ids[ext.name] = ext_id
        self._by_local_id[ext_id] = ext

    def get(self, name: str) -> Extension | None:
        return self._by_name.get(name)

    def local_ids(self) -> dict[str, int]:
        """Our ``m`` dictionary: name -> the id we want to receive it under."""
        return dict(self._local_ids)

    def handshake_fields(self) -> dict[str, Any]:
        fields: dict[str, Any] = {}
        for ext in self._by_name.values():
            fields.update(ext.handshake_fields())
        return fields

    def handshake(self, **fields: Any) -> ExtensionHandshake:
        """Our extension handshake: ``m`` plus the extensions' fields plus ``fields``."""
        return ExtensionHandshake(m=self.local_ids(), **{**self.handshake_fields(), **fields})

    # -- peers ----------------------------------------------------------------------------
    def peer(self, conn: PeerConnection) -> ExtPeer | None:
        return self._peers.get(conn)

    def peers(self) -> Iterator[ExtPeer]:
        return iter(list(self._peers.values()))

    def peer_list(self) -> list[ExtPeer]:
        """Peers that sent an extension handshake (a snapshot)."""
        return list(self._peers.values())

    def on_handshake(self, conn: PeerConnection, hs: ExtensionHandshake) -> None:
        peer = self._peers.get(conn)
        if peer is None:
            peer = self._peers[conn] = ExtPeer(conn)
        for name, ext_id in hs.m.items():
            if ext_id == 0:
                peer.remote.pop(name, None)
            else:
                peer.remote[name] = ext_id
        if peer.handshake is None:
            peer.handshake = hs
        else:  # an update: keep what the first handshake said unless it is said again
            old = peer.handshake
            peer.handshake = ExtensionHandshake(
                m=dict(peer.remote),
                client=hs.client or old.client,
                listen_port=hs.listen_port or old.listen_port,
                yourip=hs.yourip or old.yourip,
                reqq=hs.reqq or old.reqq,
                metadata_size=hs.metadata_size or old.metadata_size,
                ipv4=hs.ipv4 or old.ipv4,
                ipv6=hs.ipv6 or old.ipv6,
                upload_only=hs.upload_only,
                extra={**old.extra, **hs.extra},
            )
        for hook in self.handshake_hooks:
            hook(peer)
        for ext in list(self._by_name.values()):
            ext.on_handshake(peer)

    def on_message(self, conn: PeerConnection, ext_id: int, payload: bytes) -> None:
        """Dispatch an extended message (id = one of *our* ids); unknown ids are ignored."""
        ext = self._by_local_id.get(ext_id)
        peer = self._peers.get(conn)
        if ext is None or peer is None:
            return
        ext.on_message(peer, payload)

    def on_tick(self, now: float) -> None:
        for ext in list(self._by_name.values()):
            ext.on_tick(now)

    def on_peer_closed(self, conn: PeerConnection) -> None:
        peer = self._peers.pop(conn, None)
        if peer is None:
            return
        for ext in list(self._by_name.values()):
            ext.on_peer_closed(peer)

    def send(self, peer: ExtPeer, name: str, payload: bytes) -> bool:
        """Send ``payload`` as extension ``name``; False when the peer does not support it."""
        ext_id = peer.remote.get(name)
        if ext_id is None or peer.conn.closed:
            return False
        peer.conn.send(wire.encode_extended(ext_id, payload))
        return True
