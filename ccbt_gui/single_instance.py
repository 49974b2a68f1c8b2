"""One running GUI per user: a second launch hands its arguments to the first and exits.

This is what makes ``ccbt-gui "magnet:?..."`` from a browser (or double-clicking a .torrent) add
to the window that is already open. The first instance listens on a QLocalServer whose name is
per user (a Unix socket / Windows named pipe); a later one connects, sends its items as one JSON
line, waits for ``ok`` and exits. ``CCBT_GUI_SERVER_NAME`` overrides the name (tests).
"""

from __future__ import annotations

import getpass
import hashlib
import json
import os

from PySide6.QtCore import QObject, Signal
from PySide6.QtNetwork import QAbstractSocket, QLocalServer, QLocalSocket

SERVER_ENV = "CCBT_GUI_SERVER_NAME"
TIMEOUT_MS = 2000
ACK = b"ok\n"


def server_name() -> str:
    """Per-user name, short and filesystem-safe (it becomes a socket path on Unix)."""
    override = os.environ.get(SERVER_ENV)
    if override:
        return override
    try:
        user = getpass.getuser()
    except Exception:  # no user name (some containers): fall back to the uid
        user = str(os.getuid()) if hasattr(os, "getuid") else "user"
    return "ccbt-gui-" + hashlib.sha1(user.encode()).hexdigest()[:12]


def send_to_running(items: list[str], name: str | None = None) -> bool:
    """Hand ``items`` to a running instance; False if none is listening (we become it)."""
    sock = QLocalSocket()
    sock.connectToServer(name or server_name())
    if not sock.waitForConnected(TIMEOUT_MS // 4):
        return False
    sock.write(json.dumps(items).encode() + b"\n")
    # flush() usually writes everything at once, after which waitForBytesWritten() reports
    # False (nothing pending), so it is only a wait, not a success test.
    if not sock.flush():
        sock.waitForBytesWritten(TIMEOUT_MS)
    buf = bytes(sock.readAll().data())
    while not buf.endswith(b"\n") and sock.waitForReadyRead(TIMEOUT_MS):
        buf += bytes(sock.readAll().data())
    ok = buf == ACK
    sock.disconnectFromServer()
    if sock.state() != QLocalSocket.LocalSocketState.UnconnectedState:
        sock.waitForDisconnected(TIMEOUT_MS // 4)
    return ok


class InstanceServer(QObject):
    """Listens for later launches; emits :attr:`received` with their items."""

    received = Signal(list)

    def __init__(self, name: str | None = None, parent: QObject | None = None) -> None:
        super().__init__(parent)
        self.name = name or server_name()
        self._server = QLocalServer(self)
        self._server.setSocketOptions(QLocalServer.SocketOption.UserAccessOption)
        self._server.newConnection.connect(self._accept)
        self._buffers: dict[QLocalSocket, bytes] = {}

    def listen(self) -> bool:
        if self._server.listen(self.name):
            return True
        if self._server.serverError() == QAbstractSocket.SocketError.AddressInUseError:
            # A crashed instance left its socket file; nobody answered send_to_running, so it
            # is stale and safe to remove.
            QLocalServer.removeServer(self.name)
            return self._server.listen(self.name)
        return False

    def close(self) -> None:
        for sock in list(self._buffers):
            sock.abort()
        self._buffers.clear()
        self._server.close()

    def _accept(self) -> None:
        while self._server.hasPendingConnections():
            sock = self._server.nextPendingConnection()
            self._buffers[sock] = b""
            sock.readyRead.connect(lambda s=sock: self._read(s))
            sock.disconnected.connect(lambda s=sock: self._drop(s))

    def _read(self, sock: QLocalSocket) -> None:
        buf = self._buffers.get(sock, b"") + bytes(sock.readAll().data())
        if len(buf) > 1 << 20:  # a local peer sending megabytes is broken; do not buffer it
            self._drop(sock)
            sock.abort()
            return
        self._buffers[sock] = buf
        if b"\n" not in buf:
            return
        line = buf.split(b"\n", 1)[0]
        try:
            items = json.loads(line)
        except ValueError:
            items = None
        if isinstance(items, list) and all(isinstance(i, str) for i in items):
            sock.write(ACK)
            sock.flush()
            self.received.emit(items)
        sock.disconnectFromServer()

    def _drop(self, sock: QLocalSocket) -> None:
        self._buffers.pop(sock, None)
        sock.deleteLater()
