"""Sans-I/O MSE/PE (Message Stream Encryption, a.k.a. Protocol Encryption) handshake.

The handshake, A being the side that dialled and B the side that accepted::

    1 A->B: Ya, PadA
    2 B->A: Yb, PadB
    3 A->B: HASH('req1', S), HASH('req2', SKEY) xor HASH('req3', S),
            ENCRYPT(VC, crypto_provide, len(PadC), PadC, len(IA)), ENCRYPT(IA)
    4 B->A: ENCRYPT(VC, crypto_select, len(PadD), PadD), ENCRYPT2(payload)
    5 A->B: ENCRYPT2(payload)

Y are Diffie-Hellman public keys over the 768-bit MSE prime (generator 2), S the shared secret,
SKEY the torrent's infohash (so one listening port serves many torrents: B finds the torrent
from ``HASH('req2', SKEY)`` without A ever sending the infohash in clear), VC eight zero bytes,
and ENCRYPT RC4 keyed with ``HASH('keyA', S, SKEY)`` (A's direction) or ``'keyB'`` (B's), 1024
keystream bytes discarded. ENCRYPT2 is the same RC4 stream when RC4 was selected, or nothing
when plaintext was: the handshake always hides the infohash, the payload only when asked to.

Pads are random in length (0..512) so the handshake has no fixed size to fingerprint; the
receiver finds where A's pad ends by scanning for ``HASH('req1', S)``, the initiator finds
where B's pad ends by scanning for the encrypted VC.

The classes here never touch a socket: :meth:`feed` takes bytes as they arrive in whatever
chunks and returns the bytes to send plus, once, the :class:`Established` outcome holding the
two RC4 streams for the payload. Anything malformed raises :class:`MSEError` only.
"""

from __future__ import annotations

import hashlib
import os
import struct
from collections.abc import Callable
from dataclasses import dataclass

from ccbt_engine.protocol.rc4 import RC4

#: the MSE prime (768 bits) and generator
P = int(
    "FFFFFFFFFFFFFFFFC90FDAA22168C234C4C6628B80DC1CD129024E088A67CC74"
    "020BBEA63B139B22514A08798E3404DDEF9519B3CD3A431B302B0A6DF25F1437"
    "4FE1356D6D51C245E485B576625E7EC6F44C42E9A63A36210000000000090563",
    16,
)
G = 2
#: a public key on the wire: 768 bits, big-endian
KEY_LEN = 96
#: bits of the private exponent (the spec asks for at least 128; 160 like libtorrent)
PRIVATE_BITS = 160
VC = bytes(8)
CRYPTO_PLAINTEXT = 0x01
CRYPTO_RC4 = 0x02
CRYPTO_ALL = CRYPTO_PLAINTEXT | CRYPTO_RC4
#: longest PadA/PadB/PadC/PadD the protocol allows
MAX_PAD = 512
#: len(IA) is a 16-bit field
MAX_IA = 0xFFFF
#: the first bytes of an unencrypted BitTorrent handshake
PLAIN_HEADER = b"\x13BitTorrent protocol"

#: bytes to pass to ``rng`` -> random bytes (os.urandom in production, seeded in tests)
Rng = Callable[[int], bytes]
#: HASH('req2', SKEY) -> SKEY (the infohash) when we serve that torrent, else None
SkeyLookup = Callable[[bytes], "bytes | None"]


class MSEError(Exception):
    """The peer's handshake is malformed, for an unknown torrent, or offers nothing we accept."""


def _hash(*parts: bytes) -> bytes:
    return hashlib.sha1(b"".join(parts)).digest()


def _xor(a: bytes | bytearray, b: bytes) -> bytes:
    return bytes(x ^ y for x, y in zip(a, b, strict=True))


def req2_hash(skey: bytes) -> bytes:
    """``HASH('req2', SKEY)``: what a receiver indexes its infohashes by."""
    return _hash(b"req2", skey)


def classify_incoming(prefix: bytes | bytearray) -> bool | None:
    """Is an incoming connection plain BitTorrent (True) or MSE (False)?

    None while the bytes so far are still a prefix of the plain header. A random Ya starts
    with the 20-byte plain header with probability 2**-160, so the first differing byte
    decides.
    """
    n = min(len(prefix), len(PLAIN_HEADER))
    if prefix[:n] != PLAIN_HEADER[:n]:
        return False
    return True if n == len(PLAIN_HEADER) else None


@dataclass(frozen=True, slots=True)
class Established:
    """The handshake is over: how to carry the payload from here on."""

    skey: bytes
    #: CRYPTO_RC4 or CRYPTO_PLAINTEXT
    method: int
    #: our outgoing stream; None when plaintext was selected
    encryptor: RC4 | None
    #: the peer's incoming stream; None when plaintext was selected
    decryptor: RC4 | None
    #: payload the peer already sent (its IA and anything after), decrypted
    payload: bytes

    @property
    def encrypted(self) -> bool:
        return self.method == CRYPTO_RC4


@dataclass(frozen=True, slots=True)
class Step:
    """What one :meth:`feed` produced: bytes to send now and, once, the outcome."""

    outgoing: bytes = b""
    established: Established | None = None


class _DH:
    """One side's Diffie-Hellman key pair over the MSE group."""

    def __init__(self, rng: Rng) -> None:
        self._x = int.from_bytes(rng(PRIVATE_BITS // 8), "big") | 1 << (PRIVATE_BITS - 1)
        self.public = pow(G, self._x, P).to_bytes(KEY_LEN, "big")

    def secret(self, remote_public: bytes) -> bytes:
        y = int.from_bytes(remote_public, "big")
        # 0, 1 and P-1 (and anything >= P) force a guessable secret: refuse them
        if not 1 < y < P - 1:
            raise MSEError("invalid Diffie-Hellman public key")
        return pow(y, self._x, P).to_bytes(KEY_LEN, "big")


def _pad(rng: Rng, max_len: int) -> bytes:
    n = int.from_bytes(rng(2), "big") % (max_len + 1) if max_len > 0 else 0
    return rng(n) if n else b""


def _check_methods(mask: int, what: str) -> None:
    if mask & ~CRYPTO_ALL or not mask & CRYPTO_ALL:
        raise ValueError(f"{what} must be a non-empty mix of CRYPTO_PLAINTEXT and CRYPTO_RC4")


def _check_pad(n: int, what: str) -> None:
    if not 0 <= n <= MAX_PAD:
        raise ValueError(f"{what} must be within 0..{MAX_PAD}")


class MSEInitiator:
    """Side A: the one that dialled, knows the torrent (SKEY) and offers crypto methods.

    ``initial_payload`` (IA) is sent inside message 3, saving a round trip: the BitTorrent
    handshake normally goes there.
    """

    def __init__(
        self,
        skey: bytes,
        *,
        provide: int = CRYPTO_ALL,
        initial_payload: bytes = b"",
        pad_max: int = MAX_PAD,
        pad_c: int = 0,
        rng: Rng = os.urandom,
    ) -> None:
        _check_methods(provide, "provide")
        _check_pad(pad_max, "pad_max")
        _check_pad(pad_c, "pad_c")
        if len(initial_payload) > MAX_IA:
            raise ValueError(f"initial payload longer than {MAX_IA} bytes")
        self.skey = skey
        self.provide = provide
        self._ia = initial_payload
        self._pad_max = pad_max
        self._pad_c = pad_c
        self._rng = rng
        self._dh = _DH(rng)
        self._buf = bytearray()
        self._state = "new"
        self._enc: RC4 | None = None
        self._dec: RC4 | None = None
        self._vc_pattern = b""
        self._select = 0
        self._pad_d = 0

    def start(self) -> bytes:
        """Message 1: our public key and a random pad. Call once, before any :meth:`feed`."""
        if self._state != "new":
            raise RuntimeError("start() called twice")
        self._state = "yb"
        return self._dh.public + _pad(self._rng, self._pad_max)

    def feed(self, data: bytes | bytearray | memoryview) -> Step:
        """Bytes from B, in any chunking; returns what to send and, at the end, the outcome."""
        if self._state in ("new", "done", "failed"):
            raise MSEError(f"unexpected data in state {self._state}")
        self._buf += data
        try:
            return self._advance()
        except MSEError:
            self._state = "failed"
            raise

    def _advance(self) -> Step:
        out = b""
        buf = self._buf
        if self._state == "yb":
            # a plain peer that took our Ya for a handshake answers with its own: say so now
            # (a caller retrying plain gains the whole handshake timeout); a real Yb begins
            # with these 20 bytes with probability 2**-160
            if classify_incoming(buf[: len(PLAIN_HEADER)]) and len(buf) >= len(PLAIN_HEADER):
                raise MSEError("peer answered with a plain BitTorrent handshake")
            if len(buf) < KEY_LEN:
                return Step()
            secret = self._dh.secret(bytes(buf[:KEY_LEN]))
            del buf[:KEY_LEN]
            out = self._message3(secret)
            self._state = "vc"
        if self._state == "vc":
            window = bytes(buf[: MAX_PAD + len(VC)])
            at = window.find(self._vc_pattern)
            if at < 0:
                if len(buf) >= MAX_PAD + len(VC):
                    raise MSEError("no verification constant within PadB's limit")
                return Step(out)
            del buf[: at + len(VC)]
            self._state = "select"
        if self._state == "select":
            if len(buf) < 6:
                return Step(out)
            assert self._dec is not None
            head = self._dec.update(bytes(buf[:6]))
            del buf[:6]
            self._select, self._pad_d = struct.unpack(">IH", head)
            if self._select not in (CRYPTO_PLAINTEXT, CRYPTO_RC4):
                raise MSEError(f"crypto_select {self._select:#x} is not a single method")
            if not self._select & self.provide:
                raise MSEError(f"peer selected {self._select:#x}, not offered")
            if self._pad_d > MAX_PAD:
                raise MSEError(f"PadD of {self._pad_d} bytes")
            self._state = "padd"
        if self._state == "padd":
            if len(buf) < self._pad_d:
                return Step(out)
            assert self._dec is not None and self._enc is not None
            self._dec.update(bytes(buf[: self._pad_d]))
            del buf[: self._pad_d]
            rest = bytes(buf)
            buf.clear()
            self._state = "done"
            rc4 = self._select == CRYPTO_RC4
            payload = self._dec.update(rest) if rc4 and rest else rest
            return Step(
                out,
                Established(
                    skey=self.skey,
                    method=self._select,
                    encryptor=self._enc if rc4 else None,
                    decryptor=self._dec if rc4 else None,
                    payload=payload,
                ),
            )
        return Step(out)

    def _message3(self, secret: bytes) -> bytes:
        self._enc = RC4(_hash(b"keyA", secret, self.skey))
        self._dec = RC4(_hash(b"keyB", secret, self.skey))
        # B's message 4 starts with ENCRYPT(VC): the first 8 bytes of B's keystream
        self._vc_pattern = self._dec.update(VC)
        pad_c = self._rng(self._pad_c) if self._pad_c else b""
        req23 = _xor(req2_hash(self.skey), _hash(b"req3", secret))
        plain = (
            VC
            + struct.pack(">IH", self.provide, len(pad_c))
            + pad_c
            + struct.pack(">H", len(self._ia))
            + self._ia
        )
        return _hash(b"req1", secret) + req23 + self._enc.update(plain)


class MSEReceiver:
    """Side B: accepted a connection, learns the torrent from A's message 3 and picks a method.

    ``allowed`` is what we accept. The selection rule (:meth:`_choose`): of the methods A
    offers and we allow, a single one is taken as it is; when both remain, plaintext wins
    unless ``prefer_rc4``. Plaintext by default because that is what the reference client
    does: libtorrent's receiver keeps the lowest offered bit unless its ``prefer_rc4`` setting
    is on, and that setting is off by default (so libtorrent, qBittorrent and Deluge answer an
    offer of both with plaintext). An initiator that wants RC4 on the payload offers RC4 only:
    Transmission's default "prefer encryption" mode does exactly that, and libtorrent and ccbt
    with encryption forced too, so those peers still get RC4 from us. Plaintext after MSE still
    hides the handshake (and so the infohash) while sparing every payload byte a pass of RC4
    (about 2.4 CPU s per GiB here, more than the rest of the upload path); and the outcome no
    longer depends on who dialled (our initiator offers both, like libtorrent's).
    """

    def __init__(
        self,
        find_skey: SkeyLookup,
        *,
        allowed: int = CRYPTO_ALL,
        prefer_rc4: bool = False,
        pad_max: int = MAX_PAD,
        pad_d: int = 0,
        rng: Rng = os.urandom,
    ) -> None:
        _check_methods(allowed, "allowed")
        _check_pad(pad_max, "pad_max")
        _check_pad(pad_d, "pad_d")
        self._find_skey = find_skey
        self.allowed = allowed
        self.prefer_rc4 = prefer_rc4
        self._pad_max = pad_max
        self._pad_d = pad_d
        self._rng = rng
        self._dh = _DH(rng)
        self._buf = bytearray()
        self._state = "ya"
        self._secret = b""
        self._req1 = b""
        self._skey = b""
        self._enc: RC4 | None = None
        self._dec: RC4 | None = None
        self._provide = 0
        self._pad_c = 0
        self._ia_len = 0

    def feed(self, data: bytes | bytearray | memoryview) -> Step:
        """Bytes from A, in any chunking; returns what to send and, at the end, the outcome."""
        if self._state in ("done", "failed"):
            raise MSEError(f"unexpected data in state {self._state}")
        self._buf += data
        try:
            return self._advance()
        except MSEError:
            self._state = "failed"
            raise

    def _advance(self) -> Step:
        out = b""
        buf = self._buf
        if self._state == "ya":
            if len(buf) < KEY_LEN:
                return Step()
            self._secret = self._dh.secret(bytes(buf[:KEY_LEN]))
            del buf[:KEY_LEN]
            self._req1 = _hash(b"req1", self._secret)
            out = self._dh.public + _pad(self._rng, self._pad_max)
            self._state = "req1"
        if self._state == "req1":
            at = bytes(buf[: MAX_PAD + 20]).find(self._req1)
            if at < 0:
                if len(buf) >= MAX_PAD + 20:
                    raise MSEError("no req1 hash within PadA's limit")
                return Step(out)
            del buf[: at + 20]
            self._state = "skey"
        if self._state == "skey":
            if len(buf) < 20:
                return Step(out)
            req3 = _hash(b"req3", self._secret)
            req2 = _xor(buf[:20], req3)
            del buf[:20]
            skey = self._find_skey(req2)
            if skey is None:
                raise MSEError("unknown SKEY (no torrent with that infohash)")
            self._skey = skey
            self._dec = RC4(_hash(b"keyA", self._secret, skey))
            self._enc = RC4(_hash(b"keyB", self._secret, skey))
            self._state = "provide"
        if self._state == "provide":
            if len(buf) < 14:
                return Step(out)
            assert self._dec is not None
            head = self._dec.update(bytes(buf[:14]))
            del buf[:14]
            if head[:8] != VC:
                raise MSEError("bad verification constant")
            self._provide, self._pad_c = struct.unpack(">IH", head[8:])
            if self._pad_c > MAX_PAD:
                raise MSEError(f"PadC of {self._pad_c} bytes")
            self._state = "padc"
        if self._state == "padc":
            if len(buf) < self._pad_c + 2:
                return Step(out)
            assert self._dec is not None
            tail = self._dec.update(bytes(buf[: self._pad_c + 2]))
            del buf[: self._pad_c + 2]
            (self._ia_len,) = struct.unpack(">H", tail[-2:])
            self._state = "ia"
        if self._state == "ia":
            if len(buf) < self._ia_len:
                return Step(out)
            return self._finish(out)
        return Step(out)

    def _choose(self) -> int:
        common = self._provide & self.allowed
        rc4 = common & CRYPTO_RC4
        plain = common & CRYPTO_PLAINTEXT
        if rc4 and (self.prefer_rc4 or not plain):
            return CRYPTO_RC4
        if plain:
            return CRYPTO_PLAINTEXT
        raise MSEError(f"peer offers crypto {self._provide:#x}, we allow {self.allowed:#x}")

    def _finish(self, out: bytes) -> Step:
        assert self._dec is not None and self._enc is not None
        buf = self._buf
        select = self._choose()
        ia = self._dec.update(bytes(buf[: self._ia_len])) if self._ia_len else b""
        del buf[: self._ia_len]
        rest = bytes(buf)
        buf.clear()
        rc4 = select == CRYPTO_RC4
        if rc4 and rest:
            rest = self._dec.update(rest)
        pad_d = self._rng(self._pad_d) if self._pad_d else b""
        out += self._enc.update(VC + struct.pack(">IH", select, len(pad_d)) + pad_d)
        self._state = "done"
        return Step(
            out,
            Established(
                skey=self._skey,
                method=select,
                encryptor=self._enc if rc4 else None,
                decryptor=self._dec if rc4 else None,
                payload=ia + rest,
            ),
        )
