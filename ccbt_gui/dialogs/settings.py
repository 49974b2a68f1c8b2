"""The settings dialog, generated from the typed settings model (``iter_fields``).

Every setting appears once, on the page for its section, with its description as the tooltip.
OK validates each changed value on its own first (so every bad field gets its own message, with
ConfigError's ``allowed`` text shown next to it), then the whole set, then writes only the changed
keys to ``config.toml`` with ``set_value_in_file`` (which keeps the user's comments), and finally
emits :attr:`SettingsDialog.applied` so the running app applies them live.
"""

from __future__ import annotations

import typing
from pathlib import Path
from typing import Any, Literal

from PySide6.QtCore import Signal
from PySide6.QtWidgets import (
    QCheckBox,
    QComboBox,
    QDialog,
    QDialogButtonBox,
    QFormLayout,
    QHBoxLayout,
    QLabel,
    QLineEdit,
    QListWidget,
    QPushButton,
    QScrollArea,
    QStackedWidget,
    QVBoxLayout,
    QWidget,
)

from ccbt_engine.config import (
    ConfigError,
    FieldSpec,
    Settings,
    get_value,
    iter_fields,
    parse_value,
    set_value_in_file,
    to_plain,
    update_settings,
)

#: (page title, predicate on the field) in sidebar order; every field lands on exactly one page
PAGES: tuple[tuple[str, typing.Callable[[FieldSpec], bool]], ...] = (
    ("Connection", lambda f: f.section == "network"),
    ("Speed", lambda f: f.section == "limits"),
    ("Downloads", lambda f: f.section == "disk"),
    ("Privacy & security", lambda f: f.section == "security"),
    ("Monitoring", lambda f: f.section == "observability"),
    ("Appearance", lambda f: f.key == "ui.theme"),
    ("Behaviour", lambda f: f.section in ("ui", "remote") and f.key != "ui.theme"),
)
_ERROR_STYLE = "color: #e74c3c;"
#: the "Banned peers" button follows the IP filter settings on the security page
BANS_AFTER_KEY = "security.ip_whitelist_path"


def value_text(value: Any) -> str:
    """A typed value as the text the user edits (and ``parse_value`` reads back)."""
    plain = to_plain(value)
    if isinstance(plain, bool):
        return "true" if plain else "false"
    if isinstance(plain, list):
        return ", ".join(str(v) for v in plain)
    return str(plain)


def _label(spec: FieldSpec) -> str:
    words = [_WORDS.get(w, w) for w in spec.name.split("_")]
    text = " ".join(words)
    return text[:1].upper() + text[1:] + ":"


_WORDS = {
    "alt": "alternative",
    "kib": "(KiB/s)",
    "mb": "(MiB)",
    "min": "(minutes)",
    "ipv6": "IPv6",
    "ip": "IP",
    "tcp": "TCP",
    "utp": "uTP",
    "dht": "DHT",
    "lsd": "LSD",
    "pex": "PEX",
    "upnp": "UPnP",
    "natpmp": "NAT-PMP",
    "tls": "TLS",
    "mmap": "mmap",
    "json": "JSON",
    "ms": "(ms)",
}


class _Field:
    """One setting's editor widget and its error label."""

    def __init__(self, spec: FieldSpec, value: Any) -> None:
        self.spec = spec
        self.original = value_text(value)
        tip = f"{spec.description}\nAllowed: {spec.allowed}\nKey: {spec.key}"
        choices = _literal_choices(spec.annotation)
        self.widget: QWidget
        if spec.annotation is bool:
            box = QCheckBox()
            box.setChecked(self.original == "true")
            self.widget = box
        elif choices is not None:
            combo = QComboBox()
            for choice in choices:
                combo.addItem(str(choice), str(choice))
            combo.setCurrentIndex(max(combo.findData(self.original), 0))
            self.widget = combo
        else:
            edit = QLineEdit(self.original)
            edit.setPlaceholderText(spec.allowed)
            self.widget = edit
        self.widget.setToolTip(tip)
        self.error = QLabel()
        self.error.setStyleSheet(_ERROR_STYLE)
        self.error.setWordWrap(True)
        self.error.hide()

    def text(self) -> str:
        w = self.widget
        if isinstance(w, QCheckBox):
            return "true" if w.isChecked() else "false"
        if isinstance(w, QComboBox):
            return str(w.currentData())
        assert isinstance(w, QLineEdit)
        return w.text().strip()

    def set_text(self, text: str) -> None:
        w = self.widget
        if isinstance(w, QCheckBox):
            w.setChecked(text.lower() in ("true", "1", "yes", "on"))
        elif isinstance(w, QComboBox):
            w.setCurrentIndex(w.findData(text))
        else:
            assert isinstance(w, QLineEdit)
            w.setText(text)

    def show_error(self, message: str | None, detail: str = "") -> None:
        if message:
            self.error.setText("✗ " + message)
            self.error.setToolTip(detail)
            self.error.show()
        else:
            self.error.clear()
            self.error.hide()


def _literal_choices(annotation: Any) -> tuple[Any, ...] | None:
    if typing.get_origin(annotation) is Literal:
        return typing.get_args(annotation)
    return None


class SettingsDialog(QDialog):
    #: (new Settings, {"section.key": (old, new)}) after a successful OK
    applied = Signal(object, dict)

    def __init__(
        self,
        settings: Settings,
        config_path: Path,
        parent: QWidget | None = None,
        *,
        overridden: dict[str, str] | None = None,
        show_bans: typing.Callable[[], object] | None = None,
    ) -> None:
        """``overridden``: keys set by a higher layer than the user file (environment variable,
        project-local file, command line) -> where from; those fields are shown read-only,
        because a value saved to config.toml would not take effect. ``show_bans``: opens the
        banned peers list; given, a button for it sits under the IP filter settings."""
        super().__init__(parent)
        self._overridden = overridden or {}
        self._show_bans = show_bans
        self.bans_button: QPushButton | None = None
        self.setWindowTitle("Options")
        self.resize(760, 560)
        self._settings = settings
        self._path = config_path
        self.fields: dict[str, _Field] = {}
        self.pages = QListWidget()
        self.pages.setMaximumWidth(180)
        self.stack = QStackedWidget()
        specs = list(iter_fields())
        for title, wanted in PAGES:
            self.pages.addItem(title)
            self.stack.addWidget(self._page([s for s in specs if wanted(s)], settings))
        self.pages.currentRowChanged.connect(self.stack.setCurrentIndex)
        self.pages.setCurrentRow(0)
        body = QHBoxLayout()
        body.addWidget(self.pages)
        body.addWidget(self.stack, 1)
        self.summary = QLabel()
        self.summary.setStyleSheet(_ERROR_STYLE)
        self.summary.setWordWrap(True)
        self.summary.hide()
        buttons = QDialogButtonBox(
            QDialogButtonBox.StandardButton.Ok | QDialogButtonBox.StandardButton.Cancel
        )
        buttons.accepted.connect(self.accept)
        buttons.rejected.connect(self.reject)
        note = QLabel(f"Saved to {config_path}")
        note.setEnabled(False)
        layout = QVBoxLayout(self)
        layout.addLayout(body, 1)
        layout.addWidget(self.summary)
        foot = QHBoxLayout()
        foot.addWidget(note, 1)
        foot.addWidget(buttons)
        layout.addLayout(foot)

    def _page(self, specs: list[FieldSpec], settings: Settings) -> QWidget:
        inner = QWidget()
        form = QFormLayout(inner)
        for spec in specs:
            field = _Field(spec, get_value(settings, spec.key))
            self.fields[spec.key] = field
            source = self._overridden.get(spec.key)
            if source:
                field.widget.setEnabled(False)
                field.error.setStyleSheet("")
                field.error.setText(f"set by {source}")
                field.error.setEnabled(False)
                field.error.show()
            cell = QWidget()
            row = QHBoxLayout(cell)
            row.setContentsMargins(0, 0, 0, 0)
            row.addWidget(field.widget, 2)
            row.addWidget(field.error, 1)
            label = QLabel(_label(spec))
            label.setToolTip(field.widget.toolTip())
            form.addRow(label, cell)
            if spec.key == BANS_AFTER_KEY and self._show_bans is not None:
                self.bans_button = QPushButton("Show banned peers…")
                self.bans_button.setToolTip(
                    "Peers banned for bad data, protocol abuse or anomalies; unban them here"
                )
                self.bans_button.clicked.connect(self._show_bans)
                form.addRow(QLabel("Banned peers:"), self.bans_button)
        scroll = QScrollArea()
        scroll.setWidgetResizable(True)
        scroll.setWidget(inner)
        return scroll

    def show_page(self, title: str) -> None:
        for row, (name, _pred) in enumerate(PAGES):
            if name == title:
                self.pages.setCurrentRow(row)

    def changed_texts(self) -> dict[str, str]:
        return {k: f.text() for k, f in self.fields.items() if f.text() != f.original}

    def validate(self) -> Settings | None:
        """The new settings, or None after marking every invalid field."""
        changed = self.changed_texts()
        bad: dict[str, ConfigError] = {}
        for key, text in changed.items():
            try:
                parse_value(key, text)
            except ConfigError as exc:
                bad[key] = exc
        new: Settings | None = None
        if not bad:
            try:
                new = update_settings(self._settings, changed)
            except ConfigError as exc:
                bad[exc.key or ""] = exc
        for key, field in self.fields.items():
            err = bad.get(key)
            field.show_error(_short(err) if err else None, str(err) if err else "")
        if bad:
            first = next(iter(bad))
            self._reveal(first)
            self.summary.setText(
                f"{len(bad)} setting(s) not saved: "
                + "; ".join(str(e).splitlines()[0] for e in bad.values())
            )
            self.summary.show()
            return None
        self.summary.hide()
        return new

    def _reveal(self, key: str) -> None:
        field = self.fields.get(key)
        if field is None:
            return
        for row, (_title, wanted) in enumerate(PAGES):
            if wanted(field.spec):
                self.pages.setCurrentRow(row)
        field.widget.setFocus()

    def accept(self) -> None:
        new = self.validate()
        if new is None:
            return
        changed = self.changed_texts()
        try:
            for key, text in changed.items():
                set_value_in_file(self._path, key, text)
        except ConfigError as exc:
            field = self.fields.get(exc.key or "")
            if field is not None:
                field.show_error(_short(exc), str(exc))
            self.summary.setText(f"Could not save {self._path}: {exc}")
            self.summary.show()
            return
        diff = self._settings.diff(new)
        self._settings = new
        for field in self.fields.values():
            field.original = field.text()
        self.applied.emit(new, diff)
        super().accept()


def _short(err: ConfigError) -> str:
    return f"allowed: {err.allowed}" if err.allowed else str(err).splitlines()[0]
