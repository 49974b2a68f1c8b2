"""Rewrite the per-section settings tables in docs/configuration.md from the settings model.

Why a generator: every engineer who adds a setting would otherwise hand-copy its default, bounds
and description into the docs, and the copies drift. The prose around the tables is kept; only
the rows between each ``### `[section]` `` heading's table header and the table's end are
replaced. ``--check`` exits 1 when the file is out of date (used by tests/unit/test_config.py).

Usage: python scripts/gen_config_docs.py [--check]
"""

from __future__ import annotations

import sys
from pathlib import Path

from ccbt_engine.cli.config_cmd import format_value
from ccbt_engine.config.model import iter_fields

DOCS = Path(__file__).resolve().parents[1] / "docs" / "configuration.md"
HEADER = "| key | default | allowed | meaning |"
#: defaults that depend on the machine are described instead of printed
DESCRIBED_DEFAULTS = {"disk.download_path": "platform Downloads folder"}


def row(key: str, default: object, allowed: str, description: str) -> str:
    shown = DESCRIBED_DEFAULTS.get(key) or f"`{format_value(default) or chr(34) * 2}`"
    return f"| `{key}` | {shown} | {allowed} | {description} |"


def render(text: str) -> str:
    """``text`` with every section table regenerated (sections without a heading are an error)."""
    rows: dict[str, list[str]] = {}
    for spec in iter_fields():
        rows.setdefault(spec.section, []).append(
            row(spec.key, spec.default, spec.allowed, spec.description)
        )
    lines = text.splitlines()
    out: list[str] = []
    section: str | None = None
    i = 0
    while i < len(lines):
        line = lines[i]
        if line.startswith("### `[") and line.rstrip().endswith("]`"):
            section = line.split("[", 1)[1].split("]", 1)[0]
        if line.strip() == HEADER and section in rows:
            out.extend([line, lines[i + 1]])  # header and the | --- | line
            out.extend(rows.pop(section))
            i += 2
            while i < len(lines) and lines[i].startswith("| `"):
                i += 1
            section = None
            continue
        out.append(line)
        i += 1
    if rows:
        raise SystemExit(f"no table in {DOCS.name} for sections: {', '.join(rows)}")
    return "\n".join(out) + "\n"


def main(argv: list[str]) -> int:
    current = DOCS.read_text(encoding="utf-8")
    fresh = render(current)
    if "--check" in argv:
        if fresh != current:
            print(f"{DOCS} is out of date: run python scripts/gen_config_docs.py", file=sys.stderr)
            return 1
        return 0
    DOCS.write_text(fresh, encoding="utf-8")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
