"""Light/dark/system themes: qt-material when installed, a Fusion palette otherwise.

"system" follows the desktop's colour scheme (QStyleHints.colorScheme, Qt >= 6.5). The charts
are told the colours separately because pyqtgraph does not read Qt stylesheets.
"""

from __future__ import annotations

import logging

from PySide6.QtCore import Qt
from PySide6.QtGui import QColor, QGuiApplication, QPalette
from PySide6.QtWidgets import QApplication

log = logging.getLogger(__name__)

_MATERIAL = {"dark": "dark_blue.xml", "light": "light_blue.xml"}
#: extra qt-material CSS: denser tables (its defaults are sized for touch screens), tree boxes
_DENSITY = """
QTableView, QTreeView, QListWidget { font-size: 13px; }
QHeaderView::section { padding: 2px 4px; font-size: 12px; }
QTableView::item, QTreeView::item { padding: 0px 2px; height: 22px; }
QTabBar::tab { padding: 4px 12px; height: 22px; }
QToolBar QToolButton { padding: 2px 6px; }
/* qt-material styles table and list check boxes but not tree ones (the Files tree) */
QTreeView::indicator { width: 18px; height: 18px; }
QTreeView::indicator:checked { image: url(icon:/primary/checkbox_checked.svg); }
QTreeView::indicator:unchecked { image: url(icon:/primary/checkbox_unchecked.svg); }
QTreeView::indicator:indeterminate { image: url(icon:/primary/checkbox_indeterminate.svg); }
"""


def resolve(theme: str) -> str:
    """``"system"`` -> ``"dark"`` or ``"light"`` from the desktop setting."""
    if theme in ("light", "dark"):
        return theme
    hints = QGuiApplication.styleHints()
    scheme = getattr(hints, "colorScheme", lambda: Qt.ColorScheme.Unknown)()
    return "dark" if scheme == Qt.ColorScheme.Dark else "light"


def apply_theme(app: QApplication, theme: str) -> str:
    """Apply ``theme`` (light, dark, system); returns the resolved ``light``/``dark``."""
    mode = resolve(theme)
    app.setStyle("Fusion")
    app.setPalette(_palette(mode))
    try:
        from qt_material import apply_stylesheet

        apply_stylesheet(
            app,
            theme=_MATERIAL[mode],
            invert_secondary=mode == "light",
            extra={"density_scale": "-2"},
        )
        app.setStyleSheet(app.styleSheet() + _DENSITY)
    except Exception as exc:  # qt-material missing or broken: the palette alone is fine
        log.info("qt-material not used (%s); palette theme only", exc)
        app.setStyleSheet("")
    app.setProperty("ccbt_theme", mode)
    return mode


def chart_colors(mode: str) -> tuple[str, str]:
    """(background, foreground) for pyqtgraph plots."""
    return ("#1e1f22", "#d0d0d0") if mode == "dark" else ("#ffffff", "#303030")


def _palette(mode: str) -> QPalette:
    if mode == "light":
        return QApplication.style().standardPalette()
    p = QPalette()
    window, base, text = QColor(43, 45, 48), QColor(30, 31, 34), QColor(220, 220, 220)
    role = QPalette.ColorRole
    p.setColor(role.Window, window)
    p.setColor(role.WindowText, text)
    p.setColor(role.Base, base)
    p.setColor(role.AlternateBase, QColor(38, 40, 43))
    p.setColor(role.ToolTipBase, window)
    p.setColor(role.ToolTipText, text)
    p.setColor(role.Text, text)
    p.setColor(role.Button, window)
    p.setColor(role.ButtonText, text)
    p.setColor(role.BrightText, QColor(255, 80, 80))
    p.setColor(role.Highlight, QColor(46, 134, 222))
    p.setColor(role.HighlightedText, QColor(255, 255, 255))
    p.setColor(role.Link, QColor(90, 160, 240))
    p.setColor(role.Mid, QColor(70, 72, 76))
    p.setColor(QPalette.ColorGroup.Disabled, role.Text, QColor(120, 120, 120))
    p.setColor(QPalette.ColorGroup.Disabled, role.WindowText, QColor(120, 120, 120))
    return p
