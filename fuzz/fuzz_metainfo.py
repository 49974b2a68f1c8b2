"""Fuzz .torrent parsing (v1, v2 and hybrid): only MetainfoError escapes.

A torrent that parses must also be usable by what reads it next: its piece sizes add up to the
total length, every file lies inside the piece space, and its magnet link can be built.
"""

from __future__ import annotations

import sys

from fuzz.support import instrumented, main, only

with instrumented(__name__):
    from ccbt_engine.magnet import magnet_from_metainfo
    from ccbt_engine.metainfo import MetainfoError, TorrentInfo, parse_info_dict, parse_torrent


def _check(info: TorrentInfo) -> None:
    n = info.num_pieces
    if n:
        total = (n - 1) * info.piece_length + info.piece_size(n - 1)
        assert total == info.total_length, "piece sizes do not add up to the total length"
    for f in info.files:
        assert f.offset >= 0 and f.offset + f.length <= info.total_length, "file outside pieces"
        assert f.path and all(part not in ("", ".", "..") for part in f.path), "unsafe path"
    assert len(info.info_hash) == 20


def one_input(data: bytes) -> None:
    with only(MetainfoError):
        meta = parse_torrent(data)
        _check(meta.info)
        magnet_from_metainfo(meta).to_uri()
    with only(MetainfoError):
        _check(parse_info_dict(data))


if __name__ == "__main__":
    main(one_input)
    sys.exit(0)
