"""ccBitTorrent engine: a pure-Python asyncio BitTorrent stack. Never imports Qt."""

__version__ = "0.1.0"
CLIENT_NAME = "ccBitTorrent"
