"""Tracker clients: HTTP(S) (BEP 3/23/7/48), UDP (BEP 15) and the multitracker announcer (BEP 12).

``protocol`` and ``udp_protocol`` are sans-I/O cores (bytes in, typed values out); ``http`` and
``udp`` are thin asyncio shells around them; ``announcer`` drives one torrent's announces.
"""

from ccbt_engine.tracker.announcer import Announcer, AnnounceStats, TrackerState, TrackerStatus
from ccbt_engine.tracker.http import HttpTracker
from ccbt_engine.tracker.protocol import (
    AnnounceReply,
    AnnounceRequest,
    Event,
    Peer,
    ScrapeResult,
    TrackerError,
    TrackerFailure,
)
from ccbt_engine.tracker.udp import UdpTracker

__all__ = [
    "AnnounceReply",
    "AnnounceRequest",
    "AnnounceStats",
    "Announcer",
    "Event",
    "HttpTracker",
    "Peer",
    "ScrapeResult",
    "TrackerError",
    "TrackerFailure",
    "TrackerState",
    "TrackerStatus",
    "UdpTracker",
]
