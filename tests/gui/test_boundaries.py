"""The GUI talks to the engine only through its public modules (design principle 1)."""

from __future__ import annotations

import ast
from pathlib import Path

import ccbt_gui

#: public engine surface the GUI may use (torrent creation is re-exported by ``api``)
ALLOWED = {
    "ccbt_engine",
    "ccbt_engine.api",
    "ccbt_engine.events",
    "ccbt_engine.config",
    "ccbt_engine.magnet",
    "ccbt_engine.metainfo",
    # app-level services that host the facade rather than reach past it: the process's logging
    # set-up and the remote-control server (itself a facade user, like the GUI and the CLI)
    "ccbt_engine.observability.logs",
    "ccbt_engine.remote.service",
}


def _imports(path: Path, top: set[str]) -> set[str]:
    found: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text(), str(path))):
        if isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            names = [node.module]
        elif isinstance(node, ast.Import):
            names = [alias.name for alias in node.names]
        else:
            continue
        found |= {n for n in names if n.split(".")[0] in top}
    return found


def _engine_imports(path: Path) -> set[str]:
    return _imports(path, {"ccbt_engine"})


def test_gui_imports_only_the_engine_facade() -> None:
    root = Path(ccbt_gui.__file__).parent
    offenders = {
        str(p.relative_to(root)): sorted(_engine_imports(p) - ALLOWED)
        for p in root.rglob("*.py")
        if _engine_imports(p) - ALLOWED
    }
    assert offenders == {}


def test_engine_never_imports_qt() -> None:
    import ccbt_engine

    root = Path(ccbt_engine.__file__).parent
    qt = {"PySide6", "PyQt6", "PyQt5", "qasync", "pyqtgraph", "ccbt_gui"}
    assert {str(p): _imports(p, qt) for p in root.rglob("*.py") if _imports(p, qt)} == {}
