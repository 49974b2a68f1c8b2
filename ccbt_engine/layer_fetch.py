"""Fetching a v2 torrent's piece layers from peers (BEP 52 hash requests), for magnet links.

A v2 info dict gives each file only its ``pieces root``; a .torrent file carries the piece
layers beside the info dict, but a magnet link gets only the info dict (``ut_metadata``). Until
the piece-layer hashes are known no piece of a multi-piece file can be checked, so the magnet
phase does not end at the info dict: :func:`fetch_piece_layers` asks the connected peers for
each file's piece layer in ranges of at most 512 hashes (as libtorrent does), verifies every
reply against the file's root through its uncle hashes, and only then hands the session a
:class:`~ccbt_engine.metainfo.TorrentInfo` with complete ``piece_layers`` (checked a second time
by :func:`~ccbt_engine.metainfo.parse_info_dict`). From there the torrent is the same as one
added from a .torrent file: pieces are checked by the usual v2 path, and the saved .torrent
copy carries the layers, so resume and export need no peers.

Why before the torrent exists rather than piece by piece inside it: every v2 check, resume file
and export would otherwise have to cope with "hash not known yet", for a phase that costs one
round trip per 512 pieces (a 64 GiB torrent with 4 MiB pieces: 32 requests).

Trust: a reply is stored only if its nodes and uncles hash up to the root we got from the
infohash-verified info dict, and it must be exactly the range we ask for (aligned, with a
proof reaching the root), so a hostile peer can neither poison a layer nor make us keep a
partial tree. A peer whose reply fails the proof is banned; rejects and silence only move the
range to another peer.

:class:`PieceLayerFetch` is the sans-I/O core (``now`` is passed in); :class:`LayerDriver` binds it
to a :class:`~ccbt_engine.magnet_fetch.MagnetTorrent`'s connections.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import Hashable
from dataclasses import dataclass
from typing import TYPE_CHECKING

from ccbt_engine import events as ev
from ccbt_engine.merkle import BLOCK_SIZE, next_pow2, tree_height, verify_range
from ccbt_engine.metainfo import MetainfoError, TorrentInfo, parse_info_dict
from ccbt_engine.protocol import wire
from ccbt_engine.protocol.hashes import (
    Hashes,
    HashReject,
    HashRequest,
    encode_hash_reject,
    encode_hash_request,
    parse_hash_message,
)
from ccbt_engine.protocol.wire import ProtocolError

if TYPE_CHECKING:
    from ccbt_engine.magnet_fetch import MagnetTorrent
    from ccbt_engine.net.peer import PeerConnection

__all__ = [
    "CHUNK",
    "MAX_PER_PEER",
    "REQUEST_TIMEOUT",
    "LayerDriver",
    "PieceLayerFetch",
    "fetch_piece_layers",
    "needs_piece_layers",
]

log = logging.getLogger(__name__)

#: Piece hashes per request: what libtorrent asks for and the most it accepts per reply.
CHUNK = 512
#: Outstanding requests per peer.
MAX_PER_PEER = 4
#: A request unanswered this long goes to another peer.
REQUEST_TIMEOUT = 15.0
#: A peer that rejected a range is asked for it again only after this long.
REFUSAL_TTL = 30.0

_Key = tuple[bytes, int]  # (pieces root, chunk number)


@dataclass(slots=True)
class _File:
    root: bytes
    num_pieces: int
    height: int
    hashes: list[bytes | None]
    missing: set[int]


def needs_piece_layers(info: TorrentInfo) -> bool:
    """Whether some file of ``info`` is larger than a piece and its layer is not known."""
    return any(
        f.pieces_root is not None
        and f.length > info.piece_length
        and f.pieces_root not in info.piece_layers
        for f in info.files
    )


class PieceLayerFetch:
    """Which piece-layer ranges are still missing, who was asked, and the verified hashes."""

    def __init__(self, info: TorrentInfo) -> None:
        self.piece_length = info.piece_length
        self.base = (info.piece_length // BLOCK_SIZE).bit_length() - 1
        self.files: dict[bytes, _File] = {}
        for f in info.files:
            root = f.pieces_root
            if root is None or f.length <= info.piece_length or root in self.files:
                continue
            if root in info.piece_layers:
                continue
            n = -(-f.length // info.piece_length)
            self.files[root] = _File(
                root=root,
                num_pieces=n,
                height=tree_height(-(-f.length // BLOCK_SIZE)),
                hashes=[None] * n,
                missing=set(range(-(-n // CHUNK))),
            )
        self.known = dict(info.piece_layers)
        self._inflight: dict[_Key, tuple[Hashable, float]] = {}
        self._refused: dict[tuple[Hashable, _Key], float] = {}
        self.bad_replies = 0

    @property
    def done(self) -> bool:
        return all(not f.missing for f in self.files.values())

    @property
    def progress(self) -> float:
        total = sum(-(-f.num_pieces // CHUNK) for f in self.files.values())
        left = sum(len(f.missing) for f in self.files.values())
        return 1.0 - left / total if total else 1.0

    def request_for(self, root: bytes, chunk: int) -> HashRequest:
        """The request for chunk ``chunk`` of the file ``root``: its piece hashes, full proof.

        The last chunk asks for the next power of two of what is left (pads included), as
        libtorrent does; the proof always reaches the root, the only node we trust.
        """
        f = self.files[root]
        index = chunk * CHUNK
        length = min(CHUNK, next_pow2(f.num_pieces - index))
        return HashRequest(root, self.base, index, length, f.height - self.base - 1)

    def next_request(self, peer: Hashable, now: float) -> HashRequest | None:
        """A range for ``peer`` to answer, or None (nothing left, or it has enough in flight)."""
        if sum(1 for p, _ in self._inflight.values() if p == peer) >= MAX_PER_PEER:
            return None
        for root, f in self.files.items():
            for chunk in sorted(f.missing):
                key = (root, chunk)
                if key in self._inflight:
                    continue
                refused = self._refused.get((peer, key))
                if refused is not None and now - refused < REFUSAL_TTL:
                    continue
                self._inflight[key] = (peer, now + REQUEST_TIMEOUT)
                return self.request_for(root, chunk)
        return None

    def on_hashes(self, peer: Hashable, msg: Hashes) -> bool:
        """Take a reply; False when it fails its proof (the peer lied: ban it).

        Replies that do not match a range we still need exactly (late duplicates, ranges we
        never ask for) are ignored rather than judged: nothing in them is stored.
        """
        req = msg.request
        f = self.files.get(req.pieces_root)
        if f is None or req.index % CHUNK:
            return True
        chunk = req.index // CHUNK
        if chunk not in f.missing or req != self.request_for(f.root, chunk):
            return True
        owner = self._inflight.get((f.root, chunk))
        if owner is not None and owner[0] == peer:
            del self._inflight[(f.root, chunk)]
        if not verify_range(f.root, f.height, req.base, req.index, msg.nodes, msg.uncles):
            self.bad_replies += 1
            return False
        real = min(req.length, f.num_pieces - req.index)
        f.hashes[req.index : req.index + real] = msg.nodes[:real]
        f.missing.discard(chunk)
        return True

    def on_reject(self, peer: Hashable, msg: HashReject, now: float) -> None:
        req = msg.request
        if req.pieces_root not in self.files or req.index % CHUNK:
            return
        key = (req.pieces_root, req.index // CHUNK)
        owner = self._inflight.get(key)
        if owner is not None and owner[0] == peer:
            del self._inflight[key]
            self._refused[(peer, key)] = now

    def peer_gone(self, peer: Hashable) -> None:
        for key, (p, _) in list(self._inflight.items()):
            if p == peer:
                del self._inflight[key]
        for k in [k for k in self._refused if k[0] == peer]:
            del self._refused[k]

    def expire(self, now: float) -> None:
        """Return timed-out ranges to the pool (the silent peer is asked last for them)."""
        for key, (peer, deadline) in list(self._inflight.items()):
            if now >= deadline:
                del self._inflight[key]
                self._refused[(peer, key)] = now

    def piece_layers(self) -> dict[bytes, bytes]:
        """Every file's complete layer (root -> concatenated hashes); call when :attr:`done`."""
        out = dict(self.known)
        for root, f in self.files.items():
            if f.missing or any(h is None for h in f.hashes):
                raise ValueError("piece layers are not complete")
            out[root] = b"".join(h for h in f.hashes if h is not None)
        return out


class LayerDriver:
    """Binds a :class:`PieceLayerFetch` to a magnet's metadata connections."""

    def __init__(self, magnet: MagnetTorrent, fetch: PieceLayerFetch) -> None:
        self.magnet = magnet
        self.fetch = fetch
        self.progress = asyncio.Event()

    def pump(self, now: float) -> None:
        self.fetch.expire(now)
        for conn in list(self.magnet.peers):
            self._ask(conn, now)

    def _ask(self, conn: PeerConnection, now: float) -> None:
        while not conn.closed and (req := self.fetch.next_request(conn, now)) is not None:
            conn.send(encode_hash_request(req))

    def on_message(self, conn: PeerConnection, event: wire.HashTransfer) -> None:
        try:
            msg = parse_hash_message(event.msg_id, event.payload)
        except ProtocolError as exc:
            conn.close(f"bad hash message: {exc}")
            return
        now = time.monotonic()
        if isinstance(msg, HashRequest):
            conn.send(encode_hash_reject(msg))  # we have no hashes to give yet
            return
        if isinstance(msg, HashReject):
            self.fetch.on_reject(conn, msg, now)
        elif not self.fetch.on_hashes(conn, msg):
            self._ban(conn, "piece-layer hashes that fail their merkle proof")
            return
        self.progress.set()
        self._ask(conn, now)

    def on_peer_closed(self, conn: PeerConnection) -> None:
        self.fetch.peer_gone(conn)
        self.progress.set()

    def _ban(self, conn: PeerConnection, reason: str) -> None:
        m = self.magnet
        m.banned.add(conn.address)
        log.warning("%s: banning %s: %s", m.name, conn.address_text, reason)
        m.core.events.publish(
            ev.PeerBanned(info_hash=m.info_hash_hex, address=conn.address_text, reason=reason)
        )
        conn.close(f"banned: {reason}")
        self.progress.set()


async def fetch_piece_layers(
    magnet: MagnetTorrent, raw: bytes, info: TorrentInfo
) -> TorrentInfo | None:
    """``info`` with every piece layer, fetched from ``magnet``'s peers and verified.

    Runs while the magnet keeps finding and connecting peers; returns None when the magnet
    failed meanwhile (it has already said why). A pause cancels it; the verified info dict is
    kept on the magnet and ``resume()`` starts the fetch again from it.
    """
    if not needs_piece_layers(info):
        return info
    fetch = PieceLayerFetch(info)
    driver = LayerDriver(magnet, fetch)
    magnet.layer_fetch = driver
    # the magnet phase stays open (peers keep being found and connected) until the layers are in
    magnet._finishing = False
    finishing = True
    try:
        while not fetch.done:
            if magnet.error is not None:
                return None
            driver.pump(time.monotonic())
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(driver.progress.wait(), 0.5)
            driver.progress.clear()
    except asyncio.CancelledError:
        # paused or closed: the verified info dict is kept, resume() starts the fetch again
        magnet.metadata_raw = raw
        finishing = False
        raise
    finally:
        magnet.layer_fetch = None
        magnet._finishing = finishing
    loop = asyncio.get_running_loop()
    try:
        return await loop.run_in_executor(
            magnet.core.executor, parse_info_dict, raw, fetch.piece_layers()
        )
    except MetainfoError as exc:  # cannot happen for verified layers; never trust that blindly
        magnet._fail(f"the fetched piece layers do not fit the metadata: {exc}")
        return None
