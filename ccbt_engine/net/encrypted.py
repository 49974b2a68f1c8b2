"""The layer between a peer's socket and its wire parser: MSE/PE handshake, then RC4 (or not).

:class:`StreamCrypto` is what :class:`~ccbt_engine.net.peer.PeerConnection` calls with every
byte it reads and before every byte it writes. It decides, per ``security.encryption``:

* outgoing ``disabled``: plain BitTorrent; ``enabled``: MSE offering RC4 and plaintext (the
  peer picks); ``forced``: MSE offering RC4 only. The BitTorrent handshake rides in MSE's
  initial payload, so encryption costs one round trip, not two.
* incoming: a connection whose first 20 bytes are ``\\x13BitTorrent protocol`` is plain, any
  other is MSE. ``disabled`` leaves MSE to fail in the wire parser; ``forced`` refuses plain
  handshakes and accepts only RC4; ``enabled`` accepts both and picks RC4 when offered.

Retrying plain after a refused encrypted attempt is the caller's job (it needs a new socket).
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from typing import Literal

from ccbt_engine.protocol import mse
from ccbt_engine.protocol.mse import MSEError
from ccbt_engine.protocol.rc4 import RC4

EncryptionPolicy = Literal["disabled", "enabled", "forced"]

#: cached HASH('req2', infohash) per infohash; a session's torrents rarely change, and an
#: incoming MSE connection otherwise costs one SHA-1 per torrent served
_REQ2: dict[bytes, bytes] = {}
_REQ2_LIMIT = 1 << 16


def skey_finder(hashes: Callable[[], Iterable[bytes]]) -> mse.SkeyLookup:
    """A receiver's SKEY lookup over the infohashes ``hashes()`` returns at call time."""

    def find(req2: bytes) -> bytes | None:
        for info_hash in hashes():
            known = _REQ2.get(info_hash)
            if known is None:
                if len(_REQ2) >= _REQ2_LIMIT:
                    _REQ2.clear()
                known = _REQ2[info_hash] = mse.req2_hash(info_hash)
            if known == req2:
                return info_hash
        return None

    return find


class StreamCrypto:
    """One connection's encryption state, from the first byte to the close.

    ``pending`` is True while an MSE handshake (or, incoming, the plain-or-MSE sniff) is
    still running; ``encrypted`` is True once RC4 carries the payload; ``mse`` once the
    handshake was an MSE one, whichever method it selected.
    """

    def __init__(
        self,
        policy: EncryptionPolicy,
        *,
        outgoing_skey: bytes | None = None,
        skey_lookup: mse.SkeyLookup | None = None,
    ) -> None:
        self.policy = policy
        self.outgoing = outgoing_skey is not None
        self._skey = outgoing_skey
        self._lookup = skey_lookup
        self._initiator: mse.MSEInitiator | None = None
        self._receiver: mse.MSEReceiver | None = None
        self._sniff: bytearray | None = None
        self._enc: RC4 | None = None
        self._dec: RC4 | None = None
        self.mse = False
        self.encrypted = False
        #: the infohash the MSE handshake named (incoming: found by SKEY)
        self.skey: bytes | None = None
        if self.outgoing:
            self.pending = policy != "disabled"
        else:
            self.pending = policy != "disabled" and skey_lookup is not None
            if self.pending:
                self._sniff = bytearray()

    def start(self, handshake: bytes) -> bytes:
        """Outgoing: the first bytes to send: the BitTorrent ``handshake``, plain or in MSE."""
        if not self.pending:
            return handshake
        assert self._skey is not None
        provide = mse.CRYPTO_RC4 if self.policy == "forced" else mse.CRYPTO_ALL
        self._initiator = mse.MSEInitiator(self._skey, provide=provide, initial_payload=handshake)
        return self._initiator.start()

    def receive(self, data: bytes) -> tuple[bytes, bytes]:
        """Bytes read from the socket -> (bytes to write back raw, payload for the wire parser).

        Raises :class:`MSEError` when the peer's handshake fails or breaks the policy.
        """
        if self._dec is not None:
            return b"", self._dec.update(data)
        if not self.pending:
            return b"", data
        if self._sniff is not None:
            self._sniff += data
            plain = mse.classify_incoming(self._sniff)
            if plain is None:
                return b"", b""
            data = bytes(self._sniff)
            self._sniff = None
            if plain:
                if self.policy == "forced":
                    raise MSEError("plaintext handshake refused: encryption is forced")
                self.pending = False
                return b"", data
            assert self._lookup is not None
            forced = self.policy == "forced"
            self._receiver = mse.MSEReceiver(
                self._lookup, allowed=mse.CRYPTO_RC4 if forced else mse.CRYPTO_ALL
            )
        core = self._initiator or self._receiver
        assert core is not None
        step = core.feed(data)
        done = step.established
        if done is None:
            return step.outgoing, b""
        self._initiator = self._receiver = None
        self.pending = False
        self.mse = True
        self.skey = done.skey
        self.encrypted = done.encrypted
        self._enc, self._dec = done.encryptor, done.decryptor
        return step.outgoing, done.payload

    def send(self, data: bytes | memoryview) -> bytes | memoryview:
        """Payload we write -> bytes for the socket (RC4 applied once it was selected)."""
        return data if self._enc is None else self._enc.update(data)
