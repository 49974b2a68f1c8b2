"""Dialogs: add torrent, add magnet, create torrent, settings."""
