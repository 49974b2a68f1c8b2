"""MSE/PE: the sans-I/O handshake against the spec's formulas, against itself, and against junk.

Spec compliance is checked with an independent re-derivation (hashlib + cryptography's ARC4
used directly), so a bug shared by our initiator and our receiver cannot pass unnoticed.
"""

from __future__ import annotations

import hashlib
import random
import struct
from collections.abc import Callable, Iterator

import pytest
from cryptography.hazmat.decrepit.ciphers.algorithms import ARC4
from cryptography.hazmat.primitives.ciphers import Cipher
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from ccbt_engine.net.encrypted import StreamCrypto, skey_finder
from ccbt_engine.protocol import mse
from ccbt_engine.protocol.mse import (
    CRYPTO_ALL,
    CRYPTO_PLAINTEXT,
    CRYPTO_RC4,
    KEY_LEN,
    MAX_PAD,
    Established,
    MSEError,
    MSEInitiator,
    MSEReceiver,
    P,
    classify_incoming,
)
from ccbt_engine.protocol.rc4 import RC4
from ccbt_engine.protocol.wire import encode_handshake

SKEY = bytes(range(20))
OTHER = bytes(range(1, 21))
HANDSHAKE = encode_handshake(SKEY, b"-CC0001-abcdefghijkl")


def seeded(seed: int) -> Callable[[int], bytes]:
    r = random.Random(seed)
    return r.randbytes


def lookup(*known: bytes) -> mse.SkeyLookup:
    table = {hashlib.sha1(b"req2" + k).digest(): k for k in known}
    return table.get


def spec_rc4(key: bytes) -> Callable[[bytes], bytes]:
    ctx = Cipher(ARC4(key), mode=None).encryptor()
    ctx.update(bytes(1024))
    return ctx.update


def chunks(data: bytes, sizes: list[int]) -> Iterator[bytes]:
    i = 0
    for n in sizes:
        if i >= len(data):
            return
        yield data[i : i + max(n, 1)]
        i += max(n, 1)
    if i < len(data):
        yield data[i:]


class Pipe:
    """Runs an initiator against a receiver, delivering bytes in the given chunk sizes.

    Like the connection shell, bytes arriving after a side is established bypass its core and
    go through the established decryptor; ``a_payload``/``b_payload`` collect all of it.
    """

    def __init__(self, a: MSEInitiator, b: MSEReceiver, sizes: list[int] | None = None) -> None:
        self.a, self.b = a, b
        self.sizes = sizes or []
        self.done: dict[str, Established] = {}
        self.payload = {"a": b"", "b": b""}

    def _deliver(self, data: bytes, side: str) -> bytes:
        core: MSEInitiator | MSEReceiver = self.a if side == "a" else self.b
        out = b""
        for part in chunks(data, self.sizes) if self.sizes else [data]:
            done = self.done.get(side)
            if done is not None:
                self.payload[side] += done.decryptor.update(part) if done.decryptor else part
                continue
            step = core.feed(part)
            out += step.outgoing
            if step.established is not None:
                self.done[side] = step.established
                self.payload[side] += step.established.payload
        return out

    def run(self, b_after: bytes = b"") -> tuple[Established, Established]:
        to_b = self.a.start()
        to_a = self._deliver(to_b, "b")  # message 2
        to_b = self._deliver(to_a, "a")  # message 3
        to_a = self._deliver(to_b, "b")  # message 4
        b_done = self.done["b"]
        if b_done.encryptor is not None:
            b_after = b_done.encryptor.update(b_after)
        self._deliver(to_a + b_after, "a")
        return self.done["a"], b_done


# -- RC4 ----------------------------------------------------------------------------------
def test_rc4_known_answer() -> None:
    # RFC 6229 keystream at offset 0 for the 40- and 128-bit test keys
    keystream = RC4(bytes.fromhex("0102030405"), discard=0).update(bytes(16))
    assert keystream.hex() == "b2396305f03dc027ccc3524a0a1118a8"
    key = bytes(range(1, 17))
    assert RC4(key, discard=0).update(bytes(16)).hex() == "9ac7cc9a609d1ef7b2932899cde41b97"


def test_rc4_discards_1024_bytes_and_streams() -> None:
    raw = RC4(b"secret key", discard=0).update(bytes(1024 + 64))
    stream = RC4(b"secret key")
    assert stream.update(bytes(10)) + stream.update(bytes(54)) == raw[1024:]


# -- incoming detection ---------------------------------------------------------------------
def test_classify_incoming() -> None:
    assert classify_incoming(b"") is None
    assert classify_incoming(b"\x13BitTorr") is None
    assert classify_incoming(HANDSHAKE[:20]) is True
    assert classify_incoming(HANDSHAKE) is True
    assert classify_incoming(b"\x13BitTorrenX") is False
    assert classify_incoming(b"\x00") is False


# -- spec compliance ------------------------------------------------------------------------
def test_initiator_message3_matches_the_spec() -> None:
    rng = seeded(1)
    a = MSEInitiator(SKEY, provide=CRYPTO_ALL, initial_payload=HANDSHAKE, pad_c=5, rng=rng)
    msg1 = a.start()
    assert KEY_LEN <= len(msg1) <= KEY_LEN + MAX_PAD
    ya = int.from_bytes(msg1[:KEY_LEN], "big")
    xb = 0xC0FFEE << 100
    yb = pow(2, xb, P).to_bytes(KEY_LEN, "big")
    secret = pow(ya, xb, P).to_bytes(KEY_LEN, "big")
    step = a.feed(yb + b"\xaa" * 7)  # Yb and the start of PadB
    msg3 = step.outgoing
    assert step.established is None
    assert msg3[:20] == hashlib.sha1(b"req1" + secret).digest()
    req2 = hashlib.sha1(b"req2" + SKEY).digest()
    req3 = hashlib.sha1(b"req3" + secret).digest()
    assert bytes(x ^ y for x, y in zip(msg3[20:40], req3, strict=True)) == req2
    plain = spec_rc4(hashlib.sha1(b"keyA" + secret + SKEY).digest())(msg3[40:])
    assert plain[:8] == bytes(8)
    provide, pad_len = struct.unpack(">IH", plain[8:14])
    assert (provide, pad_len) == (CRYPTO_ALL, 5)
    (ia_len,) = struct.unpack(">H", plain[19:21])
    assert plain[21:] == HANDSHAKE and ia_len == len(HANDSHAKE)
    # B answers per spec: ENCRYPT(VC, crypto_select, len(PadD), PadD) after its PadB
    b_enc = spec_rc4(hashlib.sha1(b"keyB" + secret + SKEY).digest())
    reply = b_enc(bytes(8) + struct.pack(">IH", CRYPTO_RC4, 3) + b"xyz" + b"payload")
    done = a.feed(b"\xaa" * 20 + reply).established
    assert done is not None and done.method == CRYPTO_RC4 and done.payload == b"payload"
    assert done.encryptor is not None
    # after message 3 our stream continues keyA's keystream
    enc_again = spec_rc4(hashlib.sha1(b"keyA" + secret + SKEY).digest())
    enc_again(bytes(len(msg3) - 40))
    assert done.encryptor.update(b"more") == enc_again(b"more")


def spec_message3(
    ya_bytes: bytes,
    xa: int,
    skey: bytes,
    *,
    provide: int = CRYPTO_RC4,
    pad_c: bytes = b"",
    ia: bytes = b"",
    pad_a: bytes = b"",
) -> tuple[bytes, Callable[[bytes], bytes], bytes]:
    """Message 3 built from the spec by hand, for a receiver whose message 2 began ``ya_bytes``.

    Returns the message, A's RC4 (to continue the stream) and the shared secret.
    """
    secret = pow(int.from_bytes(ya_bytes[:KEY_LEN], "big"), xa, P).to_bytes(KEY_LEN, "big")
    enc = spec_rc4(hashlib.sha1(b"keyA" + secret + skey).digest())
    req2 = hashlib.sha1(b"req2" + skey).digest()
    req3 = hashlib.sha1(b"req3" + secret).digest()
    body = bytes(8) + struct.pack(">IH", provide, len(pad_c)) + pad_c
    body += struct.pack(">H", len(ia)) + ia
    msg = (
        pad_a
        + hashlib.sha1(b"req1" + secret).digest()
        + bytes(x ^ y for x, y in zip(req2, req3, strict=True))
        + enc(body)
    )
    return msg, enc, secret


XA = 0xBADC0DE << 120
YA = pow(2, XA, P).to_bytes(KEY_LEN, "big")


def test_receiver_answers_a_spec_initiator() -> None:
    b = MSEReceiver(
        lookup(OTHER, SKEY), allowed=CRYPTO_ALL, prefer_rc4=True, pad_d=4, rng=seeded(2)
    )
    msg2 = b.feed(YA + b"\x01" * 33).outgoing  # Ya and PadA
    assert KEY_LEN <= len(msg2) <= KEY_LEN + MAX_PAD
    msg3, a_enc, secret = spec_message3(msg2, XA, SKEY, provide=CRYPTO_ALL, pad_c=b"pc", ia=b"IA")
    step = b.feed(msg3 + a_enc(b"after"))
    done = step.established
    assert done is not None
    assert done.skey == SKEY and done.method == CRYPTO_RC4  # prefer_rc4: RC4 when offered
    assert done.payload == b"IAafter"
    b_dec = spec_rc4(hashlib.sha1(b"keyB" + secret + SKEY).digest())
    head = b_dec(step.outgoing)
    assert head[:8] == bytes(8)
    assert struct.unpack(">IH", head[8:14]) == (CRYPTO_RC4, 4) and len(head) == 18


def test_receiver_plaintext_payload_after_encrypted_ia() -> None:
    b = MSEReceiver(lookup(SKEY), allowed=CRYPTO_ALL, prefer_rc4=False, rng=seeded(3))
    msg2 = b.feed(YA).outgoing
    msg3, _, _ = spec_message3(msg2, XA, SKEY, provide=CRYPTO_ALL, ia=b"IA")
    done = b.feed(msg3 + b"clear text").established
    assert done is not None and done.method == CRYPTO_PLAINTEXT
    assert done.encryptor is None and done.decryptor is None
    assert done.payload == b"IAclear text"  # the IA was still RC4 on the wire


# -- ours against ours ------------------------------------------------------------------------
@pytest.mark.parametrize("ia", [b"", HANDSHAKE])
@pytest.mark.parametrize(
    ("provide", "allowed", "prefer", "method"),
    [
        (CRYPTO_ALL, CRYPTO_ALL, True, CRYPTO_RC4),
        (CRYPTO_ALL, CRYPTO_ALL, False, CRYPTO_PLAINTEXT),
        (CRYPTO_RC4, CRYPTO_ALL, False, CRYPTO_RC4),
        (CRYPTO_PLAINTEXT, CRYPTO_ALL, True, CRYPTO_PLAINTEXT),
        (CRYPTO_ALL, CRYPTO_RC4, False, CRYPTO_RC4),
        (CRYPTO_ALL, CRYPTO_PLAINTEXT, True, CRYPTO_PLAINTEXT),
    ],
)
@pytest.mark.parametrize("chunk", [0, 1, 7, 97])
def test_roundtrip(
    ia: bytes, provide: int, allowed: int, prefer: bool, method: int, chunk: int
) -> None:
    a = MSEInitiator(SKEY, provide=provide, initial_payload=ia, pad_c=9, rng=seeded(chunk))
    b = MSEReceiver(lookup(OTHER, SKEY), allowed=allowed, prefer_rc4=prefer, pad_d=11)
    pipe = Pipe(a, b, [chunk] * 100_000 if chunk else None)
    a_done, b_done = pipe.run(b_after=b"hi A")
    assert a_done.method == b_done.method == method
    assert a_done.skey == b_done.skey == SKEY
    assert pipe.payload == {"a": b"hi A", "b": ia}
    if method == CRYPTO_RC4:
        assert a_done.encryptor and b_done.decryptor and b_done.encryptor and a_done.decryptor
        assert b_done.decryptor.update(a_done.encryptor.update(b"ping")) == b"ping"
        assert a_done.decryptor.update(b_done.encryptor.update(b"pong")) == b"pong"
        assert a_done.encryptor.update(b"ping") != b"ping"
    else:
        assert a_done.encryptor is None and b_done.decryptor is None


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    sizes=st.lists(st.integers(1, 700), min_size=1, max_size=30),
    seed=st.integers(0, 2**32),
    pad_c=st.integers(0, MAX_PAD),
    pad_d=st.integers(0, MAX_PAD),
    ia=st.binary(max_size=300),
)
def test_roundtrip_any_chunking(
    sizes: list[int], seed: int, pad_c: int, pad_d: int, ia: bytes
) -> None:
    a = MSEInitiator(SKEY, initial_payload=ia, pad_c=pad_c, rng=seeded(seed))
    b = MSEReceiver(lookup(SKEY), prefer_rc4=True, pad_d=pad_d, rng=seeded(seed + 1))
    pipe = Pipe(a, b, sizes)
    a_done, b_done = pipe.run(b_after=b"x" * 50)
    assert pipe.payload == {"a": b"x" * 50, "b": ia}
    assert a_done.method == b_done.method == CRYPTO_RC4


def test_pads_stay_within_bounds() -> None:
    seen = set()
    for seed in range(300):
        a = MSEInitiator(SKEY, rng=seeded(seed))
        msg1 = a.start()
        assert KEY_LEN <= len(msg1) <= KEY_LEN + MAX_PAD
        seen.add(len(msg1) - KEY_LEN)
    assert len(seen) > 100  # the pad really varies
    assert len(MSEInitiator(SKEY, pad_max=0).start()) == KEY_LEN
    for bad in (-1, MAX_PAD + 1):
        with pytest.raises(ValueError):
            MSEInitiator(SKEY, pad_max=bad)
        with pytest.raises(ValueError):
            MSEInitiator(SKEY, pad_c=bad)
        with pytest.raises(ValueError):
            MSEReceiver(lookup(SKEY), pad_d=bad)
    with pytest.raises(ValueError):
        MSEInitiator(SKEY, provide=0)
    with pytest.raises(ValueError):
        MSEReceiver(lookup(SKEY), allowed=4)


# -- refusals --------------------------------------------------------------------------------
def test_unknown_skey_is_refused() -> None:
    a = MSEInitiator(OTHER)
    b = MSEReceiver(lookup(SKEY))
    with pytest.raises(MSEError, match="SKEY"):
        Pipe(a, b).run()
    with pytest.raises(MSEError):  # and stays dead
        b.feed(b"more")


def test_no_common_method_is_refused() -> None:
    a = MSEInitiator(SKEY, provide=CRYPTO_PLAINTEXT)
    b = MSEReceiver(lookup(SKEY), allowed=CRYPTO_RC4)
    with pytest.raises(MSEError, match="crypto"):
        Pipe(a, b).run()


class _RogueReceiver(MSEReceiver):
    def _choose(self) -> int:
        return CRYPTO_RC4


def test_initiator_refuses_a_method_it_did_not_offer() -> None:
    a = MSEInitiator(SKEY, provide=CRYPTO_PLAINTEXT)
    with pytest.raises(MSEError, match="not offered"):
        Pipe(a, _RogueReceiver(lookup(SKEY))).run()


def test_pad_a_longer_than_512_is_refused() -> None:
    b = MSEReceiver(lookup(SKEY))
    msg2 = b.feed(YA).outgoing
    msg3, _, _ = spec_message3(msg2, XA, SKEY, pad_a=bytes(MAX_PAD + 1))
    with pytest.raises(MSEError, match="req1"):
        b.feed(msg3)


def test_pad_a_of_exactly_512_is_fine() -> None:
    b = MSEReceiver(lookup(SKEY))
    msg2 = b.feed(YA).outgoing
    msg3, _, _ = spec_message3(msg2, XA, SKEY, pad_a=bytes(MAX_PAD))
    assert b.feed(msg3).established is not None


def test_pad_c_longer_than_512_is_refused() -> None:
    b = MSEReceiver(lookup(SKEY))
    msg2 = b.feed(YA).outgoing
    msg3, _, _ = spec_message3(msg2, XA, SKEY, pad_c=bytes(MAX_PAD + 1))
    with pytest.raises(MSEError, match="PadC"):
        b.feed(msg3)


def test_bad_verification_constant_is_refused() -> None:
    b = MSEReceiver(lookup(SKEY))
    msg2 = b.feed(YA).outgoing
    msg3, _, _ = spec_message3(msg2, XA, SKEY)
    broken = msg3[:40] + bytes([msg3[40] ^ 1]) + msg3[41:]
    with pytest.raises(MSEError, match="verification"):
        b.feed(broken)


def test_initiator_needs_vc_within_pad_b_limit() -> None:
    a = MSEInitiator(SKEY)
    a.start()
    a.feed(pow(2, XA, P).to_bytes(KEY_LEN, "big"))
    with pytest.raises(MSEError, match="verification"):
        a.feed(bytes(MAX_PAD + 8))


@pytest.mark.parametrize("y", [0, 1, P - 1, P, 2**768 - 1])
def test_degenerate_public_keys_are_refused(y: int) -> None:
    with pytest.raises(MSEError, match="public key"):
        MSEReceiver(lookup(SKEY)).feed(y.to_bytes(KEY_LEN, "big"))
    a = MSEInitiator(SKEY)
    a.start()
    with pytest.raises(MSEError, match="public key"):
        a.feed(y.to_bytes(KEY_LEN, "big"))


@settings(max_examples=150, deadline=None)
@given(data=st.binary(max_size=1500), sizes=st.lists(st.integers(1, 400), max_size=10))
def test_garbage_raises_only_mse_error(data: bytes, sizes: list[int]) -> None:
    for core in (MSEReceiver(lookup(SKEY)), MSEInitiator(SKEY)):
        if isinstance(core, MSEInitiator):
            core.start()
        try:
            for part in chunks(data, sizes) if sizes else [data]:
                assert core.feed(part).established is None
        except MSEError:
            pass


@settings(max_examples=100, deadline=None)
@given(tail=st.binary(min_size=1, max_size=700))
def test_garbage_after_a_valid_key_raises_only_mse_error(tail: bytes) -> None:
    b = MSEReceiver(lookup(SKEY))
    b.feed(YA)
    try:
        b.feed(tail)
    except MSEError:
        return
    assert len(tail) < MAX_PAD + 20  # without req1 it can only be waiting


# -- the connection's layer (net/encrypted.py) ---------------------------------------------------
def _shuttle(a: StreamCrypto, b: StreamCrypto, first: bytes) -> tuple[bytes, bytes]:
    """Moves bytes until both are established; returns the payload each side received."""
    got_a = got_b = b""
    to_b, to_a = first, b""
    for _ in range(10):
        if to_b:
            reply, payload = b.receive(to_b)
            got_b += payload
            to_b, to_a = b"", to_a + reply
        if to_a:
            reply, payload = a.receive(to_a)
            got_a += payload
            to_a, to_b = b"", to_b + reply
        if not (to_a or to_b):
            break
    return got_a, got_b


@pytest.mark.parametrize(
    ("out_policy", "in_policy", "rc4"),
    [("enabled", "enabled", False), ("forced", "enabled", True), ("enabled", "forced", True)],
)
def test_stream_crypto_after_handshake(out_policy: str, in_policy: str, rc4: bool) -> None:
    """Both offered and allowed -> plaintext payload (libtorrent's default); forced -> RC4."""
    a = StreamCrypto(out_policy, outgoing_skey=SKEY)  # type: ignore[arg-type]
    b = StreamCrypto(in_policy, skey_lookup=skey_finder(lambda: [OTHER, SKEY]))  # type: ignore[arg-type]
    assert a.pending and b.pending
    _, got_b = _shuttle(a, b, a.start(HANDSHAKE))
    assert got_b == HANDSHAKE
    assert b.skey == SKEY and b.mse and b.encrypted == rc4 and not b.pending
    wire_bytes = b.send(b"reply")
    assert (wire_bytes != b"reply") == rc4
    assert a.receive(bytes(wire_bytes)) == (b"", b"reply")
    assert a.encrypted == rc4 and a.mse and not a.pending


def test_stream_crypto_plain_incoming() -> None:
    finder = skey_finder(lambda: [SKEY])
    enabled = StreamCrypto("enabled", skey_lookup=finder)
    assert enabled.receive(HANDSHAKE[:5]) == (b"", b"")  # still could be either
    assert enabled.receive(HANDSHAKE[5:]) == (b"", HANDSHAKE)
    assert not enabled.mse and not enabled.encrypted
    forced = StreamCrypto("forced", skey_lookup=finder)
    with pytest.raises(MSEError, match="forced"):
        forced.receive(HANDSHAKE)
    disabled = StreamCrypto("disabled", skey_lookup=finder)
    assert not disabled.pending
    assert disabled.receive(b"\x00junk") == (b"", b"\x00junk")  # left to the wire parser


def test_stream_crypto_forced_incoming_refuses_plaintext_pe() -> None:
    msg1 = MSEInitiator(SKEY, provide=CRYPTO_PLAINTEXT)
    b = StreamCrypto("forced", skey_lookup=skey_finder(lambda: [SKEY]))
    reply, _ = b.receive(msg1.start())
    with pytest.raises(MSEError, match="crypto"):
        b.receive(msg1.feed(reply).outgoing)


def test_stream_crypto_outgoing_disabled_is_plain() -> None:
    a = StreamCrypto("disabled", outgoing_skey=SKEY)
    assert not a.pending
    assert a.start(HANDSHAKE) == HANDSHAKE
    assert a.send(b"x") == b"x"


def test_initiator_fails_fast_on_a_plain_answer() -> None:
    """A plain-only peer that mistook Ya for a handshake replies in plain: no 20 s wait."""
    a = MSEInitiator(SKEY)
    a.start()
    assert a.feed(HANDSHAKE[:19]).established is None  # not yet sure
    with pytest.raises(MSEError, match="plain"):
        a.feed(HANDSHAKE[19:])


@settings(max_examples=100, deadline=None)
@given(
    data=st.binary(max_size=1200),
    sizes=st.lists(st.integers(1, 300), max_size=8),
    policy=st.sampled_from(["disabled", "enabled", "forced"]),
)
def test_stream_crypto_incoming_garbage_raises_only_mse_error(
    data: bytes, sizes: list[int], policy: str
) -> None:
    layer = StreamCrypto(policy, skey_lookup=skey_finder(lambda: [SKEY]))  # type: ignore[arg-type]
    try:
        for part in chunks(data, sizes) if sizes else [data]:
            layer.receive(part)
    except MSEError:
        return
    assert not layer.mse  # junk never completes a handshake
