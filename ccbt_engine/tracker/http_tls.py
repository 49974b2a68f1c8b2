"""Certificate verification for the engine's outgoing HTTPS (``security.verify_tls``).

Every HTTP(S) request of the engine — tracker announces and scrapes, web seeds — goes through
the session's one :class:`aiohttp.ClientSession`, but the trackers borrow that session long
before the user might switch verification off. So the session registers a *policy* with its
client session: a function that says, at request time, what to pass as aiohttp's ``ssl=``
(``True`` verify against the system's CA store, ``False`` accept any certificate, or an
:class:`ssl.SSLContext` that trusts specific CAs). A changed setting therefore applies to the
next request without rebuilding any tracker.
"""

from __future__ import annotations

import ssl
import weakref
from collections.abc import Callable

import aiohttp

__all__ = ["TlsOption", "TlsPolicy", "set_tls_policy", "tls_option"]

#: what aiohttp accepts as ``ssl=`` (True = verify, False = don't, a context = verify with it)
TlsOption = bool | ssl.SSLContext
TlsPolicy = Callable[[], TlsOption]

_policies: weakref.WeakKeyDictionary[aiohttp.ClientSession, TlsPolicy] = weakref.WeakKeyDictionary()


def set_tls_policy(session: aiohttp.ClientSession, policy: TlsPolicy) -> None:
    """Make requests through ``session`` use ``policy()`` as their ``ssl=`` option."""
    _policies[session] = policy


def tls_option(session: aiohttp.ClientSession) -> TlsOption:
    """The ``ssl=`` option for a request through ``session``: verify unless told otherwise."""
    policy = _policies.get(session)
    return True if policy is None else policy()
