"""Fuzz harnesses for every parser that reads untrusted bytes (see docs/security.md, "Fuzzing").

Each ``fuzz_<target>.py`` exposes ``one_input(data: bytes) -> None`` and runs under atheris with
``python -m fuzz.fuzz_<target> [libFuzzer flags] [corpus dir]``.
"""
