"""ccBitTorrent desktop GUI (PySide6). Talks to the engine only through ``ccbt_engine.api``."""
