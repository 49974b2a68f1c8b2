"""Sans-I/O proxy negotiation: SOCKS5 (RFC 1928, RFC 1929 user/password) and HTTP CONNECT.

A handshake object turns the proxy's bytes into the bytes we must answer with, until the tunnel
to the target is open. No sockets, no clock: :mod:`ccbt_engine.net.proxy_dial` moves the bytes.
Everything the proxy sends is untrusted (a misconfigured host:port may be anything), so every
malformed, oversized or refusing reply raises :class:`ProxyError` and nothing else.

Both protocols have the client speak first and the proxy answer only what it was asked, so the
handshake never needs more than the proxy's replies; a proxy that sends bytes past its final
reply is refused (BitTorrent's initiator speaks first, so a peer cannot have sent anything yet).
"""

from __future__ import annotations

import base64
import ipaddress
from typing import TYPE_CHECKING, Protocol

if TYPE_CHECKING:
    from ccbt_engine.config import NetworkSettings

__all__ = [
    "MAX_HTTP_REPLY",
    "HttpConnectHandshake",
    "ProxyError",
    "ProxyHandshake",
    "Socks5Handshake",
    "make_handshake",
    "udp_block_reason",
]

#: the CONNECT reply's status line and headers; a proxy needs a few hundred bytes
MAX_HTTP_REPLY = 16 * 1024

_SOCKS_REPLIES = {
    1: "general SOCKS server failure",
    2: "connection not allowed by ruleset",
    3: "network unreachable",
    4: "host unreachable",
    5: "connection refused",
    6: "TTL expired",
    7: "command not supported",
    8: "address type not supported",
}


class ProxyError(ConnectionError):
    """The proxy refused, failed authentication, or answered something that is not its protocol.

    A :class:`ConnectionError` so that callers treating "peer unreachable" uniformly need no
    extra clause; the message says which of the three it was.
    """


class ProxyHandshake(Protocol):
    """What the asyncio shell needs from either protocol."""

    done: bool

    def initial(self) -> bytes: ...

    def receive_data(self, data: bytes) -> bytes: ...


def _check_target(host: str, port: int) -> None:
    if not 0 < port < 65536:
        raise ProxyError(f"target port {port} is out of range")
    if not host or len(host.encode("utf-8", "surrogatepass")) > 255:
        raise ProxyError(f"target host {host!r} cannot be sent to a proxy")


class Socks5Handshake:
    """RFC 1928 CONNECT, offering user/password auth (RFC 1929) only when a user name is set.

    Sequence: greeting -> method choice -> (auth -> auth status) -> CONNECT -> reply.
    """

    def __init__(self, host: str, port: int, username: str = "", password: str = "") -> None:
        _check_target(host, port)
        user, pwd = username.encode(), password.encode()
        if len(user) > 255 or len(pwd) > 255:
            raise ProxyError("SOCKS5 user name and password are limited to 255 bytes each")
        self._host = host
        self._port = port
        self._user = user
        self._password = pwd
        self._state = "greeting"
        self._buf = b""
        self.done = False

    def initial(self) -> bytes:
        methods = b"\x00\x02" if self._user else b"\x00"
        return bytes([5, len(methods)]) + methods

    def receive_data(self, data: bytes) -> bytes:
        """Feed the proxy's bytes; returns the bytes to send next (b"" = wait for more)."""
        if self.done:
            raise ProxyError("proxy sent data after the tunnel was established")
        self._buf += data
        out = b""
        while not self.done:
            step = self._step()
            if step is None:
                break
            out += step
        if self.done and self._buf:
            raise ProxyError("proxy sent unexpected bytes after its CONNECT reply")
        return out

    def _take(self, n: int) -> bytes | None:
        if len(self._buf) < n:
            return None
        chunk, self._buf = self._buf[:n], self._buf[n:]
        return chunk

    def _step(self) -> bytes | None:
        if self._state == "greeting":
            reply = self._take(2)
            if reply is None:
                return None
            if reply[0] != 5:
                raise ProxyError(f"not a SOCKS5 proxy (version byte {reply[0]})")
            if reply[1] == 0x00:
                self._state = "connect"
                return self._connect_request()
            if reply[1] == 0x02 and self._user:
                self._state = "auth"
                return (
                    bytes([1, len(self._user)])
                    + self._user
                    + bytes([len(self._password)])
                    + self._password
                )
            if reply[1] == 0xFF:
                wanted = "" if self._user else " (set network.proxy_username and the password)"
                raise ProxyError(f"SOCKS5 proxy accepts none of our authentication methods{wanted}")
            raise ProxyError(f"SOCKS5 proxy chose a method we did not offer ({reply[1]})")
        if self._state == "auth":
            reply = self._take(2)
            if reply is None:
                return None
            if reply[0] != 1:
                raise ProxyError(f"bad SOCKS5 authentication reply version {reply[0]}")
            if reply[1] != 0:
                raise ProxyError("SOCKS5 proxy rejected the user name or password")
            self._state = "connect"
            return self._connect_request()
        return self._connect_reply()

    def _connect_request(self) -> bytes:
        try:
            addr = ipaddress.ip_address(self._host)
        except ValueError:
            name = self._host.encode("utf-8", "surrogatepass")
            target = bytes([3, len(name)]) + name
        else:
            target = bytes([1 if addr.version == 4 else 4]) + addr.packed
        self._state = "reply"
        return b"\x05\x01\x00" + target + self._port.to_bytes(2, "big")

    def _connect_reply(self) -> bytes | None:
        if len(self._buf) < 5:
            return None
        ver, rep, _rsv, atyp, first = self._buf[:5]
        if ver != 5:
            raise ProxyError(f"bad SOCKS5 reply version {ver}")
        if rep != 0:
            why = _SOCKS_REPLIES.get(rep, f"error code {rep}")
            raise ProxyError(f"SOCKS5 proxy could not connect to the peer: {why}")
        if atyp == 1:
            size = 4 + 4 + 2
        elif atyp == 4:
            size = 4 + 16 + 2
        elif atyp == 3:
            size = 4 + 1 + first + 2
        else:
            raise ProxyError(f"bad SOCKS5 bound address type {atyp}")
        if self._take(size) is None:
            return None
        self.done = True
        return b""


class HttpConnectHandshake:
    """``CONNECT host:port HTTP/1.1`` with optional Basic proxy authentication (RFC 7235)."""

    def __init__(self, host: str, port: int, username: str = "", password: str = "") -> None:
        _check_target(host, port)
        if any(c in host for c in "\r\n /@"):
            raise ProxyError(f"target host {host!r} cannot be sent to a proxy")
        self._authority = f"[{host}]:{port}" if ":" in host else f"{host}:{port}"
        self._auth = username != ""
        self._credentials = base64.b64encode(f"{username}:{password}".encode()).decode()
        self._buf = b""
        self.done = False

    def initial(self) -> bytes:
        lines = [f"CONNECT {self._authority} HTTP/1.1", f"Host: {self._authority}"]
        if self._auth:
            lines.append(f"Proxy-Authorization: Basic {self._credentials}")
        return ("\r\n".join(lines) + "\r\n\r\n").encode()

    def receive_data(self, data: bytes) -> bytes:
        if self.done:
            raise ProxyError("proxy sent data after the tunnel was established")
        self._buf += data
        end = self._buf.find(b"\r\n\r\n")
        if end < 0:
            if len(self._buf) > MAX_HTTP_REPLY:
                raise ProxyError(f"HTTP proxy reply headers exceed {MAX_HTTP_REPLY} bytes")
            return b""
        if end + 4 > MAX_HTTP_REPLY:
            raise ProxyError(f"HTTP proxy reply headers exceed {MAX_HTTP_REPLY} bytes")
        if len(self._buf) > end + 4:
            raise ProxyError("proxy sent unexpected bytes after its CONNECT reply")
        status_line = self._buf[: self._buf.find(b"\r\n")].decode("latin-1")
        parts = status_line.split(" ", 2)
        if len(parts) < 2 or not parts[0].startswith("HTTP/1.") or not parts[1].isdigit():
            raise ProxyError(f"not an HTTP proxy reply: {status_line[:80]!r}")
        status = int(parts[1])
        reason = parts[2].strip()[:80] if len(parts) > 2 else ""
        if status == 407:
            why = "rejected the user name or password" if self._auth else "requires a user name"
            raise ProxyError(f"HTTP proxy {why} (407 {reason})".replace(" )", ")"))
        if not 200 <= status < 300:
            raise ProxyError(f"HTTP proxy refused the tunnel: {status} {reason}".rstrip())
        self.done = True
        return b""


def make_handshake(
    kind: str, host: str, port: int, username: str = "", password: str = ""
) -> ProxyHandshake:
    """The handshake for ``network.proxy_type`` ``kind`` ("socks5" or "http")."""
    if kind == "socks5":
        return Socks5Handshake(host, port, username, password)
    if kind == "http":
        return HttpConnectHandshake(host, port, username, password)
    raise ProxyError(f"unknown proxy type {kind!r}")


def udp_block_reason(net: NetworkSettings) -> str | None:
    """Why UDP and LAN services are off, or None when they may run.

    They are off when a proxy is set and ``network.proxy_force`` asks that nothing bypass it:
    the proxies spoken here carry TCP only, and a direct datagram would show our address. uTP,
    the DHT, UDP trackers, LSD and port mapping each check this where they start.
    """
    if net.proxy_force and net.proxy_type != "none" and net.proxy_host.strip():
        return "off: network.proxy_force sends everything through the proxy, which carries only TCP"
    return None
