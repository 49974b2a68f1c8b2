"""The one exception type of the settings package."""

from __future__ import annotations

__all__ = ["ConfigError"]


class ConfigError(ValueError):
    """A setting could not be loaded, parsed, validated or stored.

    The message is meant to be shown to a user as is (the CLI prints it without a traceback), so
    it always names the key, the offending value, where it came from and what is allowed. The
    parts are also kept as attributes so a settings dialog can highlight the right field.
    """

    def __init__(
        self,
        message: str,
        *,
        key: str | None = None,
        value: object = None,
        allowed: str | None = None,
        source: str | None = None,
    ) -> None:
        super().__init__(message)
        self.key = key
        self.value = value
        self.allowed = allowed
        self.source = source
