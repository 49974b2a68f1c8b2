"""What every harness shares: the "only the declared error" rule, input slicing, the runner.

The rule the harnesses enforce is the parsers' contract: hostile input may make a parser raise
its module's declared error type (which the caller handles by dropping the peer, the datagram or
the file) and nothing else. Any other exception escapes :func:`only` and atheris reports it as a
crash, with the input saved for reproduction.

:class:`Input` is a tiny pure-Python stand-in for atheris' ``FuzzedDataProvider`` so the same
``one_input`` runs under atheris, under hypothesis (CI, and ``make fuzz`` where atheris has no
wheel) and on corpus files.
"""

from __future__ import annotations

import contextlib
import hashlib
import os
import sys
import time
import traceback
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from hypothesis.strategies import SearchStrategy

__all__ = ["Input", "chunked", "instrumented", "main", "mutated_inputs", "only"]

#: ``CCBT_FUZZ_ENGINE=hypothesis`` forces the fallback runner even where atheris is installed
ENGINE_ENV = "CCBT_FUZZ_ENGINE"


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


def _atheris_wanted() -> bool:
    if os.environ.get(ENGINE_ENV, "") == "hypothesis":
        return False
    try:
        import atheris  # noqa: F401
    except ImportError:
        return False
    return True


def instrumented(module_name: str) -> contextlib.AbstractContextManager[object]:
    """Coverage-instrument the imports inside the ``with`` block, but only when fuzzing.

    A harness imported by the tests (``module_name`` is not ``"__main__"``) or run where atheris
    is missing imports the parsers plainly.
    """
    if module_name != "__main__" or not _atheris_wanted():
        return contextlib.nullcontext()
    import atheris

    return atheris.instrument_imports(include=["ccbt_engine"])  # type: ignore[no-any-return]


def mutated_inputs(seeds: list[bytes], max_size: int = 600) -> SearchStrategy[bytes]:
    """A hypothesis strategy: random bytes, or a seed with a few bytes overwritten, inserted or
    cut off.

    Pure random bytes rarely get past a parser's first check; mutated seeds reach the deep
    states the way libFuzzer's mutations of the corpus do. Shared by the CI pass
    (tests/unit/test_fuzz_corpus.py) and the hypothesis fallback of :func:`main`.
    """
    from hypothesis import strategies as st

    @st.composite
    def inputs(draw: st.DrawFn) -> bytes:
        if not seeds or draw(st.booleans()):
            return draw(st.binary(max_size=max_size))
        data = bytearray(draw(st.sampled_from(seeds)))
        for _ in range(draw(st.integers(0, 4))):
            pos = draw(st.integers(0, len(data)))
            kind = draw(st.integers(0, 2))
            if kind == 0 and pos < len(data):
                data[pos] = draw(st.integers(0, 255))
            elif kind == 1:
                data[pos:pos] = draw(st.binary(min_size=1, max_size=8))
            else:
                del data[pos:]
        return bytes(data)

    return inputs()


def _flags(argv: list[str]) -> tuple[dict[str, str], list[Path]]:
    """libFuzzer-style ``-name=value`` flags and the corpus directories from a command line."""
    flags: dict[str, str] = {}
    dirs: list[Path] = []
    for arg in argv:
        if arg.startswith("-") and "=" in arg:
            name, _, value = arg[1:].partition("=")
            flags[name] = value
        elif not arg.startswith("-"):
            dirs.append(Path(arg))
    return flags, dirs


#: hypothesis examples per ``@given`` call: hypothesis keeps a tree of everything it tried,
#: so a million examples run as many fresh, differently seeded batches of bounded memory
_BATCH = 20_000


def _hypothesis_main(one_input: Callable[[bytes], None], argv: list[str]) -> int:
    """Run ``one_input`` ``-runs`` times on hypothesis-made inputs (the no-atheris fallback).

    Understands the flags ``make fuzz`` passes (``-runs``, ``-seed``, ``-artifact_prefix``) and
    reads every corpus directory for seeds; other libFuzzer flags are ignored (in particular
    there is no per-input ``-timeout``: a hang shows as a run that does not finish). A failure
    is shrunk by hypothesis, written to ``<artifact_prefix>crash-<sha1>`` and exits 1, like
    libFuzzer; the output ends with the same ``Done``/``stat::`` lines.
    """
    from hypothesis import HealthCheck, Phase, given, seed, settings

    flags, dirs = _flags(argv)
    runs = int(flags.get("runs", "-1"))
    runs = runs if runs >= 0 else 1_000_000
    base_seed = int(flags.get("seed", "0") or "0")
    prefix = flags.get("artifact_prefix", "./")
    seeds = [p.read_bytes() for d in dirs if d.is_dir() for p in sorted(d.iterdir()) if p.is_file()]
    print(f"INFO: hypothesis engine, {len(seeds)} seed inputs, {runs} runs", file=sys.stderr)
    done = 0
    last = b""

    def target(data: bytes) -> None:
        nonlocal done, last
        done += 1
        last = data
        one_input(data)

    started = time.monotonic()
    batch_no = 0
    while done < runs:
        batch = min(_BATCH, runs - done)
        given_target: Callable[[], None] = given(mutated_inputs(seeds))(target)
        configured = settings(
            max_examples=batch,
            deadline=None,
            database=None,
            derandomize=False,
            phases=[Phase.generate, Phase.shrink],
            suppress_health_check=list(HealthCheck),
        )(given_target)
        run_batch = seed(base_seed * 1_000_003 + batch_no)(configured)
        before = done
        try:
            run_batch()
        except Exception:
            traceback.print_exc()
            path = f"{prefix}crash-{hashlib.sha1(last).hexdigest()}"
            Path(path).write_bytes(last)
            print(f"==ERROR: uncaught exception; test unit written to {path}", file=sys.stderr)
            return 1
        if done == before:  # hypothesis declined to generate anything: do not spin
            break
        batch_no += 1
        elapsed = time.monotonic() - started
        print(f"#{done}\tpulse exec/s: {int(done / max(elapsed, 1e-9))}", file=sys.stderr)
    elapsed = time.monotonic() - started
    print(f"Done {done} runs in {int(elapsed)} second(s)", file=sys.stderr)
    print(f"stat::number_of_executed_units: {done}", file=sys.stderr)
    print(f"stat::average_exec_per_sec:     {int(done / max(elapsed, 1e-9))}", file=sys.stderr)
    return 0


def main(one_input: Callable[[bytes], None]) -> None:
    """Fuzz ``one_input`` with the command line's libFuzzer flags and corpus directories.

    Under atheris when it is installed (coverage-guided; see ``make fuzz``), else under the
    hypothesis fallback, so every harness runs on any Python the project supports.
    """
    if not _atheris_wanted():
        sys.exit(_hypothesis_main(one_input, sys.argv[1:]))
    import atheris

    atheris.Setup(sys.argv, one_input)
    atheris.Fuzz()
