"""The one error type port mapping raises for anything a router (or a LAN host) sent us."""

from __future__ import annotations

__all__ = ["PortMapError"]


class PortMapError(Exception):
    """A router refused a mapping or answered with something that is not its protocol."""
