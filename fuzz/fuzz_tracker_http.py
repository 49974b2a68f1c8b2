"""Fuzz HTTP tracker replies (announce and scrape bodies): only TrackerError escapes.

TrackerFailure (the tracker's own "failure reason") is a TrackerError subclass, so it counts as
declared; its reason must be text the GUI can show.
"""

from __future__ import annotations

import sys

from fuzz.support import instrumented, main, only

with instrumented(__name__):
    from ccbt_engine.tracker.protocol import (
        TrackerError,
        TrackerFailure,
        parse_announce_reply,
        parse_scrape_reply,
    )


def one_input(data: bytes) -> None:
    try:
        reply = parse_announce_reply(data)
    except TrackerFailure as exc:
        assert isinstance(exc.reason, str)
    except TrackerError as exc:
        str(exc)
    else:
        assert reply.interval >= 0
        assert all(0 < port <= 0xFFFF for _, port in reply.peers)
    with only(TrackerError):
        for info_hash in parse_scrape_reply(data):
            assert len(info_hash) == 20


if __name__ == "__main__":
    main(one_input)
    sys.exit(0)
