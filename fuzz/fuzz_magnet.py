"""Fuzz magnet URI parsing: only MagnetError, and a parsed link survives to_uri() unchanged."""

from __future__ import annotations

import sys

from fuzz.support import instrumented, main, only

with instrumented(__name__):
    from ccbt_engine.magnet import MAX_MAGNET_LENGTH, MagnetError, parse_magnet


def _parse(uri: str) -> None:
    with only(MagnetError):
        magnet = parse_magnet(uri)
        again = magnet.to_uri()
        if len(again) <= MAX_MAGNET_LENGTH:
            assert parse_magnet(again) == magnet, "to_uri() does not round-trip"


def one_input(data: bytes) -> None:
    text = data.decode("utf-8", "replace")
    _parse(text)
    # most mutations of a bare string never reach past the scheme check: give them a head start
    _parse("magnet:?xt=urn:btih:" + "0" * 40 + "&" + text)
    # every code point (lone surrogates included) once in a while
    _parse("magnet:?" + data.decode("utf-16-le", "surrogatepass") if len(data) % 2 == 0 else text)


if __name__ == "__main__":
    main(one_input)
    sys.exit(0)
