"""Credentials of the remote API: who may bind where, and how a request proves who it is.

Two ways to authenticate, both checked in constant time (:func:`hmac.compare_digest`):

* ``Authorization: Basic base64(user:password)`` — what ``curl -u`` sends;
* ``Authorization: Bearer <token>`` where the token is :func:`derive_token` of the user name and
  password, so scripts need not hold the password itself and a leaked token dies with a
  password change.

There are no cookies: a browser never attaches our credentials by itself, and every request must
also carry the :data:`CLIENT_HEADER`, which a cross-site page cannot add without a CORS preflight
that the server never approves. That makes the API CSRF-safe even if a browser cached Basic
credentials after a login prompt.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import hmac
import ipaddress

__all__ = [
    "CLIENT_HEADER",
    "Credentials",
    "RemoteAuthError",
    "check_bind",
    "derive_token",
    "is_loopback",
]

#: Custom header required on every request (any non-empty value, e.g. the client's name).
CLIENT_HEADER = "X-Ccbt-Client"
_TOKEN_CONTEXT = b"ccbt-remote-token-v1\x00"


class RemoteAuthError(Exception):
    """The remote interface cannot run with these settings (e.g. public bind, no password)."""


def is_loopback(host: str) -> bool:
    """True for ``localhost`` and loopback addresses; hostnames and wildcards are not."""
    if host.lower() in ("localhost", "localhost."):
        return True
    try:
        return ipaddress.ip_address(host.strip("[]")).is_loopback
    except ValueError:
        return False


def check_bind(host: str, password: str | None) -> None:
    """Refuse to serve a non-loopback address without a password: anyone who can reach the port
    could otherwise add torrents that write files wherever the daemon's user can write."""
    if not password and not is_loopback(host):
        raise RemoteAuthError(
            f"refusing to serve the remote API on {host!r} without a password: set one with "
            "`ccbt config set remote.password` (OS keyring) or the CCBT_REMOTE_PASSWORD "
            "environment variable, or bind to 127.0.0.1"
        )


def derive_token(username: str, password: str) -> str:
    """The bearer token for these credentials: HMAC-SHA256 keyed by the password (hex)."""
    mac = hmac.new(password.encode(), _TOKEN_CONTEXT + username.encode(), hashlib.sha256)
    return mac.hexdigest()


class Credentials:
    """The expected user name and password; checks ``Authorization`` header values."""

    def __init__(self, username: str, password: str) -> None:
        if not password:
            raise ValueError("an empty password cannot authenticate anybody")
        self._user = username.encode()
        self._password = password.encode()
        self._token = derive_token(username, password).encode()

    def check(self, header: str | None) -> bool:
        """True when ``header`` (the raw Authorization value) proves these credentials."""
        if not header:
            return False
        scheme, _, value = header.strip().partition(" ")
        value = value.strip()
        if scheme.lower() == "bearer":
            return hmac.compare_digest(value.encode(), self._token)
        if scheme.lower() != "basic":
            return False
        try:
            decoded = base64.b64decode(value.encode("ascii"), validate=True)
        except (binascii.Error, UnicodeEncodeError):
            return False
        user, sep, password = decoded.partition(b":")
        # evaluate both comparisons: bail-out order must not tell which half was wrong
        user_ok = hmac.compare_digest(user, self._user)
        password_ok = hmac.compare_digest(password, self._password)
        return bool(sep) and user_ok and password_ok
