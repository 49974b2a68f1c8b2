"""RC4 keystreams for MSE/PE, backed by the ``cryptography`` package (OpenSSL).

MSE uses RC4 with the first 1024 bytes of keystream thrown away (the early bytes of RC4 leak
key material; every MSE implementation discards exactly 1024, so the number is part of the
protocol, not a tunable). A pure-Python RC4 would run at a few MB/s; OpenSSL's runs at
hundreds of MB/s on one core, which is what lets an encrypted peer move data at loopback
speed.

``cryptography`` moved ARC4 to ``hazmat.decrepit`` in 43.0 and later removed it from
``hazmat.primitives``; both locations are tried so either side of that move works.
"""

from __future__ import annotations

from cryptography.hazmat.primitives.ciphers import Cipher

try:
    from cryptography.hazmat.decrepit.ciphers.algorithms import ARC4
except ImportError:  # cryptography < 43
    from cryptography.hazmat.primitives.ciphers.algorithms import (  # type: ignore[attr-defined, no-redef, unused-ignore]
        ARC4,
    )

#: keystream bytes MSE discards before the first byte it uses
DISCARD = 1024

_ZEROS = bytes(DISCARD)


class RC4:
    """One direction of an RC4 stream: every byte passed to :meth:`update` moves the key on.

    Encryption and decryption are the same operation; a connection keeps one instance per
    direction and must feed each byte through exactly once, in order.
    """

    __slots__ = ("_ctx",)

    def __init__(self, key: bytes, *, discard: int = DISCARD) -> None:
        self._ctx = Cipher(ARC4(key), mode=None).encryptor()
        if discard:
            self._ctx.update(_ZEROS if discard == DISCARD else bytes(discard))

    def update(self, data: bytes | bytearray | memoryview) -> bytes:
        """XOR ``data`` with the next ``len(data)`` keystream bytes."""
        return self._ctx.update(data)
