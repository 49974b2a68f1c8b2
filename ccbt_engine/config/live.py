"""Applying changed settings to a running session without a restart.

The session owns one :class:`LiveSettings`; components (rate limiter, listener, GUI) subscribe to
the part they care about. When the user edits settings (dialog, ``ccbt config set`` + reload, a
remote client), the new :class:`Settings` is passed to :meth:`LiveSettings.apply`, which diffs it
against the current one and tells each subscriber only what changed. Plain synchronous callbacks:
no event loop needed, so the sans-I/O cores can use it too.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Mapping
from typing import Any

from ccbt_engine.config.model import SECTION_MODELS, Settings, split_key

__all__ = ["Changes", "LiveSettings", "SettingsObserver"]

log = logging.getLogger(__name__)

#: ``{"section.key": (old, new)}``
Changes = Mapping[str, tuple[Any, Any]]
#: Called with the changes the observer subscribed to and the new settings.
SettingsObserver = Callable[[Changes, Settings], None]


class LiveSettings:
    """The current settings plus observers notified of each change."""

    def __init__(self, settings: Settings) -> None:
        self._current = settings
        self._observers: list[tuple[str, SettingsObserver]] = []

    @property
    def current(self) -> Settings:
        return self._current

    def subscribe(self, observer: SettingsObserver, prefix: str = "") -> Callable[[], None]:
        """Call ``observer`` when a key under ``prefix`` changes; returns an unsubscribe function.

        ``prefix`` is ``""`` (everything), a section (``"limits"``) or one key
        (``"network.listen_port"``); a typo raises ConfigError now rather than never firing.
        """
        if prefix and prefix not in SECTION_MODELS:
            split_key(prefix)
        entry = (prefix, observer)
        self._observers.append(entry)

        def unsubscribe() -> None:
            if entry in self._observers:
                self._observers.remove(entry)

        return unsubscribe

    def apply(self, new: Settings) -> dict[str, tuple[Any, Any]]:
        """Make ``new`` current and notify observers; returns all changes (empty if none).

        An observer that raises is logged and skipped so one broken component cannot stop the
        others from receiving the change.
        """
        changes = self._current.diff(new)
        self._current = new
        if not changes:
            return changes
        for prefix, observer in list(self._observers):
            mine = {k: v for k, v in changes.items() if _matches(k, prefix)}
            if not mine:
                continue
            try:
                observer(mine, new)
            except Exception:
                log.exception("settings observer %r failed on %s", observer, sorted(mine))
        return changes


def _matches(key: str, prefix: str) -> bool:
    return not prefix or key == prefix or key.startswith(prefix + ".")
