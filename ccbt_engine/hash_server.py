"""Answering BEP 52 hash requests from a torrent's piece layers (the seeding side).

A peer that joined a v2 (or hybrid) torrent through a magnet link gets the info dict over
``ut_metadata`` but not the piece layers; it asks for them with ``hash request`` messages and
cannot check a single piece until someone answers. This module answers from the piece layers
the .torrent carried: each reply is the requested range plus the uncle hashes proving it
against the file's ``pieces root``.

Everything a request names is untrusted: an unknown root, a layer other than the piece layer
(lower layers would need the file data hashed again), a range outside the tree, a length that
is not an aligned power of two or is over :data:`~ccbt_engine.protocol.hashes.MAX_HASH_COUNT`,
or proof layers reaching the root, all get a ``hash reject`` (id 23), never a dropped
connection: the request was well formed, we just will not serve it. Only malformed framing
(``ProtocolError`` from the parser) ends the connection.

Each file's tree is built once, in the executor (two hashes per piece), and cached; requests
arriving meanwhile wait, a bounded number of them.
"""

from __future__ import annotations

import asyncio
import logging
from concurrent.futures import Executor
from typing import Protocol

from ccbt_engine.merkle import HASH_SIZE, FileTree
from ccbt_engine.metainfo import TorrentInfo
from ccbt_engine.protocol import wire
from ccbt_engine.protocol.hashes import (
    MAX_HASH_COUNT,
    HashRequest,
    encode_hash_reject,
    encode_hashes,
    parse_hash_message,
)

__all__ = ["MAX_WAITING", "HashServer"]

log = logging.getLogger(__name__)

#: Requests held while a file's tree is being built (beyond that they are rejected).
MAX_WAITING = 256


class _Conn(Protocol):
    """What the server needs of a peer connection."""

    closed: bool
    write_paused: bool

    def send(self, data: bytes) -> None: ...


class HashServer:
    """Answers hash requests for one torrent; ``on_message`` is its only entry point."""

    def __init__(self, info: TorrentInfo, executor: Executor | None) -> None:
        self.info = info
        self.executor = executor
        #: pieces root -> (file length) for every file that has a piece layer
        self._files: dict[bytes, int] = {
            f.pieces_root: f.length
            for f in info.files
            if f.pieces_root is not None and f.pieces_root in info.piece_layers
        }
        self._trees: dict[bytes, FileTree] = {}
        self._building: dict[bytes, list[tuple[_Conn, HashRequest]]] = {}
        self.served = 0
        self.rejected = 0

    def on_message(self, conn: _Conn, event: wire.HashTransfer) -> None:
        """Handle a hash message; raises ``ProtocolError`` only for malformed framing.

        ``hashes`` and ``hash reject`` are ignored: a seeding torrent never asks for hashes.
        """
        msg = parse_hash_message(event.msg_id, event.payload)
        if not isinstance(msg, HashRequest):
            return
        root = msg.pieces_root
        if root not in self._files or not self._shape_ok(msg) or conn.write_paused:
            self._reject(conn, msg)
            return
        tree = self._trees.get(root)
        if tree is not None:
            self._answer(conn, msg, tree)
            return
        waiting = self._building.get(root)
        if waiting is not None:
            if sum(len(w) for w in self._building.values()) >= MAX_WAITING:
                self._reject(conn, msg)
            else:
                waiting.append((conn, msg))
            return
        self._building[root] = [(conn, msg)]
        loop = asyncio.get_running_loop()
        layer = self.info.piece_layers[root]
        hashes = [layer[i : i + HASH_SIZE] for i in range(0, len(layer), HASH_SIZE)]
        fut: asyncio.Future[FileTree] = loop.run_in_executor(
            self.executor, FileTree, hashes, self.info.piece_length, self._files[root]
        )
        fut.add_done_callback(lambda f: self._built(root, f))

    def _built(self, root: bytes, fut: asyncio.Future[FileTree]) -> None:
        waiting = self._building.pop(root, [])
        tree = None if fut.cancelled() or fut.exception() is not None else fut.result()
        if tree is None or tree.root != root:
            # the layer was checked against the root when the torrent was parsed: only a bug
            # (or a shut-down executor) gets here, and then nobody may be told wrong hashes
            log.error("%s: cannot build the merkle tree of a file", self.info.name)
        else:
            self._trees[root] = tree
        for conn, msg in waiting:
            if not conn.closed:
                if tree is None or tree.root != root:
                    self._reject(conn, msg)
                else:
                    self._answer(conn, msg, tree)

    @staticmethod
    def _shape_ok(msg: HashRequest) -> bool:
        n = msg.length
        return 0 < n <= MAX_HASH_COUNT and not n & (n - 1) and msg.index % n == 0

    def _answer(self, conn: _Conn, msg: HashRequest, tree: FileTree) -> None:
        hashes = tree.hashes(msg.base, msg.index, msg.length, msg.proof_layers)
        if hashes is None:
            self._reject(conn, msg)
            return
        self.served += 1
        conn.send(encode_hashes(msg, hashes))

    def _reject(self, conn: _Conn, msg: HashRequest) -> None:
        self.rejected += 1
        conn.send(encode_hash_reject(msg))
