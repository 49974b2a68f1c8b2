"""A SOCKS5 server and an HTTP proxy for tests, on 127.0.0.1, that count what they relay.

Written from RFC 1928/1929 and RFC 9110 (CONNECT, absolute-form requests), not from ccbt's
client code, so a test that passes shows ccbt speaks the protocol, not that it agrees with
itself. They relay only to loopback targets: a test can never make them reach the network.
"""

from __future__ import annotations

import asyncio
import base64
import contextlib
import ipaddress
import struct
from dataclasses import dataclass, field
from typing import Self
from urllib.parse import urlsplit

__all__ = ["FakeHttpProxy", "FakeSocks5", "Relay"]

LOOPBACK_NAMES = {"localhost"}


def _loopback(host: str) -> bool:
    if host in LOOPBACK_NAMES:
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


@dataclass
class Relay:
    """One tunnel the proxy opened: where to, and bytes each way."""

    host: str
    port: int
    kind: str  # "connect" (a tunnel) or "forward" (an absolute-form HTTP request)
    up: int = 0  # client -> target
    down: int = 0  # target -> client


@dataclass
class _Base:
    username: str = ""
    password: str = ""
    port: int = 0
    relays: list[Relay] = field(default_factory=list)
    #: handshakes refused for bad or missing credentials
    auth_failures: int = 0
    _server: asyncio.Server | None = None
    _tasks: set[asyncio.Task[None]] = field(default_factory=set)

    async def start(self) -> Self:
        self._server = await asyncio.start_server(self._guarded, "127.0.0.1", 0)
        self.port = self._server.sockets[0].getsockname()[1]
        return self

    async def close(self) -> None:
        if self._server is not None:
            self._server.close()
        for task in list(self._tasks):
            task.cancel()
        for task in list(self._tasks):
            with contextlib.suppress(BaseException):
                await task
        if self._server is not None:
            with contextlib.suppress(Exception):
                await asyncio.wait_for(self._server.wait_closed(), 2)

    async def __aenter__(self) -> Self:
        return await self.start()

    async def __aexit__(self, *exc: object) -> None:
        await self.close()

    def to(self, port: int) -> list[Relay]:
        """The relays to a target port."""
        return [r for r in self.relays if r.port == port]

    async def _guarded(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        task = asyncio.current_task()
        assert task is not None
        self._tasks.add(task)
        try:
            await self._handle(reader, writer)
        except (OSError, asyncio.IncompleteReadError, ValueError):
            pass
        finally:
            self._tasks.discard(task)
            writer.close()

    async def _handle(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        raise NotImplementedError

    async def _pipe(
        self,
        relay: Relay,
        client: tuple[asyncio.StreamReader, asyncio.StreamWriter],
        target: tuple[asyncio.StreamReader, asyncio.StreamWriter],
    ) -> None:
        async def copy(src: asyncio.StreamReader, dst: asyncio.StreamWriter, up: bool) -> None:
            try:
                while data := await src.read(65536):
                    if up:
                        relay.up += len(data)
                    else:
                        relay.down += len(data)
                    dst.write(data)
                    await dst.drain()
            except OSError:
                pass
            finally:
                with contextlib.suppress(OSError):
                    dst.write_eof()

        try:
            await asyncio.gather(
                copy(client[0], target[1], True), copy(target[0], client[1], False)
            )
        finally:
            target[1].close()


class FakeSocks5(_Base):
    """RFC 1928 CONNECT only; RFC 1929 user/password required when ``username`` is set."""

    async def _handle(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        version, count = await reader.readexactly(2)
        if version != 5:
            return
        methods = await reader.readexactly(count)
        if self.username:
            if 2 not in methods:
                self.auth_failures += 1
                writer.write(b"\x05\xff")
                return
            writer.write(b"\x05\x02")
            auth_version, ulen = await reader.readexactly(2)
            user = await reader.readexactly(ulen)
            (plen,) = await reader.readexactly(1)
            password = await reader.readexactly(plen)
            if auth_version != 1 or (user, password) != (
                self.username.encode(),
                self.password.encode(),
            ):
                self.auth_failures += 1
                writer.write(b"\x01\x01")
                return
            writer.write(b"\x01\x00")
        elif 0 in methods:
            writer.write(b"\x05\x00")
        else:
            writer.write(b"\x05\xff")
            return
        _ver, cmd, _rsv, atyp = await reader.readexactly(4)
        if atyp == 1:
            host = str(ipaddress.IPv4Address(await reader.readexactly(4)))
        elif atyp == 4:
            host = str(ipaddress.IPv6Address(await reader.readexactly(16)))
        elif atyp == 3:
            (n,) = await reader.readexactly(1)
            host = (await reader.readexactly(n)).decode()
        else:
            writer.write(b"\x05\x08\x00\x01" + bytes(6))
            return
        (port,) = struct.unpack("!H", await reader.readexactly(2))
        if cmd != 1:
            writer.write(b"\x05\x07\x00\x01" + bytes(6))
            return
        if not _loopback(host):
            writer.write(b"\x05\x02\x00\x01" + bytes(6))  # not allowed: tests stay on loopback
            return
        try:
            target = await asyncio.open_connection(host, port)
        except OSError:
            writer.write(b"\x05\x05\x00\x01" + bytes(6))  # connection refused
            return
        relay = Relay(host, port, "connect")
        self.relays.append(relay)
        bound = target[1].get_extra_info("sockname")
        writer.write(b"\x05\x00\x00\x01" + bytes([127, 0, 0, 1]) + struct.pack("!H", bound[1]))
        await writer.drain()
        await self._pipe(relay, (reader, writer), target)


class FakeHttpProxy(_Base):
    """CONNECT tunnels and absolute-form requests (``GET http://host:port/path``), with Basic
    ``Proxy-Authorization`` required when ``username`` is set."""

    async def _handle(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        head = await reader.readuntil(b"\r\n\r\n")
        lines = head.decode("latin-1").split("\r\n")
        method, target, _version = lines[0].split(" ", 2)
        headers = [line for line in lines[1:] if line]
        if self.username:
            wanted = base64.b64encode(f"{self.username}:{self.password}".encode()).decode()
            given = [
                h.split(":", 1)[1].strip()
                for h in headers
                if h.lower().startswith("proxy-authorization:")
            ]
            if given != [f"Basic {wanted}"]:
                self.auth_failures += 1
                writer.write(
                    b"HTTP/1.1 407 Proxy Authentication Required\r\n"
                    b'Proxy-Authenticate: Basic realm="test"\r\nContent-Length: 0\r\n'
                    b"Connection: close\r\n\r\n"
                )
                await writer.drain()
                return
        if method == "CONNECT":
            host, _, port_text = target.rpartition(":")
            host = host.strip("[]")
            kind = "connect"
            forward = ""
        else:
            url = urlsplit(target)
            host, port_text, kind = url.hostname or "", str(url.port or 80), "forward"
            path = url.path or "/"
            if url.query:
                path += "?" + url.query
            kept = [
                h
                for h in headers
                if not h.lower().startswith(("proxy-", "connection:", "keep-alive:"))
            ]
            forward = "\r\n".join([f"{method} {path} HTTP/1.1", *kept, "Connection: close"])
            forward += "\r\n\r\n"
        port = int(port_text)
        if not _loopback(host):
            writer.write(b"HTTP/1.1 403 Forbidden\r\nContent-Length: 0\r\n\r\n")
            return
        try:
            upstream = await asyncio.open_connection(host, port)
        except OSError:
            writer.write(b"HTTP/1.1 502 Bad Gateway\r\nContent-Length: 0\r\n\r\n")
            return
        relay = Relay(host, port, kind)
        self.relays.append(relay)
        if kind == "connect":
            writer.write(b"HTTP/1.1 200 Connection established\r\n\r\n")
            await writer.drain()
        else:
            upstream[1].write(forward.encode("latin-1"))
            await upstream[1].drain()
        await self._pipe(relay, (reader, writer), upstream)
