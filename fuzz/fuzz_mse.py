"""Fuzz the MSE/PE handshake: initiator and receiver fed hostile bytes; only MSEError escapes.

Raw bytes alone never get past the first hash check (PadA is found by scanning for
``HASH('req1', S)``), so besides raw input (modes 0 and 1) the harness plays the *other* side
honestly up to the encrypted part and lets the fuzzer write the plaintext that then gets
encrypted with the right RC4 key (modes 2 and 3): crypto_provide/select, the pad lengths, len(IA)
and the payload are then fully under the fuzzer's control, as they are for a hostile peer.

Both sides use fixed "random" generators, so keys, secrets and pads are the same for every run
and a crash reproduces from its input alone; when fuzzing, the module's ``pow`` is memoised
for speed.
"""

from __future__ import annotations

import sys

from fuzz.support import Input, chunked, instrumented, main, only

with instrumented(__name__):
    from ccbt_engine.protocol import mse
    from ccbt_engine.protocol.mse import MSEError, MSEInitiator, MSEReceiver
    from ccbt_engine.protocol.rc4 import RC4

SKEY = bytes(range(20))
OTHER = b"\xee" * 20


def _rng_a(n: int) -> bytes:
    return b"\x5a" * n


def _rng_b(n: int) -> bytes:
    return b"\xa5" * n


_POW_CACHE: dict[tuple[int, int, int], int] = {}


def _cached_pow(base: int, exp: int, mod: int) -> int:
    """``pow`` with memory: the fixed key pairs cost one 768-bit exponentiation each, once.

    Without it every input pays two or three (about 0.4 ms each), which would make the million
    runs take hours; the values are the same, only remembered.
    """
    key = (base, exp, mod)
    value = _POW_CACHE.get(key)
    if value is None:
        if len(_POW_CACHE) > 64:
            _POW_CACHE.clear()
        value = _POW_CACHE[key] = pow(base, exp, mod)
    return value


def _find_skey(req2: bytes) -> bytes | None:
    return {mse.req2_hash(SKEY): SKEY, mse.req2_hash(OTHER): OTHER}.get(req2)


# The honest halves the structured modes replay: both sides' public keys and the shared secret
# their fixed generators lead to (the private DH class is used to get the secret).
_DH_A = mse._DH(_rng_a)
_DH_B = mse._DH(_rng_b)
_SECRET = _DH_A.secret(_DH_B.public)
_REQ1 = mse._hash(b"req1", _SECRET)
_REQ23 = mse._xor(mse.req2_hash(SKEY), mse._hash(b"req3", _SECRET))
_KEY_A = mse._hash(b"keyA", _SECRET, SKEY)
_KEY_B = mse._hash(b"keyB", _SECRET, SKEY)


def _feed(side: MSEInitiator | MSEReceiver, chunks: list[bytes]) -> None:
    for chunk in chunks:
        step = side.feed(chunk)
        if step.established is not None:
            assert step.established.skey in (SKEY, OTHER)
            assert step.established.method in (mse.CRYPTO_PLAINTEXT, mse.CRYPTO_RC4)
            return


def one_input(data: bytes) -> None:
    inp = Input(data)
    head = inp.byte()
    mode = head & 3
    methods = (head >> 2 & 3) or mse.CRYPTO_ALL
    sizes = inp.take(inp.byte() % 6)
    if mode == 0:
        receiver = MSEReceiver(_find_skey, allowed=methods, pad_max=0, rng=_rng_b)
        stream = inp.rest()
        with only(MSEError):
            _feed(receiver, chunked(stream, sizes))
    elif mode == 1:
        initiator = MSEInitiator(SKEY, provide=methods, pad_max=0, rng=_rng_a)
        initiator.start()
        with only(MSEError):
            _feed(initiator, chunked(inp.rest(), sizes))
    elif mode == 2:
        # receiver: honest Ya, PadA and hashes, then the fuzzer's plaintext under keyA
        receiver = MSEReceiver(
            _find_skey, allowed=methods, prefer_rc4=bool(head & 16), pad_max=0, rng=_rng_b
        )
        pad_a = inp.take(inp.uint(2) % 600)
        plain = inp.rest()
        stream = _DH_A.public + pad_a + _REQ1 + _REQ23 + RC4(_KEY_A).update(plain)
        with only(MSEError):
            _feed(receiver, chunked(stream, sizes))
    else:
        # initiator: honest Yb, then PadB, then the fuzzer's plaintext under keyB
        initiator = MSEInitiator(SKEY, provide=methods, pad_max=0, rng=_rng_a)
        initiator.start()
        pad_b = inp.take(inp.uint(2) % 600)
        plain = inp.rest()
        stream = _DH_B.public + pad_b + RC4(_KEY_B).update(plain)
        with only(MSEError):
            _feed(initiator, chunked(stream, sizes))


if __name__ == "__main__":
    # only in the fuzzing process: imported by the tests, the module stays untouched
    mse.pow = _cached_pow  # type: ignore[attr-defined]  # module global shadows the builtin
    main(one_input)
    sys.exit(0)
