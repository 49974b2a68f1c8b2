"""What every harness shares: the "only the declared error" rule, input slicing, the runner.

The rule the harnesses enforce is the parsers' contract: hostile input may make a parser raise
its module's declared error type (which the caller handles by dropping the peer, the datagram or
the file) and nothing else. Any other exception escapes :func:`only` and atheris reports it as a
crash, with the input saved for reproduction.

:class:`Input` is a tiny pure-Python stand-in for atheris' ``FuzzedDataProvider`` so the same
``one_input`` runs under atheris, under hypothesis (CI without atheris) and on corpus files.
"""

from __future__ import annotations

import contextlib
import sys
from collections.abc import Callable, Iterator

__all__ = ["Input", "chunked", "instrumented", "main", "only"]


@contextlib.contextmanager
def only(*declared: type[BaseException]) -> Iterator[None]:
    """Swallow the declared error types (after checking their message renders); let the rest out.

    ``str(exc)`` is part of the check: the message of a parser error ends up in logs and in the
    GUI, so building it must not fail on hostile bytes either.
    """
    try:
        yield
    except declared as exc:
        str(exc)


class Input:
    """Consume a fuzz input piece by piece; running out yields zeros/empty, never an error.

    Structured harnesses take their parameters (mode, chunk sizes, piece count ...) from the
    front of the input and the payload from the rest, so libFuzzer's mutations reach both.
    """

    __slots__ = ("data", "pos")

    def __init__(self, data: bytes) -> None:
        self.data = data
        self.pos = 0

    @property
    def remaining(self) -> int:
        return len(self.data) - self.pos

    def take(self, n: int) -> bytes:
        out = self.data[self.pos : self.pos + n]
        self.pos += len(out)
        return out

    def uint(self, nbytes: int) -> int:
        return int.from_bytes(self.take(nbytes), "big")

    def byte(self) -> int:
        return self.uint(1)

    def flag(self) -> bool:
        return bool(self.byte() & 1)

    def sized(self, nbytes: int = 2) -> bytes:
        """A length-prefixed field (``nbytes`` of big-endian length, then that many bytes)."""
        return self.take(self.uint(nbytes))

    def rest(self) -> bytes:
        return self.take(self.remaining)


def chunked(data: bytes, sizes: bytes) -> list[bytes]:
    """Split ``data`` into chunks whose lengths cycle through ``sizes`` (each byte + 1).

    Empty ``sizes`` means one chunk. Stream parsers must give the same result however the bytes
    arrive, and the chunk boundaries are where incremental parsers hide their bugs.
    """
    if not sizes:
        return [data] if data else []
    out: list[bytes] = []
    pos = i = 0
    while pos < len(data):
        step = sizes[i % len(sizes)] + 1
        out.append(data[pos : pos + step])
        pos += step
        i += 1
    return out


def instrumented(module_name: str) -> contextlib.AbstractContextManager[object]:
    """Coverage-instrument the imports inside the ``with`` block, but only when fuzzing.

    A harness imported by the tests (``module_name`` is not ``"__main__"``) or run where atheris
    is missing imports the parsers plainly.
    """
    if module_name != "__main__":
        return contextlib.nullcontext()
    try:
        import atheris
    except ImportError:
        return contextlib.nullcontext()
    return atheris.instrument_imports(include=["ccbt_engine"])  # type: ignore[no-any-return]


def main(one_input: Callable[[bytes], None]) -> None:
    """Run ``one_input`` under atheris with the command line's libFuzzer flags and corpus."""
    import atheris

    atheris.Setup(sys.argv, one_input)
    atheris.Fuzz()
