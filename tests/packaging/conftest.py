"""The frozen app bundle, built once per test session (about 1.5 min on 2 cores).

``CCBT_BUNDLE=/path/to/dist/ccBitTorrent`` tests an already built bundle instead (the hosted CI
builds it in its own step, then tests it). Without PyInstaller installed the bundle tests are
skipped with the install hint; ``make dist-test`` and the CI install it.
"""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from tests.packaging.support import EXE_SUFFIX, build_bundle


@pytest.fixture(scope="session")
def bundle(tmp_path_factory: pytest.TempPathFactory) -> Path:
    prebuilt = os.environ.get("CCBT_BUNDLE")
    if prebuilt:
        path = Path(prebuilt)
        assert (path / f"ccBitTorrent{EXE_SUFFIX}").is_file(), f"CCBT_BUNDLE={path} is no bundle"
        return path
    pytest.importorskip("PyInstaller", reason="pip install pyinstaller (the 'dist' extra)")
    root = tmp_path_factory.mktemp("pyinstaller")
    path, seconds = build_bundle(root / "dist", root / "build")
    print(f"\nPyInstaller bundle built in {seconds:.0f} s")
    return path
