"""Telling the user about mistakes in their config files at start-up.

The app loads settings with :func:`~ccbt_engine.config.load_settings_tolerant`: every valid key
is used, each invalid one is ignored (its default, or a lower layer's value, applies) — so one
out-of-range port does not switch DHT and UPnP back on behind the user's back. What was ignored
must not be silent either, hence these two dialogs:

* :func:`confirm_unreadable` — a file could not be read or parsed at all, so *none* of the
  user's choices in it are known. Starting anyway would run with defaults (DHT, UPnP, another
  download folder...), so the default answer is Quit; starting needs an explicit click.
* :func:`report_unusable_folder` — an environment variable names a settings folder or file
  that cannot exist here (``CCBT_CONFIG_DIR=~nobody/...``); the app cannot keep the user's
  choices anywhere, so it says which variable and quits.
* :func:`report_ignored` — some keys were ignored. The app runs with everything else; the box
  names each file, key, value and error, and offers to remove the bad entries from the file
  (which also lets the settings dialog save again: a file is only written when it validates).
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

from PySide6.QtCore import QUrl
from PySide6.QtGui import QDesktopServices
from PySide6.QtWidgets import QMessageBox, QWidget

from ccbt_engine import CLIENT_NAME
from ccbt_engine.config import ConfigError, SettingProblem, remove_entries

__all__ = [
    "confirm_unreadable",
    "describe_problems",
    "remove_problem_entries",
    "report_ignored",
    "report_unusable_folder",
]


def describe_problems(problems: Sequence[SettingProblem]) -> str:
    """One line per problem; each message already names key, value, file and what is allowed."""
    return "\n".join(f"• {problem.error}" for problem in problems)


def confirm_unreadable(problems: Sequence[SettingProblem], parent: QWidget | None = None) -> bool:
    """Ask whether to start although whole files were skipped; True = start with defaults."""
    box = QMessageBox(parent)
    box.setIcon(QMessageBox.Icon.Critical)
    box.setWindowTitle(f"{CLIENT_NAME}: settings file unreadable")
    box.setText("A settings file could not be read, so none of the settings in it can be used.")
    box.setInformativeText(
        describe_problems(problems)
        + "\n\nStarting now would use the default settings instead of your choices in it (for"
        " example DHT, UPnP or the download folder). Fix the file and start again, or start with"
        " the defaults for this run."
    )
    quit_button = box.addButton("Quit", QMessageBox.ButtonRole.RejectRole)
    open_button = box.addButton("Open the file and quit", QMessageBox.ButtonRole.ActionRole)
    start_button = box.addButton("Start with defaults", QMessageBox.ButtonRole.AcceptRole)
    box.setDefaultButton(quit_button)
    box.setEscapeButton(quit_button)
    box.exec()
    clicked = box.clickedButton()
    if clicked is open_button:
        _open_files(problems)
    return clicked is start_button


def report_unusable_folder(error: ConfigError, parent: QWidget | None = None) -> None:
    """Say why the app cannot start: ``error`` names the environment variable and its value."""
    box = QMessageBox(parent)
    box.setIcon(QMessageBox.Icon.Critical)
    box.setWindowTitle(f"{CLIENT_NAME}: cannot start")
    box.setText("A settings location named in the environment cannot be used.")
    box.setInformativeText(f"{error}\n\nCorrect or unset the variable and start again.")
    box.setStandardButtons(QMessageBox.StandardButton.Ok)
    box.exec()


def report_ignored(problems: Sequence[SettingProblem], parent: QWidget | None = None) -> str:
    """Show what was ignored; returns a status-bar note about what the user chose to do."""
    removable = [p for p in problems if p.path is not None and p.key]
    box = QMessageBox(parent)
    box.setIcon(QMessageBox.Icon.Warning)
    box.setWindowTitle(f"{CLIENT_NAME}: settings ignored")
    box.setText(
        f"{len(problems)} setting(s) are invalid and were ignored; all your other settings are"
        " used as you set them. Each ignored one keeps its default until you fix it:"
    )
    box.setInformativeText(describe_problems(problems))
    keep_button = box.addButton("Keep the file as it is", QMessageBox.ButtonRole.AcceptRole)
    remove_button = None
    if removable:
        remove_button = box.addButton(
            "Remove them from the file", QMessageBox.ButtonRole.DestructiveRole
        )
    open_button = None
    if any(p.path is not None for p in problems):
        open_button = box.addButton("Open the file", QMessageBox.ButtonRole.ActionRole)
    box.setDefaultButton(keep_button)
    box.setEscapeButton(keep_button)
    box.exec()
    clicked = box.clickedButton()
    if remove_button is not None and clicked is remove_button:
        return remove_problem_entries(removable)
    if open_button is not None and clicked is open_button:
        _open_files(problems)
        return "Settings file opened; restart the app after fixing it"
    return "Some settings were ignored (see the message at start-up)"


def remove_problem_entries(problems: Sequence[SettingProblem]) -> str:
    """Delete the problems' keys from their files; a note saying what was removed."""
    by_path: dict[Path, list[str]] = {}
    for problem in problems:
        if problem.path is not None and problem.key:
            by_path.setdefault(problem.path, []).append(problem.key)
    notes = []
    for path, keys in by_path.items():
        try:
            removed = remove_entries(path, keys)
        except ConfigError as exc:
            notes.append(str(exc))
            continue
        if removed:
            notes.append(f"removed {', '.join(removed)} from {path}")
    text = "; ".join(notes)
    return text[:1].upper() + text[1:] if text else "Nothing to remove"


def _open_files(problems: Sequence[SettingProblem]) -> None:
    for path in dict.fromkeys(p.path for p in problems if p.path is not None):
        QDesktopServices.openUrl(QUrl.fromLocalFile(str(path)))
