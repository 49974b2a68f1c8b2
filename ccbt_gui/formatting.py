"""Human-readable numbers for the tables (sizes, rates, durations), qBittorrent style.

Kept free of Qt so the benchmark and tests can call them without a QApplication.
"""

from __future__ import annotations

import math
import time

_UNITS = ("B", "KiB", "MiB", "GiB", "TiB", "PiB")
#: ETAs beyond this are shown as infinity, like qBittorrent (100 days)
MAX_ETA = 100 * 24 * 3600


def size(value: float) -> str:
    """Bytes as ``"1.5 MiB"`` (binary units, one decimal above KiB)."""
    if value < 1024:
        return f"{int(value)} B"
    exp = min(int(math.log(value, 1024)), len(_UNITS) - 1)
    return f"{value / 1024**exp:.1f} {_UNITS[exp]}"


def rate(value: float) -> str:
    """Bytes per second; zero is an empty cell so active torrents stand out."""
    return "" if value <= 0 else size(value) + "/s"


def rate_always(value: float) -> str:
    """Like :func:`rate` but shows ``0 B/s`` (status bar, tray tooltip)."""
    return size(max(value, 0.0)) + "/s"


def duration(seconds: float | None) -> str:
    """``"1d 4h"``, ``"3h 12m"``, ``"5m 3s"``; ``None``/huge = ``"∞"``."""
    if seconds is None or seconds >= MAX_ETA or math.isnan(seconds):
        return "∞"
    s = int(seconds)
    days, s = divmod(s, 86400)
    hours, s = divmod(s, 3600)
    minutes, s = divmod(s, 60)
    if days:
        return f"{days}d {hours}h"
    if hours:
        return f"{hours}h {minutes}m"
    if minutes:
        return f"{minutes}m {s}s"
    return f"{s}s"


def ratio(value: float) -> str:
    return "∞" if math.isinf(value) else f"{value:.2f}"


def timestamp(epoch: float) -> str:
    """Wall-clock time as ``YYYY-MM-DD HH:MM`` in local time."""
    if epoch <= 0:
        return ""
    return time.strftime("%Y-%m-%d %H:%M", time.localtime(epoch))


def percent(fraction: float) -> str:
    return f"{fraction * 100:.1f}%"
