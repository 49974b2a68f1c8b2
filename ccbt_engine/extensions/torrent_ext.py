"""The extensions a :class:`~ccbt_engine.torrent.Torrent` speaks, wired to its state.

Kept out of ``torrent.py`` so the torrent only needs four one-line hooks (greeting, extended
message, tick, peer closed) whatever extensions exist.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from ccbt_engine.extensions import ExtensionManager, ExtPeer
from ccbt_engine.extensions.donthave import DontHaveError, LtDontHave
from ccbt_engine.extensions.metadata import UtMetadata
from ccbt_engine.extensions.pex import UtPex

if TYPE_CHECKING:
    from ccbt_engine.torrent import Torrent

__all__ = ["torrent_extensions"]


def torrent_extensions(torrent: Torrent) -> ExtensionManager:
    """ut_metadata (serving our info dict), ut_pex (unless private or disabled), lt_donthave."""
    manager = ExtensionManager(torrent)
    manager.register(UtMetadata(torrent.info.raw_info))
    # BEP 27: a private torrent's peers come from its tracker only
    if torrent.session.settings.network.enable_pex and not torrent.info.private:
        manager.register(UtPex(is_seed=lambda peer: _is_seed(torrent, peer)))
    manager.register(LtDontHave(lambda peer, piece: _on_donthave(torrent, peer, piece)))
    manager.handshake_hooks.append(lambda peer: _remember_listen_address(torrent, peer))
    return manager


def _remember_listen_address(torrent: Torrent, peer: ExtPeer) -> None:
    """An incoming peer's announced listen address is the one PEX, LSD and trackers will name:
    mark it known so that we do not dial a second connection to a peer we already have."""
    addr = peer.listen_address
    if addr is not None:
        torrent.known_peers.add(addr)


def _is_seed(torrent: Torrent, peer: ExtPeer) -> bool:
    ps = torrent.peers.get(peer.conn)
    return ps is not None and ps.is_seed


def _on_donthave(torrent: Torrent, peer: ExtPeer, piece: int) -> None:
    """Take ``piece`` out of the peer's bitfield and the picker's availability; requests we had
    out to it for that piece will not be served, so hand them back to the picker now."""
    if not 0 <= piece < torrent.info.num_pieces:
        raise DontHaveError(f"lt_donthave for piece {piece} out of range")
    ps = torrent.peers.get(peer.conn)
    if ps is None or not ps.bitfield[piece]:
        return
    bf = ps.bitfield.copy()
    bf.clear(piece)
    ps.bitfield = bf
    torrent.picker.peer_bitfield(ps.conn, bf)
    for key in [k for k in ps.requests if k[0] == piece]:
        del ps.requests[key]
        torrent.picker.abort_request(ps.conn, *key)
    torrent._update_interest(ps)
    torrent._fill_requests(ps)
